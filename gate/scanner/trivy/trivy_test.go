package trivy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scan-gate/scan-gate/gate/finding"
	"github.com/scan-gate/scan-gate/gate/scanner"
)

// These tests run the real trivy against a fixture DB of real Debian 12 advisories, built by
// testdata/trivydb at the root of the module.

// toolDir holds what is built once per test binary: the fixture writer and a shared DB.
var toolDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "scan-gate-trivy-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	toolDir = dir
	code := m.Run()
	// The shared DB is read-only, which stops a non-root owner removing its files.
	os.Chmod(filepath.Join(dir, "shared", "db"), 0o755)
	os.RemoveAll(dir)
	os.Exit(code)
}

// realTrivy returns the trivy binary to test with, or skips: unless
// SCAN_GATE_REQUIRE_SCANNERS=1, which makes a missing trivy a failure. When the tests run as
// root, scans run as nobody, who may not reach /root/go/bin: the binary is then linked (or
// copied) into toolDir.
func realTrivy(t *testing.T) string {
	t.Helper()
	path := "/root/go/bin/trivy"
	if _, err := os.Stat(path); err != nil {
		if path, err = exec.LookPath("trivy"); err != nil {
			if os.Getenv("SCAN_GATE_REQUIRE_SCANNERS") == "1" {
				t.Fatal("trivy not in /root/go/bin or PATH, and SCAN_GATE_REQUIRE_SCANNERS=1")
			}
			t.Skip("trivy not in /root/go/bin or PATH")
		}
	}
	if os.Geteuid() != 0 {
		return path
	}

	trivyOnce.Do(func() { trivyPath, trivyErr = placeForNobody(path) })
	if trivyErr != nil {
		t.Fatal(trivyErr)
	}
	return trivyPath
}

var (
	trivyOnce sync.Once
	trivyPath string
	trivyErr  error
)

func placeForNobody(path string) (string, error) {
	placed := filepath.Join(toolDir, "bin", "trivy")
	if err := os.MkdirAll(filepath.Dir(placed), 0o755); err != nil {
		return "", err
	}
	if err := os.Chmod(toolDir, 0o755); err != nil {
		return "", err
	}
	if err := os.Link(path, placed); err == nil {
		return placed, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return placed, os.WriteFile(placed, data, 0o755)
}

var (
	writerOnce sync.Once
	writerPath string
	writerErr  error
)

// writeFixtureDB writes the fixture DB to dir/db, dated updated ("" for the default date).
func writeFixtureDB(t *testing.T, dir, updated string) {
	t.Helper()
	writerOnce.Do(func() {
		writerPath = filepath.Join(toolDir, "trivydb")
		cmd := exec.Command("go", "build", "-o", writerPath, ".")
		cmd.Dir = filepath.Join("..", "..", "..", "testdata", "trivydb")
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=readonly")
		if out, err := cmd.CombinedOutput(); err != nil {
			writerErr = fmt.Errorf("building the fixture DB writer: %w\n%s", err, out)
		}
	})
	if writerErr != nil {
		t.Fatal(writerErr)
	}

	args := []string{"-o", dir}
	if updated != "" {
		args = append(args, "-updated", updated)
	}
	if out, err := exec.Command(writerPath, args...).CombinedOutput(); err != nil {
		t.Fatalf("writing the fixture DB: %v\n%s", err, out)
	}
}

var (
	sharedDBOnce sync.Once
	sharedDB     string
)

// readOnlyDB is the fixture DB every scan test shares, as a site would: read-only to the
// scanning user, made once per test binary.
func readOnlyDB(t *testing.T) string {
	t.Helper()
	sharedDBOnce.Do(func() {
		dir := filepath.Join(toolDir, "shared")
		writeFixtureDB(t, dir, "")
		for _, p := range []string{"db/trivy.db", "db/metadata.json"} {
			chmod(t, filepath.Join(dir, p), 0o444)
		}
		chmod(t, filepath.Join(dir, "db"), 0o555)
		chmod(t, toolDir, 0o755)
		sharedDB = dir
	})
	if sharedDB == "" {
		t.Fatal("the shared fixture DB could not be made")
	}
	return sharedDB
}

// scanAs is who the scan runs as: "nobody" when the tests run as root, so that the DB's
// read-only modes mean something; else this user.
func scanAs() *scanner.Credential {
	if os.Geteuid() == 0 {
		return &scanner.Credential{UID: 65534, GID: 65534}
	}
	return nil
}

// openDir is a t.TempDir that the scanning user may enter.
func openDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	chmod(t, filepath.Dir(dir), 0o755)
	chmod(t, dir, 0o755)
	return dir
}

