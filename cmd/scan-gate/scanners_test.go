package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/scan-gate/scan-gate/internal/scantest"
)

// scriptScanners are the other scanners the scripts drive: a real grype with its fixture
// DB ($GRYPE, $GRYPE_DB; the [grype] condition) and the QScanner double
// ($QSCANNER_DOUBLE).
type scriptScanners struct {
	grype, grypeDB, double string
}

// setupScanners finds grype (a missing grype skips the [grype] scripts, or fails the test
// when SCAN_GATE_REQUIRE_SCANNERS=1), writes its fixture DB and builds the double.
func setupScanners(t *testing.T) scriptScanners {
	var s scriptScanners
	if scantest.LookTool("grype", "SCAN_GATE_GRYPE", scantest.GrypeFallbacks...) != "" ||
		os.Getenv(scantest.RequireEnv) == "1" {
		s.grype = scantest.Grype(t)
		s.grypeDB = scantest.SharedGrypeDB(t)
	}
	s.double = scantest.QScannerDouble(t)
	// TestScripts is this binary's only user of scantest.
	t.Cleanup(scantest.Remove)
	return s
}

func (s scriptScanners) setenv(env *testscript.Env) {
	env.Setenv("GRYPE", s.grype)
	env.Setenv("GRYPE_DB", s.grypeDB)
	env.Setenv("QSCANNER_DOUBLE", s.double)
}

// cmdQScanner installs the QScanner double as DIR/qscanner, with DIR writable by the
// scanning user (the double records its invocations there), and sets its scenario:
// qscanner DIR SCENARIO.
func cmdQScanner(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: qscanner DIR SCENARIO")
	}
	dir := ts.MkAbs(args[0])
	ts.Check(os.MkdirAll(dir, 0o777))
	ts.Check(os.Chmod(dir, 0o777))
	bin := filepath.Join(dir, "qscanner")
	if _, err := os.Stat(bin); err != nil {
		data, err := os.ReadFile(ts.Getenv("QSCANNER_DOUBLE"))
		ts.Check(err)
		ts.Check(os.WriteFile(bin, data, 0o755))
	}
	ts.Check(os.WriteFile(filepath.Join(dir, "scenario"), []byte(args[1]+"\n"), 0o644))
}

// cmdGone checks that none of the process ids in FILE runs any more (a zombie waiting for
// its parent does not count): gone FILE.
func cmdGone(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: gone FILE")
	}
	for _, field := range strings.Fields(ts.ReadFile(args[0])) {
		pid, err := strconv.Atoi(field)
		ts.Check(err)
		running := false
		for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); {
			running = processRuns(pid)
			if !running {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if running != neg {
			ts.Fatalf("process %d: running %v", pid, running)
		}
	}
}

func processRuns(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	if _, rest, ok := strings.Cut(string(stat), ") "); ok && strings.HasPrefix(rest, "Z") {
		return false
	}
	return syscall.Kill(pid, 0) == nil
}
