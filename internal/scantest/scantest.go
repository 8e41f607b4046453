// Package scantest gives tests the real scanners, their fixture DBs and the QScanner double,
// each built or found once per test binary, in places the unprivileged scanning user can
// reach. Nothing here is used by the gate itself.
package scantest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// RequireEnv is the variable that turns a missing scanner from a skip into a failure (CI).
const RequireEnv = "SCAN_GATE_REQUIRE_SCANNERS"

// FixtureDate is the DB date the fixture DBs get unless a test asks for another.
const FixtureDate = "2026-11-30T00:00:00Z"

var (
	dirOnce sync.Once
	dir     string
	dirErr  error
)

// Main runs the tests of a package that uses scantest, then removes what scantest made.
// Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	Remove()
	os.Exit(code)
}

// Remove removes what scantest made (built writers, fixture DBs, the double) and forgets
// it. Call it when no test of the binary needs any of it any more.
func Remove() {
	onceMu.Lock()
	defer onceMu.Unlock()
	results = map[string]*onceResult{}
	if dir != "" {
		os.RemoveAll(dir)
	}
	dirOnce, dir, dirErr = sync.Once{}, "", nil
}

// Dir is a directory shared by the tests of one test binary, traversable by every user
// (as /var/tmp is). Main or Remove removes it.
func Dir(t testing.TB) string {
	t.Helper()
	dirOnce.Do(func() {
		dir, dirErr = os.MkdirTemp("", "scan-gate-scantest-")
		if dirErr == nil {
			dirErr = os.Chmod(dir, 0o755)
		}
	})
	if dirErr != nil {
		t.Fatal(dirErr)
	}
	return dir
}

// RepoRoot is the root of the scan-gate module, found upwards from the working directory.
func RepoRoot(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		data, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && strings.HasPrefix(string(data),
			"module github.com/scan-gate/scan-gate\n") {
			return d
		}
		if d == filepath.Dir(d) {
			t.Fatalf("no scan-gate go.mod above %s", wd)
		}
	}
}

// Tool finds a scanner binary: $envVar, then PATH, then the given fallback paths. It skips
// the test when none is there, or fails it when SCAN_GATE_REQUIRE_SCANNERS=1. As root, it
// returns a path the scanning user can run: a copy when the binary lies where others may
// not go (root's GOPATH).
func Tool(t testing.TB, name, envVar string, fallbacks ...string) string {
	t.Helper()
	path := LookTool(name, envVar, fallbacks...)
	if path == "" {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("%s not found and %s=1 (run make tools)", name, RequireEnv)
		}
		t.Skipf("%s not found (run make tools)", name)
	}
	if os.Geteuid() != 0 || othersCanReach(path) {
		return path
	}
	// The same binary where others may go (make tools installs into /usr/local/bin too).
	for _, p := range fallbacks {
		if othersCanReach(p) && sameContent(path, p) {
			return p
		}
	}
	return once(t, "tool:"+path, func() (string, error) {
		placed := filepath.Join(Dir(t), "bin", name)
		if err := os.MkdirAll(filepath.Dir(placed), 0o755); err != nil {
			return "", err
		}
		out, err := exec.Command("cp", path, placed).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("copying %s: %v: %s", path, err, out)
		}
		return placed, os.Chmod(placed, 0o755)
	})
}

