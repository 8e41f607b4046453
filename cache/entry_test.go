package cache

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	s := newStore(t, Options{})
	k := testKey(1)
	want := testEntry(k, 5)

	if _, err := s.Get(k); !errors.Is(err, ErrMiss) {
		t.Fatalf("Get before Put = %v, want ErrMiss", err)
	}
	if err := s.Put(k, want); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(k)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Get = %+v\nwant %+v", got, want)
	}

	fi, err := os.Stat(entryPath(s, k))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != filePerm {
		t.Errorf("entry mode %v, want %v", fi.Mode().Perm(), filePerm)
	}
	if _, err := s.Get(testKey(2)); !errors.Is(err, ErrMiss) {
		t.Errorf("Get of another key = %v, want ErrMiss", err)
	}
}

func TestPutFillsKeyAndTime(t *testing.T) {
	s := newStore(t, Options{})
	k := testKey(1)
	e := testEntry(k, 1)
	e.Key, e.StoredAt = Key{}, time.Time{}

	before := time.Now()
	if err := s.Put(k, e); err != nil {
		t.Fatal(err)
	}
	if e.Key != (Key{}) || !e.StoredAt.IsZero() {
		t.Errorf("Put modified its argument: %+v", e)
	}
	got, err := s.Get(k)
	if err != nil {
		t.Fatal(err)
	}
	if got.Key != k {
		t.Errorf("stored key %+v, want %+v", got.Key, k)
	}
	if got.StoredAt.Before(before.Add(-time.Second)) || got.StoredAt.After(time.Now()) {
		t.Errorf("StoredAt = %v, want about %v", got.StoredAt, before)
	}
}

func TestPutRejects(t *testing.T) {
	s := newStore(t, Options{})
	k := testKey(1)
	tests := []struct {
		name string
		key  Key
		e    *Entry
	}{
		{"no content", Key{Scanner: "trivy"}, testEntry(k, 1)},
		{"no scanner", Key{Content: "abc"}, testEntry(k, 1)},
		{"entry for another key", testKey(2), testEntry(k, 1)},
	}
	for _, tt := range tests {
		if err := s.Put(tt.key, tt.e); err == nil {
			t.Errorf("%s: Put succeeded", tt.name)
		}
	}
}

func TestCorruptEntryIsMiss(t *testing.T) {
	k := testKey(1)
	tests := []struct {
		name    string
		corrupt func(data []byte) []byte
	}{
		{"empty", func([]byte) []byte { return nil }},
		{"truncated to half", func(d []byte) []byte { return d[:len(d)/2] }},
		{"truncated by one byte", func(d []byte) []byte { return d[:len(d)-1] }},
		{"header only", func(d []byte) []byte { return d[:bytes.IndexByte(d, '\n')+1] }},
		{"no header", func(d []byte) []byte { return d[bytes.IndexByte(d, '\n')+1:] }},
		{"bytes appended", func(d []byte) []byte { return append(d, "{}\n"...) }},
		{"garbage", func([]byte) []byte { return []byte("\x00\xff garbage\n\n") }},
		{"other kind of file", func(d []byte) []byte {
			return bytes.Replace(d, []byte(" entry v1 "), []byte(" stat v1 "), 1)
		}},
		{"future version", func(d []byte) []byte {
			return bytes.Replace(d, []byte(" v1 "), []byte(" v2 "), 1)
		}},
		{"checksummed body that is not JSON", func([]byte) []byte {
			body := []byte("{not json\n")
			return append(header(kindEntry, body), body...)
		}},
		{"checksummed body of the wrong shape", func([]byte) []byte {
			body := []byte(`{"key": "a string", "scan": 7}` + "\n")
			return append(header(kindEntry, body), body...)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t, Options{})
			if err := s.Put(k, testEntry(k, 3)); err != nil {
				t.Fatal(err)
			}
			rewrite(t, entryPath(s, k), tt.corrupt)
			if e, err := s.Get(k); !errors.Is(err, ErrMiss) {
				t.Errorf("Get = %+v, %v; want ErrMiss", e, err)
			}
		})
	}
}

func TestEveryBitFlipIsMiss(t *testing.T) {
	s := newStore(t, Options{})
	k := testKey(1)
	if err := s.Put(k, testEntry(k, 2)); err != nil {
		t.Fatal(err)
	}
	path := entryPath(s, k)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	for i := range good {
		bit := byte(1) << (i % 8)
		rewrite(t, path, func(d []byte) []byte {
			d[i] ^= bit
			return d
		})
		if e, err := s.Get(k); !errors.Is(err, ErrMiss) {
			t.Fatalf("flipping bit %d of byte %d: Get = %+v, %v; want ErrMiss", i%8, i, e, err)
		}
		rewrite(t, path, func([]byte) []byte { return good })
	}
	if _, err := s.Get(k); err != nil {
		t.Fatalf("restored entry: %v", err)
	}
}

