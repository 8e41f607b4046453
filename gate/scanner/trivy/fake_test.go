package trivy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scan-gate/scan-gate/gate/scanner"
)

// These tests drive the backend with a shell script standing in for trivy, for what a real
// trivy cannot be made to do on demand.

// fakeTrivy writes an executable script answering `version` with version and running body
// for anything else, with $out set to the --output argument. The environment has no PATH.
func fakeTrivy(t *testing.T, version, body string) string {
	t.Helper()
	script := `#!/bin/sh
if [ "$1" = version ]; then
	printf '{"Version":"%s"}\n' '` + version + `'
	exit 0
fi
while [ $# -gt 0 ]; do
	if [ "$1" = --output ]; then out=$2; fi
	shift
done
` + body + "\n"
	path := filepath.Join(t.TempDir(), "trivy")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// metadataOnlyDB is a DB dir with only a metadata.json: enough for the backend's own reads.
func metadataOnlyDB(t *testing.T, updated string) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, dir, "db/metadata.json",
		`{"Version":2,"UpdatedAt":"`+updated+`","NextUpdate":"2126-01-01T00:00:00Z"}`)
	return dir
}

func TestScanRefusesBadRuns(t *testing.T) {
	const good = `{"SchemaVersion":2,"Metadata":{"OS":{"Family":"debian","Name":"12.5"}},` +
		`"Results":[{"Target":"debian 12.5","Class":"os-pkgs","Packages":[{"Name":"x"}]}]}`
	t.Setenv("TRIVY_LEAKED", "caller's secret")
	tests := []struct {
		name, body, wantErr string
	}{
		{"garbage report", `printf 'garbage' > "$out"`, "decoding report"},
		{"empty report", `: > "$out"`, "empty report"},
		{"missing report", `exit 0`, "reading trivy's report"},
		{"exit 1 with a report", `printf '%s' '` + good + `' > "$out"
			echo "2026-12-03T17:00:00Z	INFO	first line" >&2
			echo "2026-12-03T17:00:01Z	FATAL	Fatal error	disk on fire" >&2
			exit 1`, "disk on fire"},
		{"only PATH, HOME and TMPDIR are passed", `[ -n "$TRIVY_LEAKED" ] && exit 3
			[ "$(/bin/grep -cz . /proc/$$/environ)" = 3 ] || exit 4
			printf '%s' '` + good + `' > "$out"`, ""},
		{"home and tmp are private", `case "$TMPDIR" in "$HOME"/tmp) ;; *) exit 5;; esac
			printf '%s' '` + good + `' > "$out"`, ""},
		// Before, standard output was kept in memory whole: a flood grew the gate.
		{"standard output is not kept", `[ "$(/bin/readlink /proc/$$/fd/1)" = /dev/null ] ||
			exit 6
			printf '%s' '` + good + `' > "$out"`, ""},
		{"report too large", `/usr/bin/head -c 300000000 /dev/zero > "$out"`,
			"is larger than 268435456 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := New(Config{
				Path:  fakeTrivy(t, "0.0.1", tt.body),
				DBDir: metadataOnlyDB(t, "2026-01-02T03:04:05Z"),
			})
			if err != nil {
				t.Fatal(err)
			}
			root := t.TempDir()
			writeFile(t, root, "var/lib/dpkg/status", "Package: x\n")
			scan, err := b.Scan(t.Context(), scanner.Target{Root: root, ScratchDir: t.TempDir()})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Scan() error = %v", err)
				}
				if len(scan.Findings) != 0 || scan.ScannerVersion != "0.0.1" {
					t.Errorf("Scan() = %+v, want no findings from version 0.0.1", scan)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Scan() error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestScanKillsProcessGroup checks that at the deadline the whole process group dies, not only
// the direct child.
func TestScanKillsProcessGroup(t *testing.T) {
	body := `/bin/sleep 300 &
echo $! > "$HOME/child.pid"
wait`
	b, err := New(Config{
		Path:  fakeTrivy(t, "0.0.1", body),
		DBDir: metadataOnlyDB(t, "2026-01-02T03:04:05Z"),
	})
	if err != nil {
		t.Fatal(err)
	}
	scratch := t.TempDir()

	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = b.Scan(ctx, scanner.Target{Root: t.TempDir(), ScratchDir: scratch})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Scan() error = %v, want a deadline error", err)
	}
	if took := time.Since(start); took > 500*time.Millisecond+2*time.Second {
		t.Errorf("Scan() returned after %s", took)
	}

	pids, _ := filepath.Glob(filepath.Join(scratch, "trivy-*", "child.pid"))
	if len(pids) != 1 {
		t.Fatalf("the fake did not record its child: %v", pids)
	}
	data, err := os.ReadFile(pids[0])
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid)
}

// waitGone fails unless process pid is gone or a zombie within a few seconds.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	for range 50 {
		stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
		if err != nil {
			return
		}
		// The state follows the parenthesised command name.
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 &&
			strings.HasPrefix(string(stat[i:]), ") Z") {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("process %d still runs after the scan was killed", pid)
}

