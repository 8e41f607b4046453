package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/scan-gate/scan-gate/internal/testimage"
)

// processFixture is a work directory with a vulnerable image, a policy, and a trivy wrapper
// that counts scanner runs before handing over to the real trivy.
type processFixture struct {
	dir, policy, image, counter, self string
}

func newProcessFixture(t *testing.T) processFixture {
	t.Helper()
	trivy := requireTrivy(t)
	self, err := exec.LookPath("scan-gate")
	if err != nil {
		t.Fatal(err)
	}
	dir := reachableTempDir(t)
	db := filepath.Join(dir, "trivy-db")
	if err := buildFixtureDB(db, "2026-11-30T00:00:00Z"); err != nil {
		t.Fatal(err)
	}

	// The scanner runs as the unprivileged user: its counter must be writable by it.
	counterDir := filepath.Join(dir, "counter")
	os.Mkdir(counterDir, 0o777)
	os.Chmod(counterDir, 0o777)
	counter := filepath.Join(counterDir, "runs")
	wrapper := filepath.Join(dir, "trivy-counting")
	script := fmt.Sprintf("#!/bin/sh\n[ \"$1\" = rootfs ] && echo run >> %s\nexec %s \"$@\"\n",
		counter, trivy)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}

	img := filepath.Join(dir, "image.sif")
	if err := testimage.Build(t.Context(), img, testimage.Vulnerable); err != nil {
		t.Fatal(err)
	}
	os.Chmod(img, 0o644)
	if err := writeBasePolicy(dir, wrapper, db); err != nil {
		t.Fatal(err)
	}
	return processFixture{dir: dir, policy: filepath.Join(dir, "policy.toml"), image: img,
		counter: counter, self: self}
}

func (f processFixture) scannerRuns(t *testing.T) int {
	data, err := os.ReadFile(f.counter)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(data), "run\n")
}

func (f processFixture) check(args ...string) *exec.Cmd {
	cmd := exec.Command(f.self, append([]string{"check", "--policy", f.policy}, args...)...)
	cmd.Dir = f.dir
	return cmd
}

// TestConcurrentChecksScanOnce starts 32 checks of one uncached image at once: the scanner
// runs exactly once and every check gives the same verdict.
func TestConcurrentChecksScanOnce(t *testing.T) {
	f := newProcessFixture(t)
	const checks = 32

	type outcome struct {
		code   int
		stderr string
	}
	outcomes := make([]outcome, checks)
	var wg sync.WaitGroup
	for i := range checks {
		wg.Go(func() {
			cmd := f.check(f.image)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var exitErr *exec.ExitError
			code := 0
			if errors.As(err, &exitErr) {
				code = exitErr.ExitCode()
			} else if err != nil {
				code = -1
			}
			outcomes[i] = outcome{code, stderr.String()}
		})
	}
	wg.Wait()

	if runs := f.scannerRuns(t); runs != 1 {
		t.Errorf("scanner ran %d times for %d simultaneous checks, want 1", runs, checks)
	}
	for i, o := range outcomes {
		if o.code != exitBlocked || o != outcomes[0] {
			t.Errorf("check %d: exit %d, stderr %q; check 0: exit %d, stderr %q", i, o.code,
				o.stderr, outcomes[0].code, outcomes[0].stderr)
		}
	}
	if !strings.Contains(outcomes[0].stderr, "blocked: 4 critical vulnerabilities") {
		t.Errorf("unexpected verdict: %s", outcomes[0].stderr)
	}
}

// TestKilledCheckIsRecovered kills a check with SIGKILL while its scan runs. The next check
// scans again, decides correctly, and sweeps the killed run's scratch directory.
func TestKilledCheckIsRecovered(t *testing.T) {
	f := newProcessFixture(t)
	victim := f.check(f.image)
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for f.scannerRuns(t) == 0 {
		if time.Now().After(deadline) {
			victim.Process.Kill()
			t.Fatal("the scanner never started")
		}
		time.Sleep(5 * time.Millisecond)
	}
	victim.Process.Signal(syscall.SIGKILL)
	victim.Wait()

	scratch := filepath.Join(f.dir, "scratch")
	if left, _ := os.ReadDir(scratch); len(left) == 0 {
		t.Fatal("the killed check left no run directory: it was killed too late to test")
	}

	cmd := f.check("--json", f.image)
	out, err := cmd.Output()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != exitBlocked {
		t.Fatalf("check after the kill: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte(`"cache": "miss"`)) {
		t.Errorf("the killed scan left a cached result:\n%s", out)
	}
	if left, _ := os.ReadDir(scratch); len(left) != 0 {
		t.Errorf("scratch not swept: %v", left)
	}
	if runs := f.scannerRuns(t); runs != 2 {
		t.Errorf("scanner ran %d times, want 2 (killed, then again)", runs)
	}
}
