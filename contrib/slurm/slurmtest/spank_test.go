package slurmtest

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// blockMessage is the gate's message for the vulnerable image under the default policy.
func blockMessage(image string) string {
	return "image " + image + ` blocked: 4 critical vulnerabilities at or above the ` +
		`"critical" threshold: CVE-2023-38545 in curl 7.88.1-10+deb12u1 (fixed in ` +
		`7.88.1-10+deb12u4), CVE-2023-38545 in libcurl4 7.88.1-10+deb12u1 (fixed in ` +
		`7.88.1-10+deb12u4), CVE-2024-45491 in libexpat1 2.5.0-1 (fixed in ` +
		`2.5.0-1+deb12u1), CVE-2024-45492 in libexpat1 2.5.0-1 (fixed in 2.5.0-1+deb12u1)` +
		`; next step: ask your admins for an exception, or rebuild the image on a ` +
		`patched base`
}

// taskInitFailed is what slurmstepd adds when the plugin refuses a task.
func taskInitFailed(node string) string {
	return fmt.Sprintf("slurmstepd-%[1]s: error: spank: required plugin scan_gate.so: "+
		"task_init() failed with rc=-1\n"+
		"slurmstepd-%[1]s: error: Failed to invoke spank plugin stack\n", node)
}

func plugstack(f *fixture, s scenario, extra ...string) string {
	args := append([]string{"required", f.plugin, "helper=" + f.helper, "policy=" + s.policy,
		"scan_gate=" + f.scanGate}, extra...)
	return strings.Join(args, " ") + "\n"
}

// expectResult checks a command's exit status and output. srun's stderr merges the tasks'
// stderr with srun's own messages ("srun: ..."), in no fixed order between the two: each is
// compared in its own order.
func expectResult(t *testing.T, what string, got result, code int, stdout, stderr string) {
	t.Helper()
	if got.code != code || got.stdout != stdout || !sameStderr(got.stderr, stderr) {
		t.Errorf("%s: exit %d\nstdout:\n%s\nstderr:\n%s\nwant exit %d\nstdout:\n%s\n"+
			"stderr:\n%s", what, got.code, got.stdout, got.stderr, code, stdout, stderr)
	}
}

func sameStderr(got, want string) bool {
	split := func(text string) (own, tasks string) {
		for _, line := range strings.SplitAfter(text, "\n") {
			if strings.HasPrefix(line, "srun: ") || strings.HasPrefix(line, "salloc: ") {
				own += line
			} else {
				tasks += line
			}
		}
		return own, tasks
	}
	gotOwn, gotTasks := split(got)
	wantOwn, wantTasks := split(want)
	return gotOwn == wantOwn && gotTasks == wantTasks
}

func expectFile(t *testing.T, path, want string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != want {
		t.Errorf("%s:\n%s\nwant:\n%s", path, data, want)
	}
}