// The five packages of the test trees: binary name, Debian source name.
var testPackages = [][2]string{
	{"libc6", "glibc"},
	{"libcurl4", "curl"},
	{"libexpat1", "expat"},
	{"libssl3", "openssl"},
	{"libwebp7", "libwebp"},
}

var (
	// vulnerable are the versions Debian 12.0 shipped.
	vulnerable = []string{"2.36-9+deb12u1", "7.88.1-10+deb12u1", "2.5.0-1", "3.0.9-1",
		"1.2.4-0.2"}
	// patched are the versions of a Debian 12.11 machine (dpkg-query -W).
	patched = []string{"2.36-9+deb12u14", "7.88.1-10+deb12u14", "2.5.0-1+deb12u1",
		"3.0.19-1~deb12u2", "1.2.4-0.2+deb12u1"}
)

// debianTree writes a Debian 12.5 root filesystem with the test packages at versions.
func debianTree(t *testing.T, versions []string) string {
	t.Helper()
	root := openDir(t)
	writeFile(t, root, "etc/debian_version", "12.5\n")
	writeFile(t, root, "etc/os-release", `PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
`)
	var status strings.Builder
	for i, pkg := range testPackages {
		fmt.Fprintf(&status, "Package: %s\nStatus: install ok installed\n"+
			"Architecture: amd64\nSource: %s\nVersion: %s\n"+
			"Description: test package\n\n", pkg[0], pkg[1], versions[i])
	}
	writeFile(t, root, "var/lib/dpkg/status", status.String())
	return root
}

