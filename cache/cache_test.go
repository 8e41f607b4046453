package cache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scan-gate/scan-gate/gate/finding"
)

// otherUID is a uid no test file belongs to.
const otherUID = 12345

func newStore(t *testing.T, opts Options) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "cache"), opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testKey(i int) Key {
	return Key{Content: fmt.Sprintf("%016x", 0xabc0+i), Scanner: "trivy", Settings: "sev=all"}
}

func testEntry(k Key, findings int) *Entry {
	scan := finding.Scan{
		Scanner:        k.Scanner,
		ScannerVersion: "0.58.1",
		DBUpdatedAt:    time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		ScannedAt:      time.Date(2026, 1, 3, 4, 5, 6, 7, time.UTC),
		OS:             "debian 12.5",
		Findings:       []finding.Finding{},
	}
	for i := range findings {
		scan.Findings = append(scan.Findings, finding.Finding{
			ID:            fmt.Sprintf("CVE-2024-%05d", i),
			Package:       "openssl",
			Installed:     "3.0.11-1",
			FixedVersions: []string{"3.0.13-1"},
			FixState:      finding.Fixed,
			Severity:      finding.Severity(i % 5),
			Location:      "debian 12.5 (var/lib/dpkg/status)",
		})
	}
	return &Entry{
		Key:      k,
		Image:    "/shared/images/app.sif",
		Scan:     scan,
		StoredAt: time.Date(2026, 1, 3, 5, 0, 0, 0, time.UTC),
	}
}

func entryPath(s *Store, k Key) string { return s.path(entriesDir, k.Name()+entrySuffix) }

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files to another user")
	}
}

func chown(t *testing.T, path string, uid int) {
	t.Helper()
	if err := os.Lchown(path, uid, -1); err != nil {
		if errors.Is(err, syscall.EPERM) {
			t.Skipf("cannot chown here: %v", err)
		}
		t.Fatal(err)
	}
}

func TestOpenCreatesLayout(t *testing.T) {
	s := newStore(t, Options{})
	for _, sub := range []string{entriesDir, statDir, locksDir} {
		fi, err := os.Lstat(filepath.Join(s.Dir(), sub))
		if err != nil {
			t.Fatal(err)
		}
		if !fi.IsDir() || fi.Mode().Perm()&0o022 != 0 {
			t.Errorf("%s: mode %v, want a directory writable by its owner only", sub, fi.Mode())
		}
	}
	fi, err := os.Stat(filepath.Join(s.Dir(), locksDir))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("locks: mode %v, want no access for group or others", fi.Mode())
	}

	if _, err := Open(s.Dir(), Options{}); err != nil {
		t.Errorf("reopening: %v", err)
	}
}

func TestOpenRefuses(t *testing.T) {
	// Each case spoils one directory: the parent of the cache ("..") or one in the cache.
	tests := []struct {
		name    string
		at      string
		mode    fs.FileMode // chmod to this mode, if non-zero
		chown   bool        // give to otherUID (needs root)
		symlink bool        // replace with a symbolic link to the parent
	}{
		{name: "world-writable cache directory", at: ".", mode: 0o777},
		{name: "group-writable entries", at: entriesDir, mode: 0o775},
		{name: "world-writable locks", at: locksDir, mode: 0o703},
		{name: "stat is a symbolic link", at: statDir, symlink: true},
		{name: "world-writable parent without sticky bit", at: "..", mode: 0o777},
		{name: "cache directory owned by another user", at: ".", chown: true},
		{name: "entries owned by another user", at: entriesDir, chown: true},
		{name: "parent owned by another user", at: "..", chown: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.chown {
				requireRoot(t)
			}
			dir := filepath.Join(t.TempDir(), "parent", "cache")
			if _, err := Open(dir, Options{}); err != nil {
				t.Fatal(err)
			}
			spoiled := filepath.Clean(filepath.Join(dir, tt.at))
			switch {
			case tt.mode != 0:
				chmod(t, spoiled, tt.mode)
			case tt.chown:
				chown(t, spoiled, otherUID)
			case tt.symlink:
				mustRemove(t, spoiled)
				if err := os.Symlink(filepath.Dir(dir), spoiled); err != nil {
					t.Fatal(err)
				}
			}

			for _, opts := range []Options{{}, {ReadOnly: true}} {
				_, err := Open(dir, opts)
				if err == nil {
					t.Fatalf("Open(%+v) succeeded, want refusal", opts)
				}
				if !strings.Contains(err.Error(), spoiled) {
					t.Errorf("Open(%+v) = %v, want an error naming %s", opts, err, spoiled)
				}
			}
		})
	}
}