func TestWrongKeyIsMiss(t *testing.T) {
	s := newStore(t, Options{})
	k1, k2 := testKey(1), testKey(2)
	if err := s.Put(k1, testEntry(k1, 1)); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(entryPath(s, k1))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(entryPath(s, k2), data, filePerm); err != nil {
		t.Fatal(err)
	}
	if e, err := s.Get(k2); !errors.Is(err, ErrMiss) {
		t.Errorf("Get(k2) of k1's entry = %+v, %v; want ErrMiss", e, err)
	}
}

func TestUntrustedEntryIsMiss(t *testing.T) {
	k := testKey(1)
	tests := []struct {
		name    string
		root    bool
		trusted []uint32
		spoil   func(t *testing.T, path string)
		wantHit bool
	}{
		{name: "group-writable", spoil: func(t *testing.T, p string) { chmod(t, p, 0o664) }},
		{name: "world-writable", spoil: func(t *testing.T, p string) { chmod(t, p, 0o646) }},
		{name: "owned by another user", root: true,
			spoil: func(t *testing.T, p string) { chown(t, p, otherUID) }},
		{name: "owned by a trusted other user", root: true, trusted: []uint32{0, otherUID},
			spoil: func(t *testing.T, p string) { chown(t, p, otherUID) }, wantHit: true},
		{name: "symbolic link", spoil: func(t *testing.T, p string) {
			if err := os.Rename(p, p+".real"); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(p+".real", p); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "named pipe", spoil: func(t *testing.T, p string) {
			mustRemove(t, p)
			if err := syscall.Mkfifo(p, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.root {
				requireRoot(t)
			}
			s := newStore(t, Options{TrustedUIDs: tt.trusted})
			if err := s.Put(k, testEntry(k, 1)); err != nil {
				t.Fatal(err)
			}
			tt.spoil(t, entryPath(s, k))

			_, err := s.Get(k)
			if tt.wantHit && err != nil {
				t.Errorf("Get = %v, want a hit", err)
			}
			if !tt.wantHit && !errors.Is(err, ErrMiss) {
				t.Errorf("Get = %v, want ErrMiss", err)
			}
		})
	}
}

func TestTouchAndRemove(t *testing.T) {
	s := newStore(t, Options{})
	k := testKey(1)
	if err := s.Touch(k); !errors.Is(err, ErrMiss) {
		t.Errorf("Touch of a missing entry = %v, want ErrMiss", err)
	}
	if err := s.Put(k, testEntry(k, 1)); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(entryPath(s, k), old, old); err != nil {
		t.Fatal(err)
	}
	if err := s.Touch(k); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(entryPath(s, k))
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(fi.ModTime()) > time.Minute {
		t.Errorf("after Touch the entry's mtime is %v", fi.ModTime())
	}

	if err := s.Remove(k); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(k); !errors.Is(err, ErrMiss) {
		t.Errorf("Get after Remove = %v, want ErrMiss", err)
	}
	if err := s.Remove(k); !errors.Is(err, ErrMiss) {
		t.Errorf("second Remove = %v, want ErrMiss", err)
	}
}

func TestConcurrentPut(t *testing.T) {
	dir := newStore(t, Options{}).Dir()
	const writers, puts, keys = 8, 25, 4

	var wg sync.WaitGroup
	errs := make(chan error, writers*puts*2)
	for w := range writers {
		wg.Go(func() {
			// Each writer opens its own store, as separate processes would.
			s, err := Open(dir, Options{})
			if err != nil {
				errs <- err
				return
			}
			for i := range puts {
				k := testKey(i % keys)
				e := testEntry(k, 1+i%7)
				e.Image = fmt.Sprintf("/images/w%d-%d.sif", w, i)
				if err := s.Put(k, e); err != nil {
					errs <- err
				}
				got, err := s.Get(testKey((i + 1) % keys))
				if err != nil && !errors.Is(err, ErrMiss) {
					errs <- err
				}
				if err == nil && got.Key != testKey((i+1)%keys) {
					errs <- fmt.Errorf("Get returned key %+v", got.Key)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range keys {
		got, err := s.Get(testKey(i))
		if err != nil {
			t.Fatalf("key %d: %v", i, err)
		}
		if !strings.HasPrefix(got.Image, "/images/w") || len(got.Scan.Findings) == 0 {
			t.Errorf("key %d: unexpected entry %+v", i, got)
		}
	}
	entries, err := s.List()
	if err != nil || len(entries) != keys {
		t.Errorf("List = %d entries, %v; want %d", len(entries), err, keys)
	}
	if temps := tempFiles(t, s); len(temps) != 0 {
		t.Errorf("temporary files left: %v", temps)
	}
}

// rewrite replaces the file at path with what change makes of its content.
func rewrite(t *testing.T, path string, change func([]byte) []byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, change(data), filePerm); err != nil {
		t.Fatal(err)
	}
}
