package prewarm

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestScript(t *testing.T) {
	dir := t.TempDir()
	// A stand-in for scan-gate that records its arguments and standard input.
	fake := filepath.Join(dir, "fake scan-gate")
	os.WriteFile(fake, []byte("#!/bin/sh\nprintf '%s\\n' \"$@\" > \"$OUT.args\"\n"+
		"cat > \"$OUT.stdin\"\n"), 0o755)

	targets, err := ParseTargets(strings.NewReader(targetsFile), "/lists")
	if err != nil {
		t.Fatal(err)
	}
	job := Job{ScanGate: fake, Policy: "/etc/scan-gate/policy.toml",
		TargetsFile: "/lists/targets.txt", TargetsText: targetsFile, Count: len(targets),
		Base: "/lists", SharedDir: "/lustre/tier", LogDir: "/lustre/logs", Throttle: 4,
		Options: []string{"--partition=admin", "--time=01:00:00"}}
	script, err := job.Script(time.Date(2026, 12, 3, 17, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"#!/bin/bash\n",
		"# Written by scan-gate prewarm --slurm at 2026-12-03T17:00:00Z from " +
			"/lists/targets.txt.\n",
		"#SBATCH --job-name=scan-gate-prewarm\n#SBATCH --array=1-12%4\n" +
			"#SBATCH --output=/lustre/logs/scan-gate-prewarm-%A_%a.out\n",
		"#SBATCH --partition=admin\n#SBATCH --time=01:00:00\n",
		"exec '" + fake + "' prewarm --policy /etc/scan-gate/policy.toml --shared-dir " +
			"/lustre/tier --base /lists --targets - --task \"$SLURM_ARRAY_TASK_ID\" <<'" +
			"SCAN_GATE_TARGETS_",
	} {
		if !strings.Contains(script, want) {
			t.Errorf("script lacks %q:\n%s", want, script)
		}
	}
	path := filepath.Join(dir, "job.sbatch")
	os.WriteFile(path, []byte(script), 0o755)

	// Each array task hands scan-gate its index and the list, verbatim; the list's N-th
	// target is then what line of the file it should be.
	for n := 1; n <= len(targets); n++ {
		out := filepath.Join(dir, "task"+strconv.Itoa(n))
		cmd := exec.Command("bash", path)
		cmd.Env = []string{"SLURM_ARRAY_TASK_ID=" + strconv.Itoa(n), "OUT=" + out,
			"PATH=/usr/bin:/bin"}
		if msg, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("task %d: %v\n%s", n, err, msg)
		}
		args, _ := os.ReadFile(out + ".args")
		if !strings.HasSuffix(string(args), "--task\n"+strconv.Itoa(n)+"\n") {
			t.Errorf("task %d: arguments %q", n, args)
		}
		stdin, _ := os.ReadFile(out + ".stdin")
		if string(stdin) != targetsFile {
			t.Fatalf("task %d: the list came through as %q", n, stdin)
		}
		list, _ := ParseTargets(strings.NewReader(string(stdin)), "/lists")
		got, _ := Nth(list, n)
		if got != targets[n-1] {
			t.Errorf("task %d: target %+v, want %+v", n, got, targets[n-1])
		}
	}
}

func TestScriptRefuses(t *testing.T) {
	base := Job{ScanGate: "/usr/bin/scan-gate", TargetsText: "/a.sif\n", Count: 1,
		Base: "/", LogDir: "/logs"}
	for name, change := range map[string]func(*Job){
		"no targets":     func(j *Job) { j.Count = 0 },
		"relative bin":   func(j *Job) { j.ScanGate = "scan-gate" },
		"space in logs":  func(j *Job) { j.LogDir = "/my logs" },
		"short option":   func(j *Job) { j.Options = []string{"-p admin"} },
		"option newline": func(j *Job) { j.Options = []string{"--x\n#SBATCH --uid=0"} },
		"bad name":       func(j *Job) { j.Name = "a b" },
	} {
		j := base
		change(&j)
		if _, err := j.Script(time.Now()); err == nil {
			t.Errorf("%s: script written", name)
		}
	}
	if s, err := base.Script(time.Now()); err != nil || !strings.Contains(s, "--array=1-1\n") {
		t.Errorf("unthrottled: %v\n%s", err, s)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/usr/bin/scan-gate": "/usr/bin/scan-gate",
		"/a b":               "'/a b'",
		"it's":               `'it'\''s'`,
		"":                   "''",
		"$HOME":              "'$HOME'",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
