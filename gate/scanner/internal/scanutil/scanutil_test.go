package scanutil

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/scan-gate/scan-gate/gate/scanner"

	"github.com/scan-gate/scan-gate/internal/proc"
)

func TestFirstClosed(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: checks what another user may read")
	}
	nobody := ReaderFor(&proc.Credential{UID: 65534, GID: 65534})
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "var/lib/dpkg"), 0o755)
	os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), []byte("x"), 0o644)
	if got, err := FirstClosed(root, nobody); err != nil || got != "" {
		t.Fatalf("open tree: %q, %v", got, err)
	}

	os.Chmod(filepath.Join(root, "var/lib/dpkg/status"), 0o600)
	if got, _ := FirstClosed(root, nobody); got != "var/lib/dpkg/status" {
		t.Errorf("unreadable package DB: %q", got)
	}
	os.Chmod(filepath.Join(root, "var/lib/dpkg/status"), 0o644)
	os.Mkdir(filepath.Join(root, "opt"), 0o711)
	if got, _ := FirstClosed(root, nobody); got != "opt" {
		t.Errorf("unlistable dir: %q", got)
	}
	if got, _ := FirstClosed(root, ReaderFor(&proc.Credential{})); got != "" {
		t.Errorf("root reads everything, got %q", got)
	}
}

func TestFindPackageDB(t *testing.T) {
	root := t.TempDir()
	if got, _ := FindPackageDB(root); got != "" {
		t.Errorf("empty tree: %q", got)
	}
	os.MkdirAll(filepath.Join(root, "lib/apk/db"), 0o755)
	os.WriteFile(filepath.Join(root, "lib/apk/db/installed"), []byte("x"), 0o644)
	if got, _ := FindPackageDB(root); got != "lib/apk/db/installed" {
		t.Errorf("apk tree: %q", got)
	}
	os.MkdirAll(filepath.Join(root, "real"), 0o755)
	os.Symlink(filepath.Join(root, "real"), filepath.Join(root, "var"))
	os.MkdirAll(filepath.Join(root, "real/lib/dpkg"), 0o755)
	os.WriteFile(filepath.Join(root, "real/lib/dpkg/status"), []byte("x"), 0o644)
	if _, err := FindPackageDB(root); !errors.Is(err, scanner.ErrIncomplete) {
		t.Errorf("a package DB behind a link: %v, want ErrIncomplete", err)
	}
}

func TestOSPackages(t *testing.T) {
	tests := []struct {
		doc  string
		n    int
		kind string
	}{
		{`{"components":[{"purl":"pkg:deb/debian/curl@1"},{"purl":"pkg:npm/x@1",` +
			`"components":[{"purl":"pkg:deb/debian/libc6@2"}]}]}`, 2, "deb"},
		{`{"packages":[{"externalRefs":[{"referenceType":"purl",` +
			`"referenceLocator":"pkg:rpm/redhat/bash@5"}]}]}`, 1, "rpm"},
		{`{"components":[{"purl":"pkg:pypi/requests@2"}]}`, 0, ""},
		{`garbage`, 0, ""},
	}
	for _, tt := range tests {
		if n, kind := OSPackages([]byte(tt.doc)); n != tt.n || kind != tt.kind {
			t.Errorf("OSPackages(%s) = %d, %q; want %d, %q", tt.doc, n, kind, tt.n, tt.kind)
		}
	}
}

func TestMemo(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "tool")
	os.WriteFile(file, []byte("v1"), 0o755)
	calls := 0
	compute := func(context.Context) (string, error) {
		calls++
		data, _ := os.ReadFile(file)
		return string(data), nil
	}
	m := &Memo{StateDir: filepath.Join(dir, "state"), Name: "tool-version"}
	for range 3 {
		if v, err := m.Get(t.Context(), file, compute); err != nil || v != "v1" {
			t.Fatalf("Get: %q, %v", v, err)
		}
	}
	// Another process finds it in the state dir.
	other := &Memo{StateDir: m.StateDir, Name: "tool-version"}
	if v, _ := other.Get(t.Context(), file, compute); v != "v1" || calls != 1 {
		t.Errorf("second process: %q after %d computations, want v1 after 1", v, calls)
	}
	// A changed file is asked again.
	os.WriteFile(file, []byte("v2-longer"), 0o755)
	if v, _ := m.Get(t.Context(), file, compute); v != "v2-longer" || calls != 2 {
		t.Errorf("changed file: %q after %d computations", v, calls)
	}
}

func TestLineLog(t *testing.T) {
	var watched []string
	l := &LineLog{Watch: func(s string) { watched = append(watched, s) },
		Secrets: []string{"s3cret"}}
	l.Write([]byte("one\ntoken s3cret in"))
	l.Write([]byte(" two\n\n"))
	for i := range 20 {
		l.Write([]byte(strings.Repeat("x", i) + "\n"))
	}
	l.Write([]byte("last"))
	l.Flush()
	if len(watched) != 24 || watched[1] != "token s3cret in two" {
		t.Errorf("watched %d lines, second %q", len(watched), watched[1])
	}
	tail := l.Tail()
	if strings.Contains(tail, "s3cret") || !strings.HasSuffix(tail, "last") ||
		strings.Count(tail, "\n") != tailLines-1 {
		t.Errorf("tail:\n%s", tail)
	}
	short := &LineLog{Secrets: []string{"s3cret"}}
	short.Write([]byte("token s3cret\n"))
	if short.Tail() != "token [redacted]" {
		t.Errorf("redacted tail %q", short.Tail())
	}
}

func TestFindPackageDBTable(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, root string)
		want    string
		wantErr string
	}{
		{"none", func(t *testing.T, root string) {}, "", ""},
		{"dpkg", func(t *testing.T, root string) {
			writeFile(t, root, "var/lib/dpkg/status", "x")
		}, "var/lib/dpkg/status", ""},
		{"distroless", func(t *testing.T, root string) {
			writeFile(t, root, "var/lib/dpkg/status.d/base", "")
		}, "var/lib/dpkg/status.d", ""},
		{"apk", func(t *testing.T, root string) {
			writeFile(t, root, "lib/apk/db/installed", "x")
		}, "lib/apk/db/installed", ""},
		{"rpm sqlite", func(t *testing.T, root string) {
			writeFile(t, root, "usr/lib/sysimage/rpm/rpmdb.sqlite", "x")
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
			writeFile(t, root, "opt/pk/status", "x")
			mkdir(t, root, "var/lib/dpkg")
			symlink(t, "../../../opt/pk/status", filepath.Join(root, "var/lib/dpkg/status"))
		}, "", "goes through a symbolic link at var/lib/dpkg/status"},
		{"status is a FIFO", func(t *testing.T, root string) {
			mkdir(t, root, "var/lib/dpkg")
			status := filepath.Join(root, "var/lib/dpkg/status")
			if err := syscall.Mkfifo(status, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "", "not a file a scanner can read"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			tt.setup(t, root)
			got, err := FindPackageDB(root)
			if tt.wantErr != "" {
				if !errors.Is(err, scanner.ErrIncomplete) ||
					!strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("FindPackageDB() = %v, want ErrIncomplete saying %q", err,
						tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("FindPackageDB() = %q, want %q", got, tt.want)
			}
		})
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
