package trivy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/scan-gate/scan-gate/gate/scanner"
)

func TestFindPackageDB(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, root string)
		want    string
		wantErr string
	}{
		{"none", func(t *testing.T, root string) {}, "", ""},
		{"dpkg", func(t *testing.T, root string) {
			writeFile(t, root, "var/lib/dpkg/status", "")
		}, "var/lib/dpkg/status", ""},
		{"distroless", func(t *testing.T, root string) {
			writeFile(t, root, "var/lib/dpkg/status.d/base", "")
		}, "var/lib/dpkg/status.d", ""},
		{"apk", func(t *testing.T, root string) {
			writeFile(t, root, "lib/apk/db/installed", "")
		}, "lib/apk/db/installed", ""},
		{"rpm sqlite", func(t *testing.T, root string) {
			writeFile(t, root, "usr/lib/sysimage/rpm/rpmdb.sqlite", "")
		}, "usr/lib/sysimage/rpm/rpmdb.sqlite", ""},
		{"status is a dir component", func(t *testing.T, root string) {
			writeFile(t, root, "var/lib/dpkg", "not a dir")
		}, "", ""},
		{"through a link out of the tree", func(t *testing.T, root string) {
			outside := t.TempDir()
			writeFile(t, outside, "dpkg/status", "")
			mkdir(t, root, "var/lib")
			symlink(t, filepath.Join(outside, "dpkg"), filepath.Join(root, "var/lib/dpkg"))
		}, "", "goes through a symbolic link at var/lib/dpkg"},
		{"status linked inside the tree", func(t *testing.T, root string) {
			writeFile(t, root, "opt/pk/status", "")
			mkdir(t, root, "var/lib/dpkg")
			symlink(t, "../../../opt/pk/status", filepath.Join(root, "var/lib/dpkg/status"))
		}, "", "goes through a symbolic link at var/lib/dpkg/status"},
		{"status is a FIFO", func(t *testing.T, root string) {
			mkdir(t, root, "var/lib/dpkg")
			if err := syscall.Mkfifo(filepath.Join(root, "var/lib/dpkg/status"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "", "not a file trivy can read"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			tt.setup(t, root)
			got, err := findPackageDB(root)
			if tt.wantErr != "" {
				if !errors.Is(err, scanner.ErrIncomplete) ||
					!strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("findPackageDB() = %v, want ErrIncomplete saying %q", err,
						tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("findPackageDB() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCheckBlindSpots(t *testing.T) {
	debianRoot := t.TempDir()
	writeFile(t, debianRoot, "var/lib/dpkg/status", "Package: x\n")
	bareRoot := t.TempDir()

	noOS := &report{SchemaVersion: 2}
	withOS, err := parseReport([]byte(sampleReport))
	if err != nil {
		t.Fatal(err)
	}
	denied := &stderrLog{}
	denied.line("2026-12-03T17:00:00Z\tDEBUG\tPermission error\tfile_path=\"var/lib/dpkg/status\"")

	tests := []struct {
		name    string
		rep     *report
		root    string
		log     *stderrLog
		wantErr string
	}{
		{"no OS, dpkg database", noOS, debianRoot, &stderrLog{}, "detected no OS"},
		{"no OS, no database", noOS, bareRoot, &stderrLog{}, "detected no operating system"},
		{"OS scanned", withOS, debianRoot, &stderrLog{}, ""},
		{"permission error", withOS, debianRoot, denied, "could not read 1 file(s)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkBlindSpots(tt.rep, tt.root, tt.log)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("checkBlindSpots() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, scanner.ErrIncomplete) ||
				!strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("checkBlindSpots() = %v, want ErrIncomplete saying %q",
					err, tt.wantErr)
			}
		})
	}
}

func TestFirstClosedDir(t *testing.T) {
	// Readers are described relative to the directory's owner and group.
	stranger := func(uid, gid uint32) reader {
		return reader{uid: uid + 1, gids: []uint32{gid + 1}}
	}
	member := func(uid, gid uint32) reader {
		return reader{uid: uid + 1, gids: []uint32{gid}}
	}
	superuser := func(uint32, uint32) reader { return reader{uid: 0} }

	tests := []struct {
		name   string
		mode   os.FileMode
		reader func(uid, gid uint32) reader
		want   string
	}{
		{"open to all", 0o755, stranger, ""},
		{"owner only, other user", 0o700, stranger, "a/b"},
		{"group may", 0o750, member, ""},
		{"group may not", 0o705, member, "a/b"},
		{"search but no read", 0o711, stranger, "a/b"},
		{"root reads all", 0o000, superuser, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			mkdir(t, root, "a/b/c")
			dir := filepath.Join(root, "a/b")
			info, err := os.Stat(dir)
			if err != nil {
				t.Fatal(err)
			}
			st := info.Sys().(*syscall.Stat_t)
			if err := os.Chmod(dir, tt.mode); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Chmod(dir, 0o755) })

			got, err := firstClosedDir(root, tt.reader(st.Uid, st.Gid))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("firstClosedDir() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestStderrLog(t *testing.T) {
	log := &stderrLog{}
	input := "2026-12-03T17:00:00Z\tINFO\t[vulndb] Need to update DB\n" +
		"2026-12-03T17:00:00Z\tDEBUG\t[analyzer] Permission error\tfile_path=\"etc/sh\\tadow\"\n" +
		"2026-12-03T17:00:01Z\tDEBUG\tPermission error\tfile_path=\"var/lib/dpkg/status\"\n" +
		"2026-12-03T17:00:01Z\tDEBUG\t[x] Not a Permission error\tfile_path=\"etc/passwd\"\n" +
		"2026-12-03T17:00:01Z\tFATAL\tFatal error\trun error: boom"
	// Written in odd pieces, as a pipe may deliver it.
	for len(input) > 0 {
		n := min(7, len(input))
		log.Write([]byte(input[:n]))
		input = input[n:]
	}
	log.flush()

	if log.permissionErrors != 2 || log.firstPermissionError != "etc/sh\tadow" {
		t.Errorf("permission errors = %d, first %q; want 2, %q",
			log.permissionErrors, log.firstPermissionError, "etc/sh\tadow")
	}
	if !strings.HasSuffix(log.tail(), "run error: boom") {
		t.Errorf("tail() = %q, want it to end with the last line", log.tail())
	}

	for range 2 * tailLines {
		log.Write([]byte(strings.Repeat("x", 2*maxLineKept) + "\n"))
	}
	if len(log.last) != tailLines || len(log.last[0]) > maxLineKept+3 {
		t.Errorf("kept %d lines of %d bytes, want %d lines of at most %d",
			len(log.last), len(log.last[0]), tailLines, maxLineKept+3)
	}
}

func writeFile(t *testing.T, root, rel, content string) {
	t.Helper()
	path := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mkdir(t *testing.T, root, rel string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(root, rel), 0o755); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}
