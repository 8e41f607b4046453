package cache

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func TestFileIDOf(t *testing.T) {
	path := filepath.Join(t.TempDir(), "image.sif")
	if err := os.WriteFile(path, []byte("hsqs"), 0o644); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	want := FileID{
		Dev: uint64(st.Dev), Ino: st.Ino, Size: 4,
		MtimeNs: st.Mtim.Nano(), CtimeNs: st.Ctim.Nano(),
	}
	if got := FileIDOf(fi); got != want {
		t.Errorf("FileIDOf = %+v, want %+v", got, want)
	}

	// Putting the mtime back after a change still leaves the ctime changed.
	time.Sleep(10 * time.Millisecond)
	if err := os.WriteFile(path, []byte("hsqt"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	changed, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := FileIDOf(changed); got == want {
		t.Errorf("FileIDOf after a rewrite with the old mtime = %+v, unchanged", got)
	}

	if got := FileIDOf(fakeInfo{}); got != (FileID{}) {
		t.Errorf("FileIDOf without stat information = %+v, want zero", got)
	}
}

// fakeInfo is a FileInfo that did not come from stat(2).
type fakeInfo struct{ os.FileInfo }

func (fakeInfo) Sys() any { return nil }

func TestStatIndex(t *testing.T) {
	const path, content = "/shared/images/app.sif", "9f86d081884c7d65"
	id := FileID{Dev: 2049, Ino: 131, Size: 1 << 30, MtimeNs: 1700000000e9, CtimeNs: 1700000001e9}
	s := newStore(t, Options{})
	if _, ok := s.LookupStat(path, id); ok {
		t.Fatal("hit before RecordStat")
	}
	if err := s.RecordStat(path, id, content); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		path    string
		change  func(*FileID)
		wantHit bool
	}{
		{"unchanged", path, func(*FileID) {}, true},
		{"device", path, func(id *FileID) { id.Dev++ }, false},
		{"inode", path, func(id *FileID) { id.Ino++ }, false},
		{"size", path, func(id *FileID) { id.Size-- }, false},
		{"mtime", path, func(id *FileID) { id.MtimeNs++ }, false},
		{"ctime", path, func(id *FileID) { id.CtimeNs++ }, false},
		{"path", "/shared/images/other.sif", func(*FileID) {}, false},
		{"zero identity", path, func(id *FileID) { *id = FileID{} }, false},
	}
	for _, tt := range tests {
		lookup := id
		tt.change(&lookup)
		got, ok := s.LookupStat(tt.path, lookup)
		if ok != tt.wantHit || (ok && got != content) {
			t.Errorf("%s: LookupStat = %q, %v; want hit %v", tt.name, got, ok, tt.wantHit)
		}
	}

	// A newer record for the same file replaces the old one.
	newer := id
	newer.MtimeNs += 1e9
	if err := s.RecordStat(path, newer, "aaaa"); err != nil {
		t.Fatal(err)
	}
	if got, ok := s.LookupStat(path, newer); !ok || got != "aaaa" {
		t.Errorf("LookupStat of the newer identity = %q, %v", got, ok)
	}
	if _, ok := s.LookupStat(path, id); ok {
		t.Error("the old identity still hits")
	}
}

func TestStatRecordUnusable(t *testing.T) {
	const path = "/img.sif"
	id := FileID{Dev: 1, Ino: 2, Size: 3, MtimeNs: 4, CtimeNs: 5}
	tests := []struct {
		name  string
		root  bool
		spoil func(t *testing.T, record string)
	}{
		{"truncated", false, func(t *testing.T, p string) {
			rewrite(t, p, func(d []byte) []byte { return d[:len(d)-2] })
		}},
		{"bit flipped", false, func(t *testing.T, p string) {
			rewrite(t, p, func(d []byte) []byte { d[len(d)-5] ^= 4; return d })
		}},
		{"group-writable", false, func(t *testing.T, p string) { chmod(t, p, 0o664) }},
		{"owned by another user", true, func(t *testing.T, p string) { chown(t, p, otherUID) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.root {
				requireRoot(t)
			}
			s := newStore(t, Options{})
			if err := s.RecordStat(path, id, "abc"); err != nil {
				t.Fatal(err)
			}
			tt.spoil(t, s.path(statDir, statName(path, id)+statSuffix))
			if got, ok := s.LookupStat(path, id); ok {
				t.Errorf("LookupStat = %q, hit; want a miss", got)
			}
		})
	}
}

func TestRecordStatRejects(t *testing.T) {
	s := newStore(t, Options{})
	if err := s.RecordStat("/x", FileID{}, "abc"); err == nil {
		t.Error("RecordStat without an identity succeeded")
	}
	if err := s.RecordStat("/x", FileID{Dev: 1, Ino: 1}, ""); err == nil {
		t.Error("RecordStat without a content key succeeded")
	}
	ro, err := Open(s.Dir(), Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := ro.RecordStat("/x", FileID{Dev: 1, Ino: 1}, "abc"); !errors.Is(err, ErrReadOnly) {
		t.Errorf("RecordStat on a read-only store = %v, want ErrReadOnly", err)
	}
}

func TestStatHitRenewsOldMark(t *testing.T) {
	const path = "/img.sif"
	id := FileID{Dev: 1, Ino: 2, Size: 3, MtimeNs: 4, CtimeNs: 5}
	s := newStore(t, Options{})
	if err := s.RecordStat(path, id, "abc"); err != nil {
		t.Fatal(err)
	}
	record := s.path(statDir, statName(path, id)+statSuffix)
	old := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(record, old, old); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.LookupStat(path, id); !ok {
		t.Fatal("miss")
	}
	if removed, err := s.GC(24*time.Hour, time.Now()); err != nil || removed != (Removed{}) {
		t.Errorf("GC after a hit removed %+v, %v; want nothing", removed, err)
	}
	if _, ok := s.LookupStat(path, id); !ok {
		t.Error("GC dropped a stat record in use")
	}
}
