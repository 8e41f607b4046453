package slurmtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestProlog runs batch jobs on a real one-node Slurm with no plugin, gated by the
// PrologSlurmctld script in contrib/slurm.
func TestProlog(t *testing.T) {
	requireSlurm(t)
	f := getFixture(t)
	s := newScenario(t, f, "")

	// The shipped script, reading its settings from this test's file.
	script := readFile(t, filepath.Join(repoRoot(), "contrib", "slurm", "prolog-slurmctld"))
	settings := filepath.Join(s.dir, "prolog.conf")
	if !strings.Contains(script, "/etc/scan-gate/prolog.conf") {
		t.Fatal("the prolog script no longer reads /etc/scan-gate/prolog.conf")
	}
	prolog := filepath.Join(s.dir, "prolog-slurmctld")
	write(t, prolog, strings.ReplaceAll(script, "/etc/scan-gate/prolog.conf", settings),
		0o755)
	c := startCluster(t, clusterOptions{path: f.standin,
		extra: []string{"PrologSlurmctld=" + prolog}})
	prologLog := filepath.Join(s.dir, "prolog.log")
	write(t, settings, fmt.Sprintf("SCAN_GATE_HELPER=%s\nSCAN_GATE_POLICY=%s\n"+
		"SCAN_GATE_SLURM_CONF=%s\nSCAN_GATE_LOG=%s\n", f.helper, s.policy, c.conf,
		prologLog), 0o644)
	vulnerable := realPath(t, f.vulnerable)

	t.Run("a blocked batch job is cancelled, the node stays idle", func(t *testing.T) {
		c := c.with(t)
		write(t, filepath.Join(s.work, "blocked.sh"), "#!/bin/sh\necho started\n"+
			"apptainer exec "+f.vulnerable+" echo inside\n", 0o755)
		start := time.Now()
		id := c.sbatch(s.work, "--output=blocked-%j.out", "blocked.sh")
		job := c.waitJob(id, time.Minute)
		reason := "scan-gate: " + blockMessage(vulnerable)
		if job["JobState"] != "CANCELLED" || job["AdminComment"] != reason {
			t.Errorf("job %s: JobState=%s AdminComment=%s\nwant CANCELLED, %s", id,
				job["JobState"], job["AdminComment"], reason)
		}
		expectFile(t, filepath.Join(s.work, "blocked-"+id+".out"), reason+"\n")
		c.requireIdle()
		log := readFile(t, filepath.Join(c.dir, "log", "slurmctld.log"))
		if strings.Contains(log, "prolog_slurmctld failed") ||
			strings.Contains(strings.ToLower(log), "drain") {
			t.Errorf("slurmctld saw the prolog fail or drained the node:\n%s",
				lastLines(log, 20))
		}
		t.Logf("blocked by the prolog in %s", time.Since(start).Round(time.Millisecond))
	})

	t.Run("a clean batch job runs", func(t *testing.T) {
		c := c.with(t)
		write(t, filepath.Join(s.work, "clean.sh"), "#!/bin/sh\n"+
			"IMG="+f.patched+"\napptainer exec \"$IMG\" echo inside\n", 0o755)
		id := c.sbatch(s.work, "--output=clean.out", "clean.sh")
		job := c.waitJob(id, time.Minute)
		if job["JobState"] != "COMPLETED" || job["AdminComment"] != "" {
			t.Errorf("job %s: JobState=%s AdminComment=%s, want COMPLETED and none", id,
				job["JobState"], job["AdminComment"])
		}
		expectFile(t, filepath.Join(s.work, "clean.out"), "inside\n")
		c.requireIdle()
	})

	t.Run("a gate error lets the job run and is logged", func(t *testing.T) {
		c := c.with(t)
		broken := filepath.Join(s.dir, "broken.toml")
		write(t, broken, "mode = \"strict\"\n", 0o644)
		write(t, settings, fmt.Sprintf("SCAN_GATE_HELPER=%s\nSCAN_GATE_POLICY=%s\n"+
			"SCAN_GATE_SLURM_CONF=%s\nSCAN_GATE_LOG=%s\n", f.helper, broken, c.conf,
			prologLog), 0o644)
		id := c.sbatch(s.work, "--output=broken.out", "blocked.sh")
		job := c.waitJob(id, time.Minute)
		if job["JobState"] != "COMPLETED" {
			t.Errorf("job %s: JobState=%s, want COMPLETED (a gate error is not a block "+
				"unless SCAN_GATE_FAIL_ON_ERROR=yes)", id, job["JobState"])
		}
		why := "job " + id + " not checked: reading policy: " + broken + ":1: mode: "
		if !strings.HasPrefix(job["AdminComment"], "scan-gate: "+why) {
			t.Errorf("job %s: AdminComment=%s\nwant it to say: %s...", id,
				job["AdminComment"], why)
		}
		if log := readFile(t, prologLog); !strings.Contains(log, "spank-helper prolog: "+
			why) {
			t.Errorf("the prolog's log does not say why job %s was not checked:\n%s", id,
				log)
		}
		c.requireIdle()
	})
	if _, err := os.Stat(filepath.Join(s.dir, "scratch")); err == nil {
		if left, _ := os.ReadDir(filepath.Join(s.dir, "scratch")); len(left) > 0 {
			t.Errorf("scratch directories left behind: %v", left)
		}
	}
}