func realPath(t *testing.T, path string) string {
	p, err := filepath.EvalSymlinks(path)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSpank runs jobs through the SPANK plugin on a real one-node Slurm.
func TestSpank(t *testing.T) {
	requireSlurm(t)
	f := getFixture(t)
	t.Logf("fixture built in %s", fixtureTook.Round(time.Millisecond))
	c := startCluster(t, clusterOptions{path: f.standin})
	node := c.node
	vulnerable := realPath(t, f.vulnerable)
	blocked := "slurmstepd-" + node + ": error: scan-gate: " + blockMessage(vulnerable) + "\n"
	srunExit1 := "srun: error: " + node + ": task 0: Exited with exit code 1\n"

	t.Run("blocked image fails the step, not the node", func(t *testing.T) {
		c := c.with(t)
		s := newScenario(t, f, "")
		c.setPlugstack(plugstack(f, s))
		res := c.srun(s.work, "apptainer", "exec", f.vulnerable, "echo", "inside")
		expectResult(t, "srun", res, 1, "", blocked+taskInitFailed(node)+srunExit1)
		c.requireIdle()
		t.Logf("blocked srun, uncached image: %s", res.took.Round(time.Millisecond))
	})

	t.Run("clean image runs", func(t *testing.T) {
		c := c.with(t)
		s := newScenario(t, f, "")
		c.setPlugstack(plugstack(f, s))
		res := c.srun(s.work, "apptainer", "exec", f.patched, "echo", "ran")
		expectResult(t, "srun, first launch", res, 0, "ran\n", "")
		miss := res.took

		// From the cache, the check must not be noticed: compare with no container.
		var hit, plain time.Duration
		for range 3 {
			res = c.srun(s.work, "apptainer", "exec", f.patched, "echo", "ran")
			expectResult(t, "srun, from the cache", res, 0, "ran\n", "")
			hit += res.took / 3
			res = c.srun(s.work, "echo", "ran")
			expectResult(t, "srun without a container", res, 0, "ran\n", "")
			plain += res.took / 3
		}
		res = c.srun(s.work, "--scan-gate=report", "apptainer", "exec", f.patched, "echo",
			"ran")
		expectResult(t, "srun --scan-gate=report", res, 0, "ran\n",
			"scan-gate: image "+realPath(t, f.patched)+" allowed\n")
		t.Logf("clean srun: %s with a scan, %s from the cache, %s without a container",
			miss.Round(time.Millisecond), hit.Round(time.Millisecond),
			plain.Round(time.Millisecond))
		if hit > plain+time.Second {
			t.Errorf("a cached check adds %s to a launch", hit-plain)
		}
		if lines := s.auditLines(t); len(lines) != 5 || !strings.Contains(lines[0],
			`"action":"allow"`) || !strings.Contains(lines[0], `"user":"nobody"`) ||
			!strings.Contains(lines[0], `"partition":"debug"`) {
			t.Errorf("audit log:\n%s", strings.Join(lines, "\n"))
		}
	})

	t.Run("a relative image is the file the task opens", func(t *testing.T) {
		c := c.with(t)
		s := newScenario(t, f, "")
		c.setPlugstack(plugstack(f, s))
		other := filepath.Join(s.dir, "other")
		mkdir(t, other, 0o755)
		write(t, filepath.Join(s.work, "app.sif"), readFile(t, f.patched), 0o644)
		write(t, filepath.Join(other, "app.sif"), readFile(t, f.vulnerable), 0o644)

		res := c.srun(s.work, "apptainer", "exec", "app.sif", "echo", "ran")
		expectResult(t, "srun from the image's directory", res, 0, "ran\n", "")

		// The step runs elsewhere than srun's directory: its own app.sif is checked.
		res = c.srun(s.work, "--chdir="+other, "apptainer", "exec", "app.sif", "echo", "ran")
		expectResult(t, "srun --chdir", res, 1, "", "slurmstepd-"+node+": error: "+
			"scan-gate: "+blockMessage(realPath(t, filepath.Join(other, "app.sif")))+"\n"+
			taskInitFailed(node)+srunExit1)
	})

	t.Run("blocked batch job ends FAILED, node idle", func(t *testing.T) {
		c := c.with(t)
		s := newScenario(t, f, "")
		c.setPlugstack(plugstack(f, s))
		write(t, filepath.Join(s.work, "job.sh"), "#!/bin/sh\necho started\n"+
			"srun apptainer exec "+f.vulnerable+" echo inside\n", 0o755)
		id := c.sbatch(s.work, "--output=out.txt", "job.sh")
		job := c.waitJob(id, time.Minute)
		if job["JobState"] != "FAILED" || job["ExitCode"] != "1:0" {
			t.Errorf("job %s: %s, exit code %s; want FAILED, 1:0", id, job["JobState"],
				job["ExitCode"])
		}
		expectFile(t, filepath.Join(s.work, "out.txt"), blocked+taskInitFailed(node))
		c.requireIdle()
	})

	t.Run("--scan-gate=warn cannot weaken an enforce policy", func(t *testing.T) {
		c := c.with(t)
		s := newScenario(t, f, "")
		c.setPlugstack(plugstack(f, s))
		note := "slurmstepd-" + node + ": error: scan-gate: --scan-gate=warn cannot make " +
			"the check weaker than the site policy (mode \"enforce\" for this job); the " +
			"policy applies\n"
		res := c.srun(s.work, "--scan-gate=warn", "apptainer", "exec", f.vulnerable,
			"true")
		expectResult(t, "srun --scan-gate=warn", res, 1, "",
			blocked+note+taskInitFailed(node)+srunExit1)

		// Through sbatch, the option reaches the batch step.
		write(t, filepath.Join(s.work, "job.sh"), "#!/bin/sh\napptainer exec "+
			f.vulnerable+" echo inside\n", 0o755)
		id := c.sbatch(s.work, "--scan-gate=warn", "--output=out.txt", "job.sh")
		if job := c.waitJob(id, time.Minute); job["JobState"] != "FAILED" {
			t.Errorf("sbatch --scan-gate=warn: job %s is %s, want FAILED", id,
				job["JobState"])
		}
		expectFile(t, filepath.Join(s.work, "out.txt"), blocked+note+taskInitFailed(node))

		// Through salloc, the option reaches the allocation's steps.
		c.requireIdle()
		res = c.as(s.work, "salloc", "--scan-gate=warn", "srun", "apptainer", "exec",
			f.vulnerable, "true")
		alloc := regexp.MustCompile(`Granted job allocation ([0-9]+)`).FindStringSubmatch(
			res.stderr)
		if alloc == nil {
			t.Fatalf("salloc: exit %d\n%s", res.code, res.stderr)
		}
		// salloc prints "has been revoked" only when slurmctld's word comes before it
		// exits: a race, and no part of what this test checks.
		res.stderr = strings.Replace(res.stderr, "salloc: Job allocation "+alloc[1]+
			" has been revoked.\n", "", 1)
		expectResult(t, "salloc --scan-gate=warn", res, 1, "", "salloc: Granted job "+
			"allocation "+alloc[1]+"\n"+blocked+note+taskInitFailed(node)+srunExit1+
			"salloc: Relinquishing job allocation "+alloc[1]+"\n")

		// A bad value is refused by srun itself, before anything starts.
		res = c.srun(s.work, "--scan-gate=off", "true")
		expectResult(t, "srun --scan-gate=off", res, 255, "", "srun: error: scan-gate: "+
			"--scan-gate=off: want enforce, warn or audit, optionally with \",report\", "+
			"or report\nsrun: error: Invalid --scan-gate argument: off\n")
		c.requireIdle()
	})

	t.Run("--scan-gate=enforce makes a warn policy block", func(t *testing.T) {
		c := c.with(t)
		s := newScenario(t, f, "")
		write(t, s.policy, "mode = \"warn\"\n"+readFile(t, s.policy), 0o644)
		c.setPlugstack(plugstack(f, s))
		warned := strings.Replace(blockMessage(vulnerable), "blocked: ",
			"allowed with a warning (policy mode \"warn\"; enforce mode would block): ", 1)
		res := c.srun(s.work, "apptainer", "exec", f.vulnerable, "echo", "ran")
		expectResult(t, "srun under a warn policy", res, 0, "ran\n",
			"scan-gate: "+warned+"\n")
		res = c.srun(s.work, "--scan-gate=enforce", "apptainer", "exec",
			f.vulnerable, "echo", "ran")
		expectResult(t, "srun --scan-gate=enforce", res, 1, "",
			blocked+taskInitFailed(node)+srunExit1)
	})

	t.Run("32 steps at once on an uncached image scan once", func(t *testing.T) {
		c := c.with(t)
		s := newScenario(t, f, "")
		c.setPlugstack(plugstack(f, s))
		res := c.as(s.work, "salloc", "--no-shell", "--ntasks=1")
		id := strings.TrimPrefix(strings.TrimSpace(res.stderr),
			"salloc: Granted job allocation ")
		if _, err := strconv.Atoi(id); res.code != 0 || err != nil {
			t.Fatalf("salloc: exit %d: %s", res.code, res.stderr)
		}
		defer c.admin("scancel", id)

		const steps = 32
		results := make([]result, steps)
		var wg sync.WaitGroup
		start := time.Now()
		for i := range steps {
			wg.Go(func() {
				results[i] = c.as(s.work, "srun", "--jobid="+id, "--overlap", "--ntasks=1",
					"apptainer", "exec", f.patched, "echo", "ran")
			})
		}
		wg.Wait()
		took := time.Since(start)
		for i, res := range results {
			expectResult(t, fmt.Sprintf("step %d", i), res, 0, "ran\n", "")
		}
		if runs := s.scannerRuns(t); runs != 1 {
			t.Errorf("the scanner ran %d times for %d steps, want 1", runs, steps)
		}
		lines := s.auditLines(t)
		misses := strings.Count(strings.Join(lines, "\n"), `"cache":"miss"`)
		if len(lines) != steps || misses != 1 {
			t.Errorf("%d audit lines, %d misses; want %d lines, 1 miss", len(lines), misses,
				steps)
		}
		t.Logf("%d steps at once on an uncached image: %s", steps, took.Round(time.Millisecond))
		for _, line := range lines {
			if strings.Contains(line, `"cache":"miss"`) {
				_, durations, _ := strings.Cut(line, `"durations_ms":`)
				durations, _, _ = strings.Cut(durations, "}")
				t.Logf("the one scan, in ms: %s}", durations)
			}
		}
	})

	t.Run("quoting and image names do not get past the plugin", func(t *testing.T) {
		c := c.with(t)
		s := newScenario(t, f, "")
		c.setPlugstack(plugstack(f, s))
		// Any name: the runtime takes a SIF file whatever it is called.
		img := filepath.Join(s.work, "vuln.img")
		write(t, img, readFile(t, f.vulnerable), 0o644)
		blockedImg := "slurmstepd-" + node + ": error: scan-gate: " +
			blockMessage(realPath(t, img)) + "\n"

		for _, script := range []string{
			`a\pptainer exec ` + img + ` echo inside`,
			`singul'ar'ity exec ` + img + ` echo inside`,
			`eval "apptainer exec ` + img + ` echo inside"`,
		} {
			res := c.srun(s.work, "sh", "-c", script)
			expectResult(t, "srun sh -c "+script, res, 1, "",
				blockedImg+taskInitFailed(node)+srunExit1)
		}

		write(t, filepath.Join(s.work, "job.sh"), "#!/bin/sh\necho started\n"+
			`apptain""er exec `+img+" echo inside\n", 0o755)
		id := c.sbatch(s.work, "--output=out.txt", "job.sh")
		if job := c.waitJob(id, time.Minute); job["JobState"] != "FAILED" {
			t.Errorf("batch job %s with a quoted runtime is %s, want FAILED", id,
				job["JobState"])
		}
		expectFile(t, filepath.Join(s.work, "out.txt"), blockedImg+taskInitFailed(node))
		c.requireIdle()
	})

	t.Run("an image rewritten in place after the check is refused", func(t *testing.T) {
		c := c.with(t)
		s := newScenario(t, f, "")
		img := filepath.Join(s.work, "app.sif")
		write(t, img, readFile(t, f.patched), 0o644)
		// The helper checks the clean bytes; then, before the task starts, the file is
		// rewritten in place (same inode) with vulnerable bytes and its mtime put back.
		rewriting := filepath.Join(s.dir, "helper-then-rewrite")
		write(t, rewriting, fmt.Sprintf("#!/bin/sh\n%s \"$@\" || exit\n"+
			"touch -r %[2]s %[2]s.mtime && cat %[3]s > %[2]s && touch -r %[2]s.mtime %[2]s\n",
			f.helper, img, f.vulnerable), 0o755)
		c.setPlugstack(strings.Replace(plugstack(f, s), "helper="+f.helper,
			"helper="+rewriting, 1))
		before := inode(t, img)

		res := c.srun(s.work, "apptainer", "exec", img, "echo", "inside")
		expectResult(t, "srun", res, 1, "", "slurmstepd-"+node+": error: scan-gate: "+
			"image "+img+" is not the file that was checked: it was replaced or "+
			"rewritten while the step started, so the step may not start; start the "+
			"step again once the image stays as it is\n"+taskInitFailed(node)+srunExit1)
		if after := inode(t, img); after != before {
			t.Fatalf("the test rewrote %s into a new inode (%d, was %d)", img, after,
				before)
		}
		c.requireIdle()
	})

	t.Run("plugstack errors fail the launch, not the node", func(t *testing.T) {
		c := c.with(t)
		s := newScenario(t, f, "")
		c.setPlugstack(plugstack(f, s, "colour=blue"))
		res := c.srun(s.work, "true")
		if res.code == 0 || !strings.HasPrefix(res.stderr, "srun: error: scan-gate: "+
			"plugstack.conf: unknown key \"colour\" (known: helper, policy, scan_gate, "+
			"timeout, on_error, watch, watch_action, batch, verbose)\n") {
			t.Errorf("srun with a bad plugstack.conf: exit %d\n%s", res.code, res.stderr)
		}
		c.requireIdle()
	})

	t.Run("a helper that fails blocks the step", func(t *testing.T) {
		c := c.with(t)
		s := newScenario(t, f, "")
		missing := filepath.Join(s.dir, "no-such-helper")
		c.setPlugstack(strings.Replace(plugstack(f, s), "helper="+f.helper,
			"helper="+missing, 1))
		res := c.srun(s.work, "apptainer", "exec", f.patched, "true")
		expectResult(t, "srun", res, 1, "", "slurmstepd-"+node+": error: scan-gate: the "+
			"image check failed on this node, so the step may not start: "+missing+
			" could not be run (missing, or not executable); try again in a few "+
			"minutes, and tell your admins if it keeps failing\n"+taskInitFailed(node)+
			srunExit1)
		c.requireIdle()
	})

	t.Run("watch cancels a blocked container found only at run time", func(t *testing.T) {
		c := c.with(t)
		s := newScenario(t, f, "\n[watch]\naction = \"cancel\"\n")
		c.setPlugstack(plugstack(f, s))
		id, out := runtimeOnlyJob(t, c, f, s, 120)
		start := time.Now()
		job := c.waitJob(id, 90*time.Second)
		if job["JobState"] != "CANCELLED" {
			t.Errorf("job %s is %s, want CANCELLED", id, job["JobState"])
		}
		// The container is named by what outlives it: the job and the program.
		want := regexp.MustCompile("^" + regexp.QuoteMeta("scan-gate: container root of "+
			"PID ") + "[0-9]+ " + regexp.QuoteMeta("(job "+id+", exe ") + `[^)]*/sleeper\)` +
			regexp.QuoteMeta(strings.TrimPrefix(blockMessage(""), "image ")+
				"; cancelling job "+id+"\n") + regexp.QuoteMeta("slurmstepd-"+
			c.node+": error: *** JOB "+id+" ON "+c.node+" CANCELLED AT ") + `\S+ \*\*\*\n$`)
		if got := readFile(t, out); !want.MatchString(got) {
			t.Errorf("job output:\n%s\nwant it to match:\n%s", got, want)
		}
		expectWatchAudit(t, s, id)
		c.requireIdle()
		t.Logf("the watch cancelled job %s %s after it started", id,
			time.Since(start).Round(time.Millisecond))
	})

	t.Run("watch only logs under the log action", func(t *testing.T) {
		c := c.with(t)
		s := newScenario(t, f, "\n[watch]\naction = \"log\"\n")
		c.setPlugstack(plugstack(f, s))
		id, out := runtimeOnlyJob(t, c, f, s, 120)
		defer c.admin("scancel", id)

		// Once the watch has recorded its block, the job must still run, untold.
		waitFor(t, 90*time.Second, "the watch's decision on job "+id, func() bool {
			return watchBlocked(s, id)
		})
		time.Sleep(2 * time.Second) // time enough for a cancel, were one coming
		if state := c.job(id)["JobState"]; state != "RUNNING" {
			t.Errorf("job %s is %s after the watch logged its block, want RUNNING", id,
				state)
		}
		expectFile(t, out, "")
		c.admin("scancel", id)
		c.waitJob(id, time.Minute)
		c.requireIdle()
	})
}

// runtimeOnlyJob submits a batch job whose image is chosen at run time, so that only the
// watch can check it: the stand-in apptainer makes the sandbox the task's root.
func runtimeOnlyJob(t *testing.T, c *cluster, f *fixture, s scenario, seconds int) (string,
	string) {
	t.Helper()
	write(t, filepath.Join(s.work, "which-image"), f.sandbox+"\n", 0o644)
	write(t, filepath.Join(s.work, "job.sh"), fmt.Sprintf("#!/bin/sh\n"+
		"exec apptainer exec \"$(cat which-image)\" /bin/sleeper %d\n", seconds), 0o755)
	id := c.sbatch(s.work, "--output=out.txt", "job.sh")
	return id, filepath.Join(s.work, "out.txt")
}

func expectWatchAudit(t *testing.T, s scenario, id string) {
	t.Helper()
	if !watchBlocked(s, id) {
		t.Errorf("no block decision for job %s in the audit log:\n%s", id,
			strings.Join(s.auditLines(t), "\n"))
	}
}

// watchBlocked reports whether the audit log has the watch's block of job id.
func watchBlocked(s scenario, id string) bool {
	data, _ := os.ReadFile(s.audit)
	for _, line := range strings.Split(string(data), "\n") {
		if strings.Contains(line, `"action":"block"`) && strings.Contains(line,
			`"job":"`+id+`"`) && strings.Contains(line, `"user":"nobody"`) {
			return true
		}
	}
	return false
}

func readFile(t *testing.T, path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// inode returns the inode number of path.
func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}
