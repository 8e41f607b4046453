package slurmtest

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// prewarmTargets is the targets list of the array job, with comments and blank lines that
// must not count: %[1]s is the vulnerable image, %[2]s a copy of the patched one under a
// name without .sif, %[3]s the patched one.
const prewarmTargets = `# images prewarmed by the array job (index N = the N-th target line)
%[1]s

sif:%[2]s
   # a registry image: no registry is reachable here, which the task must report
image:registry.invalid/org/app:1.0

%[3]s
`

// TestPrewarmArray runs `scan-gate prewarm --slurm --submit` as the prewarm account (nobody)
// in a real Slurm: the array job's tasks each prewarm the target of their index with their
// own scratch and cache, and write the results into the shared tier, which then decides a
// launch on a node whose own cache is empty, without reading the image.
func TestPrewarmArray(t *testing.T) {
	requireSlurm(t)
	f := getFixture(t)
	c := startCluster(t, clusterOptions{})
	dir := reachableDir(t)

	tier, submit, logs := filepath.Join(dir, "tier"), filepath.Join(dir, "submit"),
		filepath.Join(dir, "logs")
	mkdir(t, tier, 0o755)
	mkdir(t, submit, 0o777)
	mkdir(t, logs, 0o777)
	if err := os.Chown(tier, jobUID, jobGID); err != nil {
		t.Fatal(err)
	}
	copied := filepath.Join(dir, "images", "patched-copy.img")
	mkdir(t, filepath.Dir(copied), 0o755)
	data, err := os.ReadFile(f.patched)
	if err != nil {
		t.Fatal(err)
	}
	write(t, copied, string(data), 0o644)

	// The tasks get a node-local scratch of the test's own, as $TMPDIR and for their
	// private directories: the test's machine's /tmp is not to be relied on.
	scratch := filepath.Join(dir, "node-local")
	mkdir(t, scratch, 0o777|os.ModeSticky)
	policyPath := filepath.Join(dir, "policy.toml")
	write(t, policyPath, fmt.Sprintf(`# written by the prewarm array test
[scanner.trivy]
path = %q
db_dir = %q
[extract]
scratch_dir = %q
[cache]
dir = %q
shared_dir = %q
shared_owner = "nobody"
[audit]
log = %q
[prewarm]
slurm_options = ["--export=ALL,TMPDIR=%s"]
`, f.trivy, f.db, filepath.Join(dir, "scratch"), filepath.Join(dir, "node-cache"), tier,
		filepath.Join(dir, "audit.jsonl"), scratch), 0o644)
	targets := filepath.Join(submit, "targets.txt")
	write(t, targets, fmt.Sprintf(prewarmTargets, f.vulnerable, copied, f.patched), 0o644)

	// Submitted by the prewarm account, one task at a time.
	start := time.Now()
	res := c.as(submit, f.scanGate, "prewarm", "--policy", policyPath, "--targets", targets,
		"--slurm", "--submit", "--throttle", "1", "--script", "prewarm.sbatch",
		"--log-dir", logs, "--scratch", scratch)
	if res.code != 0 {
		t.Fatalf("prewarm --slurm --submit: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	if !strings.Contains(res.stdout, "array 1-4%1 over 4 targets") {
		t.Errorf("prewarm --slurm said:\n%s", res.stdout)
	}
	m := regexp.MustCompile(`submitted array job (\d+)`).FindStringSubmatch(res.stdout)
	if m == nil {
		t.Fatalf("no job id in:\n%s", res.stdout)
	}
	job := m[1]
	waitFor(t, 3*time.Minute, "array job "+job+" to end", func() bool {
		out := c.admin("squeue", "--noheader", "--jobs", job)
		return out.code == 0 && strings.TrimSpace(out.stdout) == ""
	})
	t.Logf("array job of 4 tasks, one at a time, took %s", time.Since(start).Round(
		time.Millisecond))
	if got := c.job(job + "_1")["JobState"]; got != "COMPLETED" {
		t.Errorf("task 1: %s", got)
	}

	// Array index N ran the N-th target line, counting neither comments nor blank lines.
	want := []struct {
		target string
		line   int
		state  string
		says   string
	}{
		{f.vulnerable, 2, "COMPLETED", "scanned " + f.vulnerable +
			": block (worst critical), published to the shared tier"},
		{copied, 4, "COMPLETED", "scanned " + copied +
			": allow (no findings), published to the shared tier"},
		{"image:registry.invalid/org/app:1.0", 6, "FAILED", "error   image:registry.invalid/" +
			"org/app:1.0: trivy: scanning registry image registry.invalid/org/app:1.0: " +
			"cannot fetch the image: remote error: "},
		{f.patched, 8, "COMPLETED", "fresh   " + f.patched +
			": allow (no findings), published to the shared tier"},
	}
	for i, w := range want {
		n := i + 1
		out := readFile(t, filepath.Join(logs, fmt.Sprintf("scan-gate-prewarm-%s_%d.out",
			job, n)))
		head := fmt.Sprintf("prewarm: array task %d of 4: %s (line %d)\n", n, w.target, w.line)
		if !strings.Contains(out, head) || !strings.Contains(out, w.says) {
			t.Errorf("task %d printed:\n%s\nwant %q and %q", n, out, head, w.says)
		}
		if got := c.job(fmt.Sprintf("%s_%d", job, n))["JobState"]; got != w.state {
			t.Errorf("task %d: %s, want %s", n, got, w.state)
		}
	}

	// The tier holds the two scans and a stat record per image file, all the prewarm
	// account's; no task left anything in its scratch.
	entries, _ := filepath.Glob(filepath.Join(tier, "entries", "*.entry"))
	stats, _ := filepath.Glob(filepath.Join(tier, "stat", "*.stat"))
	if len(entries) != 2 || len(stats) != 3 {
		t.Errorf("tier: %d entries and %d stat records, want 2 and 3", len(entries),
			len(stats))
	}
	for _, p := range append(entries, stats...) {
		if fi, err := os.Stat(p); err != nil || fi.Sys().(*syscall.Stat_t).Uid != jobUID {
			t.Errorf("%s is not the prewarm account's", p)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(scratch, "*")); len(left) > 0 {
		t.Errorf("tasks left scratch directories: %v", left)
	}

	// A node whose cache is empty decides from the tier: a hit, no image data read.
	for _, image := range []string{f.vulnerable, copied, f.patched} {
		res := c.admin(f.scanGate, "check", "--policy", policyPath, "--json", image)
		if !strings.Contains(res.stdout, `"cache": "hit"`) ||
			!strings.Contains(res.stdout, `"hashed_bytes": 0,`) {
			t.Errorf("check %s on a node with an empty cache:\n%s%s", image, res.stdout,
				res.stderr)
		}
		if wantCode := map[bool]int{true: 1, false: 0}[image == f.vulnerable]; res.code !=
			wantCode {
			t.Errorf("check %s: exit %d, want %d", image, res.code, wantCode)
		}
	}
	if kept, _ := filepath.Glob(filepath.Join(dir, "node-cache", "entries", "*.entry")); len(
		kept) != 2 {
		t.Errorf("the node kept %d entries from the tier, want 2", len(kept))
	}
}
