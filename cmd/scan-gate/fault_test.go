package main

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scan-gate/scan-gate/internal/testimage"
)

// Fault tests: the gate killed at random points of a miss, its lock file or whole cache
// removed while it scans, its disk full while it extracts, and a scanner that hangs, crashes
// or lies. In every case a launch gets a verdict or a no decision within its deadline, the
// cache stays consistent, nothing is left in scratch, and nothing wrong is cached.

// wrappedFixture is a processFixture whose scanner is a shell script standing in for trivy:
// the script is a format string whose %[1]s is the real trivy and %[2]s a directory the
// scanning user may write to (state), and it must exec the real trivy for `trivy version`.
type wrappedFixture struct {
	processFixture
	state string
}

func newWrappedFixture(t *testing.T, script, policyExtra string) wrappedFixture {
	t.Helper()
	f := newProcessFixture(t)
	state := filepath.Join(f.dir, "state")
	if err := os.Mkdir(state, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(state, 0o777)
	wrapper := filepath.Join(f.dir, "trivy-wrapped")
	body := fmt.Sprintf(script, requireTrivy(t), state)
	if err := os.WriteFile(wrapper, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	policy, err := os.ReadFile(f.policy)
	if err != nil {
		t.Fatal(err)
	}
	policy = bytes.Replace(policy, []byte(filepath.Join(f.dir, "trivy-counting")),
		[]byte(wrapper), 1)
	policy = append(policy, policyExtra...)
	if err := os.WriteFile(f.policy, policy, 0o644); err != nil {
		t.Fatal(err)
	}
	return wrappedFixture{processFixture: f, state: state}
}

// runStatus runs cmd and returns its exit status, stdout and stderr; -1 when it did not run.
func runStatus(cmd *exec.Cmd) (int, string, string) {
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return 0, stdout.String(), stderr.String()
	case errors.As(err, &exitErr):
		return exitErr.ExitCode(), stdout.String(), stderr.String()
	}
	return -1, stdout.String(), err.Error()
}

// runPeak runs cmd like runStatus and also returns the peak resident set of cmd's own
// process in KiB: the rusage of a child counts its children too (here the scanner), so the
// kernel's high-water mark, VmHWM, is read from /proc while it runs.
func runPeak(cmd *exec.Cmd) (code int, stdout, stderr string, peakKiB int64) {
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		return -1, "", err.Error(), 0
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	status := "/proc/" + strconv.Itoa(cmd.Process.Pid) + "/status"
	for {
		select {
		case err := <-done:
			var exitErr *exec.ExitError
			switch {
			case err == nil:
			case errors.As(err, &exitErr):
				code = exitErr.ExitCode()
			default:
				code = -1
			}
			return code, out.String(), errOut.String(), peakKiB
		case <-time.After(2 * time.Millisecond):
			peakKiB = max(peakKiB, vmHWM(status))
		}
	}
}

// vmHWM reads the VmHWM line of a /proc/PID/status file, in KiB; 0 when it cannot.
func vmHWM(status string) int64 {
	data, err := os.ReadFile(status)
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kib, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10,
				64)
			return kib
		}
	}
	return 0
}

// noDecision tells whether a check's message says it could not decide from a scan: an
// error, or an image that could not be scanned.
func noDecision(stderr string) bool {
	return strings.Contains(stderr, "no decision could be made") ||
		strings.Contains(stderr, "the image could not be scanned")
}

// waitFor polls until path exists.
func waitFor(t *testing.T, path string, limit time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(limit); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear within %s", path, limit)
		}
	}
}

// assertConsistent checks that the cache lists without skipping anything and that scratch
// holds nothing once a check has swept it.
func (f processFixture) assertConsistent(t *testing.T) {
	t.Helper()
	cmd := exec.Command(f.self, "cache", "ls", "--policy", f.policy)
	if code, _, stderr := runStatus(cmd); code != 0 || stderr != "" {
		t.Errorf("cache ls: exit %d, stderr %q", code, stderr)
	}
	if left, _ := os.ReadDir(filepath.Join(f.dir, "scratch")); len(left) != 0 {
		t.Errorf("scratch holds %v", left)
	}
}

// assertVerdict runs a check of the fixture's vulnerable image and expects the block
// verdict with its findings, from the given cache outcome.
func (f processFixture) assertVerdict(t *testing.T, cacheOutcome string) {
	t.Helper()
	code, stdout, stderr := runStatus(f.check("--json", f.image))
	if code != exitBlocked || !strings.Contains(stderr, "blocked: 4 critical vulnerabilities") {
		t.Fatalf("check: exit %d, stderr %q", code, stderr)
	}
	if want := `"cache": "` + cacheOutcome + `"`; !strings.Contains(stdout, want) {
		t.Errorf("check did not report %s:\n%s", want, stdout)
	}
}