func newRealBackend(t *testing.T, dbDir string) *Backend {
	t.Helper()
	b, err := New(Config{Path: realTrivy(t), DBDir: dbDir, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func scanTree(t *testing.T, b *Backend, root string) (*finding.Scan, error) {
	t.Helper()
	start := time.Now()
	scan, err := b.Scan(t.Context(), scanner.Target{
		Root: root, ScratchDir: openDir(t), Credential: scanAs(),
	})
	t.Logf("trivy scan took %s", time.Since(start).Round(time.Millisecond))
	return scan, err
}

func TestScanVulnerableTree(t *testing.T) {
	db := readOnlyDB(t)
	before := snapshot(t, db)
	b := newRealBackend(t, db)

	scan, err := scanTree(t, b, debianTree(t, vulnerable))
	if err != nil {
		t.Fatal(err)
	}

	type short struct {
		id, pkg, installed, fixed string
		sev                       finding.Severity
	}
	var got []short
	for _, f := range scan.Findings {
		if f.FixState != finding.Fixed || f.Location != "debian 12.5" || f.Title == "" {
			t.Errorf("finding %s: fix state %q, location %q, title %q",
				f.ID, f.FixState, f.Location, f.Title)
		}
		got = append(got, short{f.ID, f.Package, f.Installed,
			strings.Join(f.FixedVersions, " "), f.Severity})
	}
	want := []short{
		{"CVE-2023-38545", "libcurl4", "7.88.1-10+deb12u1", "7.88.1-10+deb12u4", finding.Critical},
		{"CVE-2024-45491", "libexpat1", "2.5.0-1", "2.5.0-1+deb12u1", finding.Critical},
		{"CVE-2024-45492", "libexpat1", "2.5.0-1", "2.5.0-1+deb12u1", finding.Critical},
		{"CVE-2023-4863", "libwebp7", "1.2.4-0.2", "1.2.4-0.2+deb12u1", finding.High},
		{"CVE-2023-4911", "libc6", "2.36-9+deb12u1", "2.36-9+deb12u3", finding.High},
		{"CVE-2023-5363", "libssl3", "3.0.9-1", "3.0.11-1~deb12u2", finding.High},
		{"CVE-2023-38546", "libcurl4", "7.88.1-10+deb12u1", "7.88.1-10+deb12u4", finding.Low},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("findings:\ngot  %v\nwant %v", got, want)
	}

	if scan.OS != "debian 12.5" || scan.Scanner != "trivy" || scan.ScannerVersion != "0.74.0" {
		t.Errorf("scan = %s %s on %q, want trivy 0.74.0 on debian 12.5",
			scan.Scanner, scan.ScannerVersion, scan.OS)
	}
	if want := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC); !scan.DBUpdatedAt.Equal(want) {
		t.Errorf("DBUpdatedAt = %s, want %s", scan.DBUpdatedAt, want)
	}
	if after := snapshot(t, db); !reflect.DeepEqual(before, after) {
		t.Errorf("the shared DB changed:\nbefore %v\nafter  %v", before, after)
	}
}

// TestScanParallel runs scans side by side on the one shared DB: each has its own scan cache,
// so none waits for another's lock.
func TestScanParallel(t *testing.T) {
	b := newRealBackend(t, readOnlyDB(t))
	const scans = 4
	roots := make([]string, scans)
	for i := range roots {
		roots[i] = debianTree(t, vulnerable)
	}

	errs := make(chan error, scans)
	for _, root := range roots {
		scratch := openDir(t)
		go func() {
			scan, err := b.Scan(t.Context(), scanner.Target{
				Root: root, ScratchDir: scratch, Credential: scanAs(),
			})
			if err == nil && len(scan.Findings) != 7 {
				err = fmt.Errorf("%d findings, want 7", len(scan.Findings))
			}
			errs <- err
		}()
	}
	start := time.Now()
	for range scans {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	t.Logf("%d parallel scans took %s", scans, time.Since(start).Round(time.Millisecond))
}

func TestScanPatchedTree(t *testing.T) {
	b := newRealBackend(t, readOnlyDB(t))
	scan, err := scanTree(t, b, debianTree(t, patched))
	if err != nil {
		t.Fatal(err)
	}
	if len(scan.Findings) != 0 || scan.Findings == nil {
		t.Errorf("findings = %#v, want an empty list", scan.Findings)
	}
	if scan.OS != "debian 12.5" {
		t.Errorf("OS = %q, want debian 12.5", scan.OS)
	}
}

func TestScanIncomplete(t *testing.T) {
	tests := []struct {
		name    string
		spoil   func(t *testing.T, root string)
		wantErr string
	}{
		{"no OS files", func(t *testing.T, root string) {
			remove(t, root, "etc/debian_version")
			remove(t, root, "etc/os-release")
		}, "detected no OS and scanned no OS packages, but the tree has a package " +
			"database (var/lib/dpkg/status)"},
		{"unreadable OS files", func(t *testing.T, root string) {
			chmod(t, filepath.Join(root, "etc/debian_version"), 0o000)
			chmod(t, filepath.Join(root, "etc/os-release"), 0o000)
		}, "could not read 2 file(s) of the image, first etc/debian_version"},
		{"unreadable directory", func(t *testing.T, root string) {
			chmod(t, filepath.Join(root, "var/lib/dpkg"), 0o000)
		}, "may not read var/lib/dpkg"},
		{"package database removed", func(t *testing.T, root string) {
			remove(t, root, "var/lib/dpkg/status")
		}, "detected debian 12.5 but the image has no package database"},
		{"package database emptied", func(t *testing.T, root string) {
			writeFile(t, root, "var/lib/dpkg/status", "")
		}, "the package database var/lib/dpkg/status is empty"},
		{"package database is a directory", func(t *testing.T, root string) {
			remove(t, root, "var/lib/dpkg/status")
			mkdir(t, root, "var/lib/dpkg/status")
		}, "is a directory"},
	}
	b := newRealBackend(t, readOnlyDB(t))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := debianTree(t, vulnerable)
			tt.spoil(t, root)
			t.Cleanup(func() { chmodAll(root) })

			_, err := scanTree(t, b, root)
			if !errors.Is(err, scanner.ErrIncomplete) ||
				!strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Scan() error = %v, want ErrIncomplete saying %q", err, tt.wantErr)
			}
		})
	}
}