func TestOpenAccepts(t *testing.T) {
	t.Run("sticky world-writable parent", func(t *testing.T) {
		parent := t.TempDir()
		chmod(t, parent, 0o777|fs.ModeSticky)
		if _, err := Open(filepath.Join(parent, "cache"), Options{}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("symbolic link to the cache", func(t *testing.T) {
		real := filepath.Join(t.TempDir(), "real")
		link := filepath.Join(t.TempDir(), "link")
		if err := os.Mkdir(real, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(real, link); err != nil {
			t.Fatal(err)
		}
		s, err := Open(link, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if want, _ := filepath.EvalSymlinks(real); s.Dir() != want {
			t.Errorf("Dir() = %s, want %s", s.Dir(), want)
		}
	})
	t.Run("owner among the trusted users", func(t *testing.T) {
		requireRoot(t)
		dir := filepath.Join(t.TempDir(), "cache")
		if _, err := Open(dir, Options{}); err != nil {
			t.Fatal(err)
		}
		for _, sub := range []string{"", entriesDir, statDir, locksDir} {
			chown(t, filepath.Join(dir, sub), otherUID)
		}
		if _, err := Open(dir, Options{TrustedUIDs: []uint32{0, otherUID}}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestUserDir(t *testing.T) {
	tests := []struct {
		xdg, home string
		want      string
		wantErr   bool
	}{
		{xdg: "/xdg", home: "/home/u", want: "/xdg/scan-gate"},
		{xdg: "", home: "/home/u", want: "/home/u/.cache/scan-gate"},
		{xdg: "relative", home: "/home/u", want: "/home/u/.cache/scan-gate"},
		{xdg: "", home: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Setenv("XDG_CACHE_HOME", tt.xdg)
		t.Setenv("HOME", tt.home)
		got, err := UserDir()
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("UserDir() with XDG_CACHE_HOME=%q HOME=%q = %q, %v; want %q, error %v",
				tt.xdg, tt.home, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestReadOnlyMissingDirIsEmpty(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "absent")
	s, err := Open(dir, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(testKey(1)); !errors.Is(err, ErrMiss) {
		t.Errorf("Get = %v, want ErrMiss", err)
	}
	if got, err := s.List(); err != nil || len(got) != 0 {
		t.Errorf("List = %v, %v; want nothing", got, err)
	}
	if _, ok := s.LookupStat("/x", FileID{Dev: 1, Ino: 2}); ok {
		t.Error("LookupStat hit on an absent cache")
	}
	exerciseWriters(t, s)
	if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("read-only store created %s (%v)", dir, err)
	}
}

func TestReadOnlyWritesNothing(t *testing.T) {
	rw := newStore(t, Options{})
	k := testKey(1)
	if err := rw.Put(k, testEntry(k, 3)); err != nil {
		t.Fatal(err)
	}
	id := FileID{Dev: 1, Ino: 2, Size: 3, MtimeNs: 4, CtimeNs: 5}
	if err := rw.RecordStat("/img.sif", id, "abc"); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-48 * time.Hour)
	statFile := rw.path(statDir, statName("/img.sif", id)+statSuffix)
	for _, path := range []string{entryPath(rw, k), statFile} {
		if err := os.Chtimes(path, old, old); err != nil {
			t.Fatal(err)
		}
	}
	before := snapshot(t, rw.Dir())

	ro, err := Open(rw.Dir(), Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ro.Get(k); err != nil {
		t.Errorf("Get = %v", err)
	}
	if content, ok := ro.LookupStat("/img.sif", id); !ok || content != "abc" {
		t.Errorf("LookupStat = %q, %v", content, ok)
	}
	if got, err := ro.List(); err != nil || len(got) != 1 {
		t.Errorf("List = %d entries, %v", len(got), err)
	}
	if err := ro.Touch(k); err != nil {
		t.Errorf("Touch = %v", err)
	}
	exerciseWriters(t, ro)

	if after := snapshot(t, rw.Dir()); after != before {
		t.Errorf("read-only store changed the cache:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// exerciseWriters calls every writing method of a read-only store and wants ErrReadOnly.
func exerciseWriters(t *testing.T, s *Store) {
	t.Helper()
	k := testKey(2)
	_, lockErr := s.Lock(t.Context(), k)
	_, gcErr := s.GC(0, time.Now().Add(time.Hour))
	_, purgeErr := s.Purge()
	errs := map[string]error{
		"Put":        s.Put(k, testEntry(k, 1)),
		"Remove":     s.Remove(testKey(1)),
		"RecordStat": s.RecordStat("/y", FileID{Dev: 1, Ino: 3}, "def"),
		"Lock":       lockErr,
		"GC":         gcErr,
		"Purge":      purgeErr,
	}
	for name, err := range errs {
		if !errors.Is(err, ErrReadOnly) {
			t.Errorf("%s on a read-only store = %v, want ErrReadOnly", name, err)
		}
	}
}

// snapshot describes every file under dir: name, mode, owner, size, mtime and inode.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		fmt.Fprintf(&b, "%s %v uid=%d size=%d mtime=%d ino=%d\n", path, fi.Mode(), st.Uid,
			fi.Size(), fi.ModTime().UnixNano(), st.Ino)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func chmod(t *testing.T, path string, mode fs.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func mustRemove(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}