// TestKillAtRandomPoints kills checks of an uncached image with SIGKILL at random points of
// the miss, from just after start to the storing of the result. After each kill the cache
// reads cleanly and holds either nothing or the right result, the next check sweeps the
// killed run's scratch and gives the right verdict, and no child of the killed check
// survives it.
func TestKillAtRandomPoints(t *testing.T) {
	f := newProcessFixture(t)
	start := time.Now()
	f.assertVerdict(t, "miss")
	miss := time.Since(start)
	purge := func() {
		cmd := exec.Command(f.self, "cache", "purge", "--policy", f.policy)
		if code, _, stderr := runStatus(cmd); code != 0 {
			t.Fatalf("cache purge: %s", stderr)
		}
	}

	const kills = 8
	for i := range kills {
		purge()
		// Spread over the whole miss, and a little past it.
		n, _ := rand.Int(rand.Reader, big.NewInt(int64(miss)*5/4))
		delay := time.Duration(n.Int64())
		victim := f.check(f.image)
		if err := victim.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		victim.Process.Signal(syscall.SIGKILL)
		victim.Wait()
		runDirs, _ := filepath.Glob(filepath.Join(f.dir, "scratch", "scan-gate-run-*[^k]"))
		t.Logf("kill %d after %s (a miss takes %s): left %d run dir(s)", i,
			delay.Round(time.Millisecond), miss.Round(time.Millisecond), len(runDirs))

		// The killed check's children (unsquashfs, find, trivy) die with it.
		time.Sleep(200 * time.Millisecond)
		for _, dir := range runDirs {
			if pids := processesUsing(dir); len(pids) > 0 {
				t.Errorf("processes %v still work in %s after the kill", pids, dir)
			}
		}

		code, stdout, stderr := runStatus(f.check("--json", f.image))
		if code != exitBlocked || !strings.Contains(stderr, "4 critical vulnerabilities") {
			t.Fatalf("check after kill %d: exit %d, stderr %q", i, code, stderr)
		}
		if !strings.Contains(stdout, `"cache": "miss"`) &&
			!strings.Contains(stdout, `"cache": "hit"`) {
			t.Errorf("check after kill %d: %s", i, stdout)
		}
		f.assertConsistent(t)
	}
}

// processesUsing lists the processes whose command line or working directory names dir.
func processesUsing(dir string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		cwd, _ := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if bytes.Contains(cmdline, []byte(dir)) || strings.HasPrefix(cwd, dir) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// blockingScanner waits, once it is asked to scan, until the test creates state/release.
const blockingScanner = `#!/bin/sh
if [ "$1" = rootfs ]; then
  echo run >> %[2]s/runs
  touch %[2]s/started
  i=0
  while [ ! -e %[2]s/release ] && [ $i -lt 6000 ]; do sleep 0.01; i=$((i+1)); done
fi
exec %[1]s "$@"
`

// TestLockFileRemovedDuringScan removes the key's lock file while a scan holds it. A second
// check then locks a new file of the same name and scans too: single flight is lost for
// that one scan, which is why nothing ever removes lock files, but both checks get the right
// verdict and the cache stays consistent.
func TestLockFileRemovedDuringScan(t *testing.T) {
	f := newWrappedFixture(t, blockingScanner, "")
	first := f.check(f.image)
	var firstErr bytes.Buffer
	first.Stderr = &firstErr
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, filepath.Join(f.state, "started"), 2*time.Minute)

	locks, _ := filepath.Glob(filepath.Join(f.dir, "cache", "locks", "*.lock"))
	if len(locks) != 1 {
		t.Fatalf("want one lock file, have %v", locks)
	}
	if err := os.Remove(locks[0]); err != nil {
		t.Fatal(err)
	}
	second := make(chan string)
	go func() {
		code, _, stderr := runStatus(f.check(f.image))
		second <- fmt.Sprintf("exit %d: %s", code, stderr)
	}()
	time.Sleep(time.Second)
	os.WriteFile(filepath.Join(f.state, "release"), nil, 0o644)

	first.Wait()
	if code := first.ProcessState.ExitCode(); code != exitBlocked ||
		!strings.Contains(firstErr.String(), "4 critical vulnerabilities") {
		t.Errorf("first check: exit %d, stderr %q", code, firstErr.String())
	}
	if got := <-second; !strings.Contains(got, "exit 1: ") ||
		!strings.Contains(got, "4 critical vulnerabilities") {
		t.Errorf("second check: %s", got)
	}
	runs, _ := os.ReadFile(filepath.Join(f.state, "runs"))
	t.Logf("scanner runs with the lock file removed: %d", bytes.Count(runs, []byte("run\n")))
	f.assertVerdict(t, "hit")
	f.assertConsistent(t)
}

