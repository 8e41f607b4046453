package cache

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestGC(t *testing.T) {
	s := newStore(t, Options{})
	now := time.Now()
	old, recent := testKey(1), testKey(2)
	for _, k := range []Key{old, recent} {
		if err := s.Put(k, testEntry(k, 1)); err != nil {
			t.Fatal(err)
		}
	}
	oldID := FileID{Dev: 1, Ino: 1, Size: 1, MtimeNs: 1, CtimeNs: 1}
	recentID := FileID{Dev: 1, Ino: 2, Size: 1, MtimeNs: 1, CtimeNs: 1}
	for _, id := range []FileID{oldID, recentID} {
		if err := s.RecordStat("/img", id, "abc"); err != nil {
			t.Fatal(err)
		}
	}
	staleTempFile := filepath.Join(s.Dir(), entriesDir, tempPrefix+"dead")
	freshTempFile := filepath.Join(s.Dir(), statDir, tempPrefix+"writing")
	foreign := filepath.Join(s.Dir(), entriesDir, "README")
	for _, p := range []string{staleTempFile, freshTempFile, foreign} {
		if err := os.WriteFile(p, []byte("x"), filePerm); err != nil {
			t.Fatal(err)
		}
	}

	age(t, entryPath(s, old), now.Add(-10*24*time.Hour))
	age(t, s.path(statDir, statName("/img", oldID)+statSuffix), now.Add(-10*24*time.Hour))
	age(t, entryPath(s, recent), now.Add(-2*24*time.Hour))
	age(t, staleTempFile, now.Add(-2*time.Hour))
	age(t, foreign, now.Add(-100*24*time.Hour))

	removed, err := s.GC(7*24*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Removed{Entries: 1, Stats: 1, Temps: 1}); removed != want {
		t.Errorf("GC removed %+v, want %+v (old entry, old stat record, stale temp)",
			removed, want)
	}
	if _, err := s.Get(old); !errors.Is(err, ErrMiss) {
		t.Errorf("old entry: Get = %v, want ErrMiss", err)
	}
	if _, err := s.Get(recent); err != nil {
		t.Errorf("recent entry: %v", err)
	}
	if _, ok := s.LookupStat("/img", oldID); ok {
		t.Error("old stat record kept")
	}
	if _, ok := s.LookupStat("/img", recentID); !ok {
		t.Error("recent stat record removed")
	}
	for _, p := range []string{freshTempFile, foreign} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("GC removed %s: %v", p, err)
		}
	}
	if _, err := os.Lstat(staleTempFile); err == nil {
		t.Error("stale temporary file kept")
	}

	for _, age := range []time.Duration{-time.Hour, 0} {
		if _, err := s.GC(age, now); err == nil {
			t.Errorf("GC with age %v succeeded", age)
		}
	}
}

func TestPurge(t *testing.T) {
	s := newStore(t, Options{})
	for i := range 3 {
		if err := s.Put(testKey(i), testEntry(testKey(i), 1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RecordStat("/img", FileID{Dev: 1, Ino: 1}, "abc"); err != nil {
		t.Fatal(err)
	}
	removed, err := s.Purge()
	if err != nil {
		t.Fatal(err)
	}
	// Entries and stat records are counted apart: `cache ls` lists only the entries.
	if want := (Removed{Entries: 3, Stats: 1}); removed != want {
		t.Errorf("Purge removed %+v, want %+v", removed, want)
	}
	if entries, err := s.List(); err != nil || len(entries) != 0 {
		t.Errorf("List after Purge = %d entries, %v", len(entries), err)
	}
	if _, ok := s.LookupStat("/img", FileID{Dev: 1, Ino: 1}); ok {
		t.Error("stat record survived Purge")
	}
}

func TestListSkipsUnusable(t *testing.T) {
	s := newStore(t, Options{})
	for i := range 4 {
		if err := s.Put(testKey(i), testEntry(testKey(i), 1)); err != nil {
			t.Fatal(err)
		}
	}
	rewrite(t, entryPath(s, testKey(0)), func(d []byte) []byte { return d[:len(d)/2] })
	data, err := os.ReadFile(entryPath(s, testKey(1)))
	if err != nil {
		t.Fatal(err)
	}
	wrongKey := filepath.Join(s.Dir(), entriesDir, testKey(9).Name()+entrySuffix)
	if err := os.WriteFile(wrongKey, data, filePerm); err != nil {
		t.Fatal(err)
	}

	entries, err := s.List()
	var skipped *SkippedError
	if !errors.As(err, &skipped) || len(skipped.Misses) != 2 {
		t.Fatalf("List error = %v, want a SkippedError for 2 files", err)
	}
	for _, miss := range skipped.Misses {
		if !errors.Is(miss, ErrMiss) {
			t.Errorf("skipped for %v, want an ErrMiss", miss)
		}
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Key.Content)
	}
	want := []string{testKey(1).Content, testKey(2).Content, testKey(3).Content}
	if !slices.Equal(got, want) {
		t.Errorf("List = %v, want %v", got, want)
	}
}

func age(t *testing.T, path string, when time.Time) {
	t.Helper()
	if err := os.Chtimes(path, when, when); err != nil {
		t.Fatal(err)
	}
}

// tempFiles lists the temporary files in entries/ and stat/.
func tempFiles(t *testing.T, s *Store) []string {
	t.Helper()
	var temps []string
	for _, sub := range []string{entriesDir, statDir} {
		dirents, err := os.ReadDir(filepath.Join(s.Dir(), sub))
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range dirents {
			if strings.HasPrefix(d.Name(), tempPrefix) {
				temps = append(temps, filepath.Join(sub, d.Name()))
			}
		}
	}
	return temps
}