// LookTool finds a binary as Tool does, or returns "" when there is none.
func LookTool(name, envVar string, fallbacks ...string) string {
	if path := os.Getenv(envVar); path != "" {
		return path
	}
	if p, err := exec.LookPath(name); err == nil {
		abs, _ := filepath.Abs(p)
		return abs
	}
	for _, p := range fallbacks {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// GrypeFallbacks are where Grype looks for grype after $SCAN_GATE_GRYPE and PATH.
var GrypeFallbacks = []string{"/usr/local/bin/grype", "/root/go/bin/grype"}

// Grype is the real grype, as Tool finds it ($SCAN_GATE_GRYPE, PATH, /usr/local/bin).
func Grype(t testing.TB) string {
	return Tool(t, "grype", "SCAN_GATE_GRYPE", GrypeFallbacks...)
}

// Trivy is the real trivy, as Tool finds it ($SCAN_GATE_TRIVY, PATH, /root/go/bin).
func Trivy(t testing.TB) string {
	return Tool(t, "trivy", "SCAN_GATE_TRIVY", "/usr/local/bin/trivy", "/root/go/bin/trivy")
}

// GrypeDB writes the Grype fixture DB (testdata/grypedb) to out/6, built at built (RFC
// 3339), readable by everyone.
func GrypeDB(t testing.TB, out, built string) {
	t.Helper()
	writer := buildNested(t, "grypedb")
	runWriter(t, writer, "-o", out, "-built", built)
}

// TrivyDB writes the Trivy fixture DB (testdata/trivydb) to out/db, updated at updated (RFC
// 3339), readable by everyone.
func TrivyDB(t testing.TB, out, updated string) {
	t.Helper()
	writer := buildNested(t, "trivydb")
	runWriter(t, writer, "-o", out, "-updated", updated)
}

// SharedGrypeDB is one Grype fixture DB dated FixtureDate for the whole test binary.
func SharedGrypeDB(t testing.TB) string {
	t.Helper()
	return once(t, "shared-grype-db", func() (string, error) {
		out := filepath.Join(Dir(t), "grype-db")
		GrypeDB(t, out, FixtureDate)
		return out, nil
	})
}

// SharedTrivyDB is one Trivy fixture DB dated FixtureDate for the whole test binary.
func SharedTrivyDB(t testing.TB) string {
	t.Helper()
	return once(t, "shared-trivy-db", func() (string, error) {
		out := filepath.Join(Dir(t), "trivy-db")
		TrivyDB(t, out, FixtureDate)
		return out, nil
	})
}

// QScannerDouble builds the QScanner double (testdata/qscanner-double) once and returns
// the binary, which tests copy where they want it (it reads its scenario from a file next
// to itself).
func QScannerDouble(t testing.TB) string {
	t.Helper()
	return once(t, "qscanner-double", func() (string, error) {
		out := filepath.Join(Dir(t), "bin", "qscanner-double")
		cmd := exec.Command("go", "build", "-o", out, "./testdata/qscanner-double")
		cmd.Dir = RepoRoot(t)
		if data, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("building the QScanner double: %v\n%s", err, data)
		}
		return out, os.Chmod(filepath.Dir(out), 0o755)
	})
}

// InstallQScannerDouble copies the double to dir/qscanner, with dir made writable by every
// user, so that the double, running as the scanning user, can record its invocations there.
// The scenario is read from dir/scenario ("allow" when there is none).
func InstallQScannerDouble(t testing.TB, dir string) string {
	t.Helper()
	src := QScannerDouble(t)
	if err := os.MkdirAll(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o777)
	dst := filepath.Join(dir, "qscanner")
	if out, err := exec.Command("cp", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("copying the QScanner double: %v: %s", err, out)
	}
	return dst
}

// buildNested builds the fixture writer in the nested module testdata/NAME once.
func buildNested(t testing.TB, name string) string {
	t.Helper()
	return once(t, "writer:"+name, func() (string, error) {
		out := filepath.Join(Dir(t), "bin", name)
		cmd := exec.Command("go", "build", "-o", out, ".")
		cmd.Dir = filepath.Join(RepoRoot(t), "testdata", name)
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=readonly")
		if data, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("building the %s fixture writer: %v\n%s", name, err, data)
		}
		return out, nil
	})
}

func runWriter(t testing.TB, writer string, args ...string) {
	t.Helper()
	if out, err := exec.Command(writer, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(writer), strings.Join(args, " "), err, out)
	}
	if err := openUp(args[1]); err != nil {
		t.Fatal(err)
	}
}

// openUp makes dir and what it holds readable by everyone.
func openUp(dir string) error {
	return filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		mode := fi.Mode().Perm() | 0o444
		if fi.IsDir() {
			mode |= 0o111
		}
		return os.Chmod(p, mode)
	})
}

// sameContent reports whether the files at a and b hold the same bytes.
func sameContent(a, b string) bool {
	fa, err := os.Open(a)
	if err != nil {
		return false
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false
	}
	defer fb.Close()
	ia, errA := fa.Stat()
	ib, errB := fb.Stat()
	if errA != nil || errB != nil || ia.Size() != ib.Size() {
		return false
	}
	bufA, bufB := make([]byte, 1<<20), make([]byte, 1<<20)
	for {
		na, errA := io.ReadFull(fa, bufA)
		nb, _ := io.ReadFull(fb, bufB)
		if na != nb || !bytes.Equal(bufA[:na], bufB[:nb]) {
			return false
		}
		if errA != nil {
			return true
		}
	}
}

// othersCanReach reports whether every directory above path lets others through.
func othersCanReach(path string) bool {
	for dir := filepath.Dir(path); ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		if dir == "/" {
			return true
		}
	}
}

var (
	onceMu  sync.Mutex
	results = map[string]*onceResult{}
)

type onceResult struct {
	sync.Once
	value string
	err   error
}

// once runs make at most once per key and test binary; a failure fails every caller.
func once(t testing.TB, key string, make func() (string, error)) string {
	t.Helper()
	onceMu.Lock()
	r := results[key]
	if r == nil {
		r = &onceResult{}
		results[key] = r
	}
	onceMu.Unlock()
	r.Do(func() {
		r.value, r.err = make()
		if r.err == nil && r.value == "" {
			r.err = errors.New(key + ": nothing made")
		}
	})
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.value
}