// TestCacheRemovedDuringScan removes the whole cache directory while a scan runs. The scan's
// result cannot be stored: that check ends blocked (the verdict, or no decision when the
// store fails), never allowed, and the next check rebuilds the cache and decides rightly.
func TestCacheRemovedDuringScan(t *testing.T) {
	f := newWrappedFixture(t, blockingScanner, "")
	first := f.check(f.image)
	var firstErr bytes.Buffer
	first.Stderr = &firstErr
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, filepath.Join(f.state, "started"), 2*time.Minute)
	if err := os.RemoveAll(filepath.Join(f.dir, "cache")); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(f.state, "release"), nil, 0o644)
	first.Wait()
	if code := first.ProcessState.ExitCode(); code != exitBlocked {
		t.Errorf("check whose cache vanished: exit %d, stderr %q", code, firstErr.String())
	}
	t.Logf("check whose cache vanished: %s", strings.TrimSpace(firstErr.String()))
	if left, _ := os.ReadDir(filepath.Join(f.dir, "scratch")); len(left) != 0 {
		t.Errorf("scratch holds %v", left)
	}

	f.assertVerdict(t, "miss")
	f.assertVerdict(t, "hit")
	f.assertConsistent(t)
}

// TestDiskFullDuringExtraction extracts onto a small tmpfs an image that does not fit: out
// of bytes (16 MiB of random data on 4 MiB), and out of inodes (500 files where 64 inodes
// remain, which no free-space check sees coming). The check ends in a no decision that says
// so, caches nothing and leaves the small filesystem empty; with room again the image gets
// its verdict.
func TestDiskFullDuringExtraction(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	tests := []struct {
		name, options string
		data, files   int
		// want is what the message says: unsquashfs failing, or a check of the free
		// space refusing the image before it starts.
		want string
	}{
		{"out of space", "size=4m", 16 << 20, 0,
			"No space left on device|not enough scratch space"},
		{"out of inodes", "size=1100m,nr_inodes=64", 0, 500, "No space left on device"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newProcessFixture(t)
			big := filepath.Join(f.dir, "big.sif")
			if err := buildBigImage(t, big, tt.data, tt.files); err != nil {
				t.Fatal(err)
			}
			scratch := filepath.Join(f.dir, "scratch")
			os.Mkdir(scratch, 0o755)
			out, err := exec.Command("mount", "-t", "tmpfs", "-o", tt.options+",mode=0755",
				"scan-gate-test", scratch).CombinedOutput()
			if err != nil {
				t.Skipf("cannot mount a tmpfs here (%v: %s): the full-disk test needs it",
					err, bytes.TrimSpace(out))
			}
			t.Cleanup(func() { exec.Command("umount", "-l", scratch).Run() })

			code, stdout, stderr := runStatus(f.check("--json", big))
			if code != exitBlocked || !noDecision(stderr) ||
				!regexp.MustCompile(tt.want).MatchString(stderr) {
				t.Fatalf("check on a full disk: exit %d, stderr %q; want %q", code, stderr,
					tt.want)
			}
			t.Logf("%s", strings.TrimSpace(stderr))
			if strings.Contains(stdout, `"scan": {`) {
				t.Errorf("a verdict was made from a partial tree:\n%s", stdout)
			}
			if left, _ := os.ReadDir(scratch); len(left) != 0 {
				t.Errorf("full scratch not cleaned up: %v", left)
			}

			if err := exec.Command("umount", scratch).Run(); err != nil {
				t.Fatal(err)
			}
			code, _, stderr = runStatus(f.check(big))
			if code != exitBlocked || !strings.Contains(stderr, "4 critical vulnerabilities") {
				t.Fatalf("check with room: exit %d, stderr %q", code, stderr)
			}
		})
	}
}