func TestIdentifyMemoizesVersion(t *testing.T) {
	counter := filepath.Join(t.TempDir(), "calls")
	path := fakeTrivy(t, "0.0.1", "exit 1")
	// Count `version` calls: rewrite the script to note each one.
	script, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	counted := strings.Replace(string(script), `if [ "$1" = version ]; then`,
		`if [ "$1" = version ]; then echo x >> '`+counter+`'`, 1)
	if err := os.WriteFile(path, []byte(counted), 0o755); err != nil {
		t.Fatal(err)
	}
	calls := func() int {
		data, _ := os.ReadFile(counter)
		return strings.Count(string(data), "x")
	}

	cfg := Config{Path: path, DBDir: metadataOnlyDB(t, "2026-01-02T03:04:05Z"),
		StateDir: t.TempDir()}
	want := scanner.Identity{Name: "trivy", Version: "0.0.1",
		DBUpdatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	identify := func() {
		t.Helper()
		b, err := New(cfg) // a new Backend: only StateDir remembers
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			got, err := b.Identify(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("Identify() = %+v, want %+v", got, want)
			}
		}
	}

	identify()
	identify()
	if n := calls(); n != 1 {
		t.Errorf("trivy version ran %d times for one binary, want 1", n)
	}

	// A rebuilt binary (new mtime) is asked again.
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	identify()
	if n := calls(); n != 2 {
		t.Errorf("trivy version ran %d times for two builds, want 2", n)
	}
}

func TestIdentifyDevBuild(t *testing.T) {
	path := fakeTrivy(t, "dev", "exit 1")
	b, err := New(Config{Path: path, DBDir: metadataOnlyDB(t, "2026-01-02T03:04:05Z")})
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.Identify(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	if want := "dev+sha256:" + hex.EncodeToString(sum[:])[:12]; got.Version != want {
		t.Errorf("Identify().Version = %q, want %q", got.Version, want)
	}
}

func TestIdentifyRefusesUndatedDB(t *testing.T) {
	tests := []struct{ name, metadata, wantErr string }{
		{"missing", "", "reading trivy DB metadata"},
		{"garbage", "{", "decoding trivy DB metadata"},
		{"no date", `{"Version":2}`, "no UpdatedAt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dbDir := t.TempDir()
			if tt.metadata != "" {
				writeFile(t, dbDir, "db/metadata.json", tt.metadata)
			}
			b, err := New(Config{Path: fakeTrivy(t, "0.0.1", "exit 1"), DBDir: dbDir})
			if err != nil {
				t.Fatal(err)
			}
			_, err = b.Identify(t.Context())
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Identify() error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestNew(t *testing.T) {
	fake := fakeTrivy(t, "0.0.1", "exit 1")
	tests := []struct {
		name    string
		cfg     Config
		path    string // PATH
		wantErr string
	}{
		{"fine", Config{Path: fake, DBDir: "/db"}, "/nonexistent", ""},
		{"no DB", Config{Path: fake}, "/nonexistent", "no DB dir"},
		{"negative timeout", Config{Path: fake, DBDir: "/db", Timeout: -time.Second},
			"/nonexistent", "negative timeout"},
		{"owned flag", Config{Path: fake, DBDir: "/db", ExtraArgs: []string{"--format=table"}},
			"/nonexistent", "changes a flag"},
		{"owned short flag", Config{Path: fake, DBDir: "/db", ExtraArgs: []string{"-o", "x"}},
			"/nonexistent", "changes a flag"},
		{"no binary", Config{Path: "/nonexistent/trivy", DBDir: "/db"}, "",
			"not an executable file"},
		{"from PATH", Config{Path: "trivy", DBDir: "/db"}, filepath.Dir(fake), ""},
		{"empty PATH: common dirs", Config{Path: "sh", DBDir: "/db"}, "", ""},
		{"empty PATH: not there", Config{Path: "surely-no-such-tool", DBDir: "/db"}, "",
			"not found in PATH or /usr/local/sbin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("PATH", tt.path)
			_, err := New(tt.cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("New() error = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("New() error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestSettings(t *testing.T) {
	fake := fakeTrivy(t, "0.0.1", "exit 1")
	settings := func(extra ...string) string {
		b, err := New(Config{Path: fake, DBDir: "/db", ExtraArgs: extra,
			Timeout: time.Duration(len(extra)) * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		return b.Settings()
	}
	if got, want := settings(), `v1 scanners=vuln extra=[]`; got != want {
		t.Errorf("Settings() = %q, want %q", got, want)
	}
	if got, want := settings("--skip-dirs", "opt/a b"),
		`v1 scanners=vuln extra=["--skip-dirs" "opt/a b"]`; got != want {
		t.Errorf("Settings() = %q, want %q", got, want)
	}
}
