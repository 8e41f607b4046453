package grype

import (
	"context"
	"errors"
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scan-gate/scan-gate/gate/finding"
	"github.com/scan-gate/scan-gate/gate/scanner"
	"github.com/scan-gate/scan-gate/internal/proc"
	"github.com/scan-gate/scan-gate/internal/scantest"
	"github.com/scan-gate/scan-gate/internal/testimage"
)

// These tests run the real grype against the fixture DB of real Debian 12 advisories
// written by testdata/grypedb (the same advisories as the Trivy fixture).

// reachable returns a fresh temporary directory the scanning user can traverse.
func reachable(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o755)
	return dir
}

// nobody is the scanning user when the tests run as root, else nil (scan as oneself).
func nobody(t *testing.T) *proc.Credential {
	t.Helper()
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	return &proc.Credential{UID: uint32(uid), GID: uint32(gid)}
}

func realBackend(t *testing.T) *Backend {
	t.Helper()
	b, err := New(Config{Path: scantest.Grype(t), DBDir: scantest.SharedGrypeDB(t),
		Timeout: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tree writes a Debian 12 root filesystem with pkgs and returns a target for it.
func tree(t *testing.T, pkgs []testimage.Package) scanner.Target {
	t.Helper()
	dir := reachable(t)
	root := filepath.Join(dir, "rootfs")
	if err := testimage.WriteRootfs(root, pkgs); err != nil {
		t.Fatal(err)
	}
	scratch := filepath.Join(dir, "scratch")
	if err := os.Mkdir(scratch, 0o755); err != nil {
		t.Fatal(err)
	}
	return scanner.Target{Root: root, ScratchDir: scratch, Credential: nobody(t)}
}

type brief struct {
	ID, Package, Installed, Fixed string
	Severity                      finding.Severity
}

func briefs(fs []finding.Finding) []brief {
	var out []brief
	for _, f := range fs {
		out = append(out, brief{f.ID, f.Package, f.Installed,
			strings.Join(f.FixedVersions, ","), f.Severity})
	}
	return out
}

func TestScanVulnerableTree(t *testing.T) {
	b := realBackend(t)
	scan, err := b.Scan(t.Context(), tree(t, testimage.Vulnerable))
	if err != nil {
		t.Fatal(err)
	}

	want := []brief{
		{"CVE-2023-38545", "curl", "7.88.1-10+deb12u1", "7.88.1-10+deb12u4", finding.Critical},
		{"CVE-2023-38545", "libcurl4", "7.88.1-10+deb12u1", "7.88.1-10+deb12u4",
			finding.Critical},
		{"CVE-2024-45491", "libexpat1", "2.5.0-1", "2.5.0-1+deb12u1", finding.Critical},
		{"CVE-2024-45492", "libexpat1", "2.5.0-1", "2.5.0-1+deb12u1", finding.Critical},
		{"CVE-2023-4863", "libwebp7", "1.2.4-0.2", "1.2.4-0.2+deb12u1", finding.High},
		{"CVE-2023-4911", "libc6", "2.36-9+deb12u1", "2.36-9+deb12u3", finding.High},
		{"CVE-2023-5363", "libssl3", "3.0.9-1", "3.0.11-1~deb12u2", finding.High},
		{"CVE-2023-38546", "curl", "7.88.1-10+deb12u1", "7.88.1-10+deb12u4", finding.Low},
		{"CVE-2023-38546", "libcurl4", "7.88.1-10+deb12u1", "7.88.1-10+deb12u4", finding.Low},
	}
	if got := briefs(scan.Findings); !reflect.DeepEqual(got, want) {
		t.Errorf("findings:\n got %v\nwant %v", got, want)
	}
	for _, f := range scan.Findings {
		if f.Location != "debian 12.5" || f.FixState != finding.Fixed || f.Title == "" ||
			len(f.Aliases) != 0 {
			t.Errorf("finding %+v: want location debian 12.5, fixed, a title, no aliases", f)
		}
	}
	if scan.Scanner != "grype" || scan.ScannerVersion != "0.121.3" || scan.OS != "debian 12.5" {
		t.Errorf("scan %s %s on %q, want grype 0.121.3 on debian 12.5", scan.Scanner,
			scan.ScannerVersion, scan.OS)
	}
	if want, _ := time.Parse(time.RFC3339, scantest.FixtureDate); !scan.DBUpdatedAt.Equal(want) {
		t.Errorf("DB date %s, want %s", scan.DBUpdatedAt, want)
	}
}

func TestScanPatchedTreeIsClean(t *testing.T) {
	b := realBackend(t)
	scan, err := b.Scan(t.Context(), tree(t, testimage.Patched))
	if err != nil {
		t.Fatal(err)
	}
	if len(scan.Findings) != 0 || scan.OS != "debian 12.5" {
		t.Errorf("patched tree: %d findings on %q, want none on debian 12.5",
			len(scan.Findings), scan.OS)
	}
}

func TestIdentify(t *testing.T) {
	b := realBackend(t)
	id, err := b.Identify(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want, _ := time.Parse(time.RFC3339, scantest.FixtureDate)
	if id.Name != "grype" || id.Version != "0.121.3" || !id.DBUpdatedAt.Equal(want) {
		t.Errorf("identity %+v, want grype 0.121.3 with DB of %s", id, want)
	}
}

// TestScanKeepsReports shows what `scan-gate scan` keeps of a grype run.
func TestScanKeepsReports(t *testing.T) {
	b := realBackend(t)
	dir := t.TempDir()
	ctx := scanner.WithReportDir(t.Context(), dir)
	if _, err := b.Scan(ctx, tree(t, testimage.Vulnerable)); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"grype-report.json", "grype-sbom.cdx.json"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !strings.Contains(string(data), "libcurl4") {
			t.Errorf("%s: %v, or it does not name libcurl4", name, err)
		}
	}
}

// Blindness is refused, never reported as clean.
func TestScanRefusesBlindness(t *testing.T) {
	b := realBackend(t)
	tests := []struct {
		name     string
		root     bool // needs root: the scan runs as nobody
		damage   func(root string) error
		contains string
	}{
		{"closed directory", true, func(root string) error {
			if err := os.MkdirAll(filepath.Join(root, "opt/private"), 0o755); err != nil {
				return err
			}
			return os.Chmod(filepath.Join(root, "opt/private"), 0o700)
		}, "may not read opt/private"},
		{"unreadable package database", true, func(root string) error {
			return os.Chmod(filepath.Join(root, "var/lib/dpkg/status"), 0o600)
		}, "may not read var/lib/dpkg/status"},
		{"no release files", false, func(root string) error {
			for _, f := range []string{"etc/os-release", "etc/debian_version"} {
				if err := os.Remove(filepath.Join(root, f)); err != nil {
					return err
				}
			}
			return nil
		}, "grype detected no distribution"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.root && os.Geteuid() != 0 {
				t.Skip("needs root: the scan must run as another user than the tree's owner")
			}
			target := tree(t, testimage.Vulnerable)
			if err := tt.damage(target.Root); err != nil {
				t.Fatal(err)
			}
			_, err := b.Scan(t.Context(), target)
			if !errors.Is(err, scanner.ErrIncomplete) || !strings.Contains(err.Error(),
				tt.contains) {
				t.Fatalf("error %v, want ErrIncomplete saying %q", err, tt.contains)
			}
		})
	}
}

func TestBlindLog(t *testing.T) {
	var l blindLog
	for _, line := range []string{
		`[0000]  INFO loaded DB status=valid time=23.259742ms`,
		`[0000]  WARN unable to access path="/t/rf/opt/secret": open /t/rf/opt/secret: ` +
			`permission denied from=syft`,
		`[0003] TRACE cataloger returned errors cataloger=dpkg-db-cataloger error=unable to ` +
			`catalog dpkg DB="/var/lib/dpkg/status": open /t/rf/var/lib/dpkg/status: ` +
			`permission denied from=syft location=/var/lib/dpkg/status`,
		`[0003] TRACE cataloger returned errors cataloger=javascript error=bad json`,
	} {
		l.watch(line)
	}
	if l.count != 2 || l.first != "/t/rf/opt/secret" {
		t.Errorf("count %d, first %q; want 2, /t/rf/opt/secret", l.count, l.first)
	}
}

// fakeGrype is a shell script standing in for grype, for what a real grype cannot be made
// to do on demand: it answers `version` and `db status`, and runs body for a scan with
// $out set to the --file argument.
func fakeGrype(t *testing.T, body string) *Backend {
	t.Helper()
	dir := reachable(t)
	script := `#!/bin/sh
case "$1" in
version) echo '{"version":"9.9.9"}'; exit 0;;
db) echo '{"built":"2026-11-30T00:00:00Z","valid":true}'; exit 0;;
esac
while [ $# -gt 0 ]; do
	if [ "$1" = --file ]; then out=$2; fi
	shift
done
` + body + "\n"
	path := filepath.Join(dir, "grype")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "db", "6")
	os.MkdirAll(db, 0o755)
	os.WriteFile(filepath.Join(db, "vulnerability.db"), []byte("x"), 0o644)
	b, err := New(Config{Path: path, DBDir: filepath.Dir(db), Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestScanRefusesBadRuns(t *testing.T) {
	const good = `{"matches":[],"distro":{"name":"debian","version":"12.5"},` +
		`"descriptor":{"name":"grype","version":"9.9.9"}}`
	writeGood := `printf '%s' '` + good + `' > "$out"; ` +
		`echo '{"components":[{"purl":"pkg:deb/debian/x@1"}]}' ` +
		`> "$(dirname "$out")/sbom.cdx.json"`
	tests := []struct {
		name, body, wantErr string
	}{
		{"exit 1", writeGood + "; echo 'db error' >&2; exit 1", "exit status 1"},
		{"garbage report", `printf 'garbage' > "$out"`, "decoding report"},
		{"empty report", `: > "$out"`, "empty report"},
		{"not grype's", `echo '{"Results":[]}' > "$out"`, "not a grype JSON report"},
		{"missing report", `exit 0`, "reading grype's report"},
		{"permission log", writeGood + `; echo '[0001]  WARN unable to access ` +
			`path="/x/y": open /x/y: permission denied' >&2`, "could not read 1 path"},
		{"hang", `sleep 60 & sleep 60`, "killed with its process group"},
		{"crash", `kill -SEGV $$`, "signal: segmentation fault"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := fakeGrype(t, tt.body)
			start := time.Now()
			_, err := b.Scan(t.Context(), tree(t, testimage.Vulnerable))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one saying %q", err, tt.wantErr)
			}
			if time.Since(start) > 20*time.Second {
				t.Errorf("took %s", time.Since(start))
			}
		})
	}
}

func TestScanAcceptsExit2(t *testing.T) {
	report := `{"matches":[],"distro":{"name":"debian","version":"12.5"},` +
		`"descriptor":{"name":"grype","version":"9.9.9"}}`
	b := fakeGrype(t, `printf '%s' '`+report+`' > "$out"; `+
		`echo '{"components":[{"purl":"pkg:deb/debian/x@1"}]}' `+
		`> "$(dirname "$out")/sbom.cdx.json"; exit 2`)
	scan, err := b.Scan(context.Background(), tree(t, testimage.Patched))
	if err != nil || scan.ScannerVersion != "9.9.9" {
		t.Fatalf("scan %+v, %v; want a clean scan by 9.9.9", scan, err)
	}
}

func TestNewRefusesOwnedFlags(t *testing.T) {
	for _, arg := range []string{"-o", "--output=table", "--file", "-vv", "-q", "--config"} {
		_, err := New(Config{Path: "/bin/sh", DBDir: "/x", ExtraArgs: []string{arg}})
		if err == nil {
			t.Errorf("extra argument %q accepted", arg)
		}
	}
	if _, err := New(Config{Path: "/bin/sh", DBDir: "/x",
		ExtraArgs: []string{"--only-fixed"}}); err != nil {
		t.Errorf("--only-fixed refused: %v", err)
	}
}