// buildBigImage writes a vulnerable image holding size bytes of random, incompressible data
// and files small files.
func buildBigImage(t *testing.T, out string, size, files int) error {
	work := t.TempDir()
	root := filepath.Join(work, "root")
	if err := testimage.WriteRootfs(root, testimage.Vulnerable); err != nil {
		return err
	}
	data := make([]byte, size)
	rand.Read(data)
	if err := os.WriteFile(filepath.Join(root, "usr/share/doc/random.bin"), data,
		0o644); err != nil {
		return err
	}
	for i := range files {
		name := filepath.Join(root, "usr/share/doc", "f"+strconv.Itoa(i))
		if err := os.WriteFile(name, []byte{byte(i)}, 0o644); err != nil {
			return err
		}
	}
	squash := filepath.Join(work, "fs.squashfs")
	if err := testimage.Squashfs(t.Context(), root, squash); err != nil {
		return err
	}
	part, err := os.ReadFile(squash)
	if err != nil {
		return err
	}
	if err := testimage.SIF(out, testimage.PrimaryPartition(part)); err != nil {
		return err
	}
	return os.Chmod(out, 0o644)
}

// TestMisbehavingScanner replaces trivy with scripts that hang, crash, print garbage, or
// report a clean scan without scanning. Each check ends blocked with a no decision, within
// the scan timeout, with the scanner's whole process group gone, nothing cached and scratch
// empty; the gate's memory stays small whatever the scanner prints.
func TestMisbehavingScanner(t *testing.T) {
	// Every script passes `trivy version` to the real trivy, then misbehaves on rootfs.
	const prologue = "#!/bin/sh\n[ \"$1\" = rootfs ] || exec %[1]s \"$@\"\n" +
		"for arg; do case $prev in --output) out=$arg;; esac; prev=$arg; done\n"
	tests := []struct {
		name, script, want string
	}{
		{"hangs", "echo $$ > %[2]s/pids; exec sleep 3600\n", "scan timed out"},
		{"hangs with a child ignoring SIGTERM",
			"sh -c 'trap \"\" TERM; echo $$ >> %[2]s/pids; sleep 3600' &\n" +
				"echo $$ >> %[2]s/pids; wait\n", "scan timed out"},
		{"crashes", "kill -SEGV $$\n", "signal: segmentation fault"},
		{"exits 1", "echo 'FATAL something broke' >&2; exit 1\n", "exit status 1"},
		{"writes garbage", "head -c 4096 /dev/urandom > \"$out\"\n", "decoding report"},
		{"writes nothing", "exit 0\n", "reading trivy's report"},
		{"floods stdout and stderr",
			"head -c 256m /dev/zero; head -c 64m /dev/zero | tr '\\0' x >&2\n",
			"reading trivy's report"},
		{"reports a clean scan without scanning",
			"echo '{\"SchemaVersion\": 2}' > \"$out\"\n",
			"detected no OS and scanned no OS packages"},
		{"reports the OS without packages",
			"echo '{\"SchemaVersion\": 2, \"Metadata\": {\"OS\": {\"Family\": \"debian\", " +
				"\"Name\": \"12.5\"}}, \"Results\": [{\"Target\": \"x\", \"Class\": " +
				"\"os-pkgs\", \"Type\": \"debian\"}]}' > \"$out\"\n",
			"detected debian 12.5 and scanned no OS packages"},
		{"links its report to a host file", "ln -s /etc/shadow \"$out\"\n",
			"too many levels of symbolic links"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newWrappedFixture(t, prologue+tt.script,
				"\n[timeouts]\nscan = \"5s\"\nwait = \"30s\"\n")
			start := time.Now()
			code, stdout, stderr, peak := runPeak(f.check("--json", f.image))
			took := time.Since(start)

			if code != exitBlocked || !noDecision(stderr) || !strings.Contains(stderr, tt.want) {
				t.Fatalf("exit %d, stderr %q; want a no decision saying %q", code,
					stderr, tt.want)
			}
			if strings.Contains(stdout, `"scan": {`) {
				t.Errorf("a verdict was made:\n%s", stdout)
			}
			if took > 20*time.Second {
				t.Errorf("took %s with a 5s scan timeout", took)
			}
			if peak > 64<<10 {
				t.Errorf("the gate's peak RSS was %d KiB", peak)
			}
			pids, _ := os.ReadFile(filepath.Join(f.state, "pids"))
			for _, pid := range strings.Fields(string(pids)) {
				if _, err := os.Stat("/proc/" + pid); err == nil {
					if state, _ := os.ReadFile("/proc/" + pid + "/stat"); !bytes.Contains(
						state, []byte(") Z ")) {
						t.Errorf("scanner process %s survived the check", pid)
					}
				}
			}
			out, _ := exec.Command(f.self, "cache", "ls", "--policy", f.policy).Output()
			if bytes.Contains(out, []byte("image.sif")) {
				t.Errorf("a result was cached:\n%s", out)
			}
			f.assertConsistent(t)
		})
	}
}
