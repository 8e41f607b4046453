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

// TestTerminatedCheckCleansUp sends SIGTERM and SIGINT to checks while they scan: each
// stops with a no-decision verdict, leaves no scratch behind and caches nothing.
func TestTerminatedCheckCleansUp(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			f := newProcessFixture(t)
			cmd := f.check(f.image)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(2 * time.Minute)
			for f.scannerRuns(t) == 0 {
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					t.Fatal("the scanner never started")
				}
				time.Sleep(5 * time.Millisecond)
			}
			cmd.Process.Signal(sig)
			err := cmd.Wait()

			var exitErr *exec.ExitError
			if !errors.As(err, &exitErr) || exitErr.ExitCode() != exitBlocked {
				t.Fatalf("after %v: %v, stderr %q", sig, err, stderr.String())
			}
			if !strings.Contains(stderr.String(), "no decision could be made") {
				t.Errorf("stderr %q does not say no decision was made", stderr.String())
			}
			if left, _ := os.ReadDir(filepath.Join(f.dir, "scratch")); len(left) != 0 {
				t.Errorf("scratch left behind: %v", left)
			}
			out, _ := f.check("--json", f.image).Output()
			if !bytes.Contains(out, []byte(`"cache": "miss"`)) {
				t.Errorf("an interrupted scan was cached:\n%s", out)
			}
		})
	}
}

// TestUnprivilegedUser runs the gate as an ordinary user: it reads the node cache, which
// root filled, and scans what is missing into the user's own cache, leaving the node cache
// untouched. A root-run gate never reads the user's cache.
func TestUnprivilegedUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a check as another user")
	}
	f := newProcessFixture(t)

	// A copy of the test binary the user can run, named like the command.
	bin := filepath.Join(f.dir, "bin")
	os.Mkdir(bin, 0o755)
	self := filepath.Join(bin, "scan-gate")
	if out, err := exec.Command("cp", f.self, self).CombinedOutput(); err != nil {
		t.Fatalf("copying the binary: %v %s", err, out)
	}
	home := filepath.Join(f.dir, "home")
	os.Mkdir(home, 0o755)
	os.Chown(home, 65534, 65534)
	os.Chmod(f.dir, 0o755)

	// Root fills the node cache with the vulnerable image's scan.
	if err := f.check(f.image).Run(); err == nil {
		t.Fatal("root's check of the vulnerable image proceeded")
	}
	patched := filepath.Join(f.dir, "patched.sif")
	if err := testimage.Build(t.Context(), patched, testimage.Patched); err != nil {
		t.Fatal(err)
	}
	os.Chmod(patched, 0o644)

	asUser := func(args ...string) ([]byte, error) {
		cmd := exec.Command(self, append([]string{"check", "--policy", f.policy, "--json",
			"--audit-log", "-"}, args...)...)
		cmd.Dir = home
		cmd.Env = []string{"HOME=" + home, "PATH=/usr/bin:/bin"}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{
			Uid: 65534, Gid: 65534, Groups: []uint32{}}}
		return cmd.Output()
	}

	out, err := asUser(f.image)
	if !bytes.Contains(out, []byte(`"cache": "hit"`)) || err == nil {
		t.Fatalf("user's check of a root-cached image: %v\n%s", err, out)
	}
	out, err = asUser(patched)
	if err != nil || !bytes.Contains(out, []byte(`"cache": "miss"`)) {
		t.Fatalf("user's check of an uncached image: %v\n%s", err, out)
	}
	userEntries, _ := filepath.Glob(filepath.Join(home, ".cache/scan-gate/entries/*"))
	if len(userEntries) != 1 {
		t.Fatalf("user cache holds %v, want the one scan", userEntries)
	}
	out, _ = asUser(patched)
	if !bytes.Contains(out, []byte(`"cache": "hit"`)) {
		t.Fatalf("user's second check did not hit the user cache:\n%s", out)
	}

	// Root does not trust the user's scan: it scans itself.
	out, _ = f.check("--json", patched).Output()
	if !bytes.Contains(out, []byte(`"cache": "miss"`)) {
		t.Fatalf("root's check used a result it did not make:\n%s", out)
	}
}
