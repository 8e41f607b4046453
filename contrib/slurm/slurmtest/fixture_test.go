package slurmtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scan-gate/scan-gate/internal/testimage"
)

// fixture is what every test shares, built once per test binary: the binaries, a fixture
// vulnerability DB, the images, and the stand-in apptainer.
type fixture struct {
	dir string
	// scanGate, helper and plugin are built from this tree: scan-gate, spank-helper and
	// the SPANK plugin (by `make slurm`).
	scanGate, helper, plugin string
	trivy, db                string
	// vulnerable and patched are SIF images of real Debian 12 package versions.
	vulnerable, patched string
	// sandbox is a vulnerable root filesystem with a static sleeper, /bin/sleeper N, for
	// a container found only at run time.
	sandbox string
	// standin holds the stand-in apptainer, for the jobs' PATH.
	standin string
}

var (
	fixtureOnce  sync.Once
	shared       fixture
	fixtureErr   error
	fixtureTook  time.Duration
	fixtureClean func()
)

func TestMain(m *testing.M) {
	code := m.Run()
	if fixtureClean != nil {
		fixtureClean()
	}
	os.Exit(code)
}

// getFixture builds the shared fixture the first time a test asks for it.
func getFixture(t *testing.T) *fixture {
	t.Helper()
	trivy := requireTrivy(t)
	fixtureOnce.Do(func() {
		start := time.Now()
		shared, fixtureErr = buildFixture(trivy)
		fixtureTook = time.Since(start)
	})
	if fixtureErr != nil {
		t.Fatal(fixtureErr)
	}
	return &shared
}

func buildFixture(trivy string) (fixture, error) {
	dir, err := os.MkdirTemp("", "scan-gate-slurmtest-")
	if err != nil {
		return fixture{}, err
	}
	fixtureClean = func() { os.RemoveAll(dir) }
	f := fixture{dir: dir, trivy: trivy, db: filepath.Join(dir, "trivy-db"),
		scanGate: filepath.Join(dir, "bin", "scan-gate"),
		helper:   filepath.Join(dir, "bin", "spank-helper"),
		plugin:   filepath.Join(dir, "bin", "scan_gate.so"),
		standin:  filepath.Join(dir, "standin"),
		sandbox:  filepath.Join(dir, "images", "runtime-only"),
	}
	root := repoRoot()
	steps := []struct {
		what string
		cmd  *exec.Cmd
	}{
		{"building the SPANK plugin and spank-helper", exec.Command("make",
			"--no-print-directory", "-C", root, "slurm", "BIN="+filepath.Dir(f.helper),
			"SPANK_SO="+f.plugin)},
		{"building scan-gate", exec.Command("go", "build", "-o", f.scanGate,
			filepath.Join(root, "cmd", "scan-gate"))},
		{"building the fixture vulnerability DB", exec.Command("go", "run", ".", "-o",
			f.db, "-updated", "2026-11-30T00:00:00Z")},
	}
	steps[2].cmd.Dir = filepath.Join(root, "testdata", "trivydb")
	for _, s := range steps {
		if out, err := s.cmd.CombinedOutput(); err != nil {
			return f, fmt.Errorf("%s: %v\n%s", s.what, err, out)
		}
	}

	ctx := context.Background()
	f.vulnerable = filepath.Join(dir, "images", "vulnerable.sif")
	f.patched = filepath.Join(dir, "images", "patched.sif")
	if err := os.MkdirAll(filepath.Dir(f.patched), 0o755); err != nil {
		return f, err
	}
	if err := testimage.Build(ctx, f.vulnerable, testimage.Vulnerable); err != nil {
		return f, err
	}
	if err := testimage.Build(ctx, f.patched, testimage.Patched); err != nil {
		return f, err
	}
	if err := testimage.WriteRootfs(f.sandbox, testimage.Vulnerable); err != nil {
		return f, err
	}
	if err := buildSleeper(filepath.Join(f.sandbox, "bin", "sleeper")); err != nil {
		return f, err
	}
	if err := os.MkdirAll(f.standin, 0o755); err != nil {
		return f, err
	}
	if err := os.WriteFile(filepath.Join(f.standin, "apptainer"), []byte(standinApptainer),
		0o755); err != nil {
		return f, err
	}
	return f, makeReachable(dir)
}

// standinApptainer stands in for apptainer, which Debian 12 does not package: the gate must
// not depend on it.
const standinApptainer = `#!/bin/sh
# A stand-in for "apptainer exec IMAGE COMMAND...". For a SIF image it runs COMMAND on the
# host (the gate has decided before). A directory (a sandbox image) becomes the root of
# COMMAND through an unprivileged user namespace, as apptainer does, so that the task's
# /proc/PID/root is the container's.
if [ "$1" != exec ] || [ $# -lt 3 ]; then
	echo "stand-in apptainer: usage: apptainer exec IMAGE COMMAND..." >&2
	exit 2
fi
image=$2
shift 2
if [ -d "$image" ]; then
	exec unshare --user --map-root-user --root="$image" "$@"
fi
exec "$@"
`