// TestScanUnreadablePackageDB: a status file the scanning user may not read is found before
// trivy runs (trivy's dpkg analyzer would fail on it), and the scan is incomplete.
func TestScanUnreadablePackageDB(t *testing.T) {
	b := newRealBackend(t, readOnlyDB(t))
	root := debianTree(t, vulnerable)
	chmod(t, filepath.Join(root, "var/lib/dpkg/status"), 0o000)
	t.Cleanup(func() { chmodAll(root) })

	_, err := scanTree(t, b, root)
	want := "var/lib/dpkg/status"
	if os.Geteuid() != 0 {
		want = "var/lib/dpkg/status: permission denied" // the pre-check applies to others
	}
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Scan() error = %v, want one naming %s", err, want)
	}
}

func TestScanTimeoutKillsTrivy(t *testing.T) {
	b := newRealBackend(t, readOnlyDB(t))
	if _, err := b.Identify(t.Context()); err != nil { // so that the deadline hits the scan
		t.Fatal(err)
	}
	scratch := openDir(t)
	// The deadline strikes once trivy runs: a fixed short timeout raced a fast machine,
	// where the whole scan can finish first.
	ctx, cancel := context.WithCancelCause(t.Context())
	defer cancel(nil)
	go func() {
		for ctx.Err() == nil {
			if len(processesMentioning(t, scratch)) > 0 {
				cancel(context.DeadlineExceeded)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()

	_, err := b.Scan(ctx, scanner.Target{
		Root: debianTree(t, vulnerable), ScratchDir: scratch, Credential: scanAs(),
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Scan() error = %v, want a deadline error", err)
	}
	for _, pid := range processesMentioning(t, scratch) {
		waitGone(t, pid)
	}
}

func TestIdentifyRealTrivy(t *testing.T) {
	db := t.TempDir()
	writeFixtureDB(t, db, "2026-11-30T00:00:00Z")
	b := newRealBackend(t, db)

	got, err := b.Identify(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := scanner.Identity{Name: "trivy", Version: "0.74.0",
		DBUpdatedAt: time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)}
	if got != want {
		t.Errorf("Identify() = %+v, want %+v", got, want)
	}
}

// processesMentioning lists the processes whose command line contains s.
func processesMentioning(t *testing.T, s string) []int {
	t.Helper()
	var pids []int
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, name := range cmdlines {
		data, err := os.ReadFile(name)
		if err != nil || !strings.Contains(string(data), s) {
			continue
		}
		var pid int
		if _, err := fmt.Sscanf(name, "/proc/%d/cmdline", &pid); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// snapshot lists every file under dir with its mode, size and modification time.
func snapshot(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		out = append(out, fmt.Sprintf("%s %s %d %s", path, info.Mode(), info.Size(),
			info.ModTime().Format(time.RFC3339Nano)))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// chmodAll opens a spoiled tree up again so that it can be removed.
func chmodAll(root string) {
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		os.Chmod(path, 0o755)
		return nil
	})
}

func remove(t *testing.T, root, rel string) {
	t.Helper()
	if err := os.Remove(filepath.Join(root, rel)); err != nil {
		t.Fatal(err)
	}
}