// buildSleeper builds a static program that sleeps N seconds, to run inside a sandbox that
// has no shell or C library.
func buildSleeper(out string) error {
	src, err := os.MkdirTemp("", "sleeper-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(src)
	files := map[string]string{
		"go.mod": "module sleeper\n\ngo 1.22\n",
		"main.go": `package main

import (
	"os"
	"strconv"
	"time"
)

func main() {
	seconds, _ := strconv.Atoi(os.Args[1])
	time.Sleep(time.Duration(seconds) * time.Second)
}
`,
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(src, name), []byte(text), 0o644); err != nil {
			return err
		}
	}
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building the sleeper: %v\n%s", err, msg)
	}
	return nil
}

// makeReachable opens dir and everything in it to the job user and the scanning user, as
// shared images and /var/tmp are on a node.
func makeReachable(dir string) error {
	// The parent is made traversable only when it is a test's own directory: never a
	// shared one such as /tmp, whose sticky bit and world-writable mode must stay.
	if parent := filepath.Dir(dir); parent != filepath.Clean(os.TempDir()) {
		if fi, err := os.Stat(parent); err == nil && fi.Mode()&os.ModeSticky == 0 {
			os.Chmod(parent, 0o755)
		}
	}
	return filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		mode := fi.Mode().Perm() | 0o444
		if fi.IsDir() || fi.Mode()&0o100 != 0 {
			mode |= 0o111
		}
		return os.Chmod(p, mode)
	})
}

// trivyPath finds a real trivy the scanning user can run: $SCAN_GATE_TRIVY, PATH, or
// /usr/local/bin.
func trivyPath() string {
	if p := os.Getenv("SCAN_GATE_TRIVY"); p != "" {
		return p
	}
	if p, err := exec.LookPath("trivy"); err == nil {
		if abs, err := filepath.Abs(p); err == nil && !strings.HasPrefix(abs, "/root/") {
			return abs
		}
	}
	if _, err := os.Stat("/usr/local/bin/trivy"); err == nil {
		return "/usr/local/bin/trivy"
	}
	return ""
}

func requireTrivy(t *testing.T) string {
	t.Helper()
	p := trivyPath()
	if p == "" {
		if os.Getenv("SCAN_GATE_REQUIRE_SCANNERS") == "1" {
			t.Fatal("trivy not found and SCAN_GATE_REQUIRE_SCANNERS=1 (run make tools)")
		}
		t.Skip("trivy not found (run make tools)")
	}
	return p
}

func repoRoot() string {
	wd, _ := os.Getwd()
	return filepath.Clean(filepath.Join(wd, "..", "..", ".."))
}

// scenario is one policy with its own cache, audit log and counting scanner, and a working
// directory for the jobs: what one test case needs to start from nothing.
type scenario struct {
	dir, policy, audit, work, counter string
}

// newScenario writes a policy whose scanner counts its runs before handing over to trivy.
// extra is appended to the policy.
func newScenario(t *testing.T, f *fixture, extra string) scenario {
	t.Helper()
	dir := reachableDir(t)
	s := scenario{dir: dir, policy: filepath.Join(dir, "policy.toml"),
		audit: filepath.Join(dir, "audit.jsonl"), work: filepath.Join(dir, "work"),
		counter: filepath.Join(dir, "counter", "runs")}
	mkdir(t, s.work, 0o777)
	mkdir(t, filepath.Dir(s.counter), 0o777)
	wrapper := filepath.Join(dir, "trivy-counting")
	write(t, wrapper, fmt.Sprintf("#!/bin/sh\n[ \"$1\" = rootfs ] && echo run >> %s\n"+
		"exec %s \"$@\"\n", s.counter, f.trivy), 0o755)
	write(t, s.policy, fmt.Sprintf(`# written by the Slurm integration test
[scanner.trivy]
path = %q
db_dir = %q

[extract]
scratch_dir = %q

[cache]
dir = %q

[audit]
log = %q
%s`, wrapper, f.db, filepath.Join(dir, "scratch"), filepath.Join(dir, "cache"), s.audit,
		extra), 0o644)
	return s
}

// scannerRuns counts the scanner runs of a scenario.
func (s scenario) scannerRuns(t *testing.T) int {
	data, err := os.ReadFile(s.counter)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(data), "run\n")
}

// auditLines returns the scenario's audit log, one decision a line.
func (s scenario) auditLines(t *testing.T) []string {
	data, err := os.ReadFile(s.audit)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(data)), "\n")
}

// reachableDir is a temporary directory the job user and the scanning user can traverse.
func reachableDir(t *testing.T) string {
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o755)
	return dir
}

func mkdir(t *testing.T, dir string, mode os.FileMode) {
	if err := os.MkdirAll(dir, mode); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, mode)
}

func write(t *testing.T, path, text string, mode os.FileMode) {
	if err := os.WriteFile(path, []byte(text), mode); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, mode)
}

func run(t *testing.T, name string, args ...string) {
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}
