package main

import (
	"bytes"
	"cmp"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/scan-gate/scan-gate/gate/prewarm"
	"github.com/scan-gate/scan-gate/gate/setup"
	"github.com/scan-gate/scan-gate/policy"
)

// slurmOptions are the flags of `prewarm --slurm`.
type slurmOptions struct {
	enabled  bool
	submit   bool
	script   string
	logDir   string
	throttle int
	binary   string
}

func (s *slurmOptions) register(fs *flag.FlagSet) {
	fs.BoolVar(&s.enabled, "slurm", false, "write an sbatch array job over --targets instead "+
		"of prewarming here")
	fs.BoolVar(&s.submit, "submit", false, "with --slurm: submit the job with sbatch")
	fs.StringVar(&s.script, "script", "scan-gate-prewarm.sbatch", "with --slurm: write the "+
		"job script to `file`")
	fs.StringVar(&s.logDir, "log-dir", "", "with --slurm: `dir` for the tasks' output, "+
		"reachable from every node (default: the script's directory)")
	fs.IntVar(&s.throttle, "throttle", -1, "with --slurm: the most tasks running at once, "+
		"0 for no limit (default: [prewarm] slurm_throttle)")
	fs.StringVar(&s.binary, "scan-gate", "", "with --slurm: the scan-gate `binary` on the "+
		"compute nodes (default: this one)")
}

// write writes the array job script and, with --submit, submits it.
func (s *slurmOptions) write(o *prewarmOptions, p *policy.Policy, targets []prewarm.Target,
	text string, stdout, stderr io.Writer) error {
	if o.targets == "-" {
		return usageError("--slurm needs a targets file, not stdin")
	}
	sharedDir := cmp.Or(o.sharedDir, p.SharedCacheDir)
	if sharedDir == "" {
		return usageError("%v", errNoTier)
	}
	job, err := s.job(o, p, targets, text, sharedDir)
	if err != nil {
		return err
	}
	script, err := job.Script(time.Now())
	if err != nil {
		return err
	}
	if err := os.WriteFile(s.script, []byte(script), 0o644); err != nil {
		return fmt.Errorf("writing the array job: %w", err)
	}
	for i, t := range targets {
		if t.Problem != "" {
			fmt.Fprintf(stderr, "scan-gate prewarm: warning: array index %d (line %d): %s\n",
				i+1, t.Line, t.Problem)
		}
	}
	array := fmt.Sprintf("1-%d", len(targets))
	if job.Throttle > 0 {
		array += fmt.Sprintf("%%%d", job.Throttle)
	}
	fmt.Fprintf(stdout, "wrote %s: array %s over %d targets, results into %s\n", s.script,
		array, len(targets), cmp.Or(job.SharedDir, sharedDir))
	if !s.submit {
		return nil
	}

	cmd := exec.Command("sbatch", "--parsable", s.script)
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("submitting %s: sbatch: %w: %s", s.script, err,
			strings.TrimSpace(errOut.String()))
	}
	jobID, _, _ := strings.Cut(strings.TrimSpace(string(out)), ";")
	fmt.Fprintf(stdout, "submitted array job %s\n", jobID)
	return nil
}

func (s *slurmOptions) job(o *prewarmOptions, p *policy.Policy, targets []prewarm.Target,
	text, sharedDir string) (prewarm.Job, error) {
	binary := s.binary
	if binary == "" {
		self, err := os.Executable()
		if err != nil {
			return prewarm.Job{}, fmt.Errorf("finding the scan-gate binary: %w", err)
		}
		binary = self
	}
	abs := func(path string) string {
		if path == "" {
			return ""
		}
		a, err := filepath.Abs(path)
		if err != nil {
			return path
		}
		return a
	}
	base := o.base
	if base == "" {
		base = filepath.Dir(o.targets)
	}
	throttle := p.Prewarm.SlurmThrottle
	if s.throttle >= 0 {
		throttle = s.throttle
	}
	return prewarm.Job{
		ScanGate:    abs(binary),
		Policy:      abs(o.policyPath),
		TargetsFile: abs(o.targets),
		TargetsText: text,
		Count:       len(targets),
		Base:        abs(base),
		SharedDir:   abs(o.sharedDir),
		LogDir:      abs(cmp.Or(s.logDir, filepath.Dir(s.script))),
		Scratch:     abs(o.scratch),
		Throttle:    throttle,
		Options:     p.Prewarm.SlurmOptions,
	}, nil
}

// runPrewarmTask is one array task: it prewarms the --task-th target with a scratch
// directory, cache and scanner state of its own, and publishes the result to the shared
// tier.
func runPrewarmTask(o *prewarmOptions, p *policy.Policy, targets []prewarm.Target, stdout,
	stderr io.Writer) (int, error) {
	target, err := prewarm.Nth(targets, o.task)
	if err != nil {
		return exitUsage, usageError("%v", err)
	}
	fmt.Fprintf(stderr, "prewarm: array task %d of %d: %s (line %d)\n", o.task, len(targets),
		target, target.Line)

	tier, err := setup.OpenSharedWriter(p, o.sharedDir)
	if err != nil {
		return exitBlocked, err
	}
	dir, err := taskDir(o, p)
	if err != nil {
		return exitBlocked, err
	}
	defer os.RemoveAll(dir)
	g, err := setup.NewTask(p, dir, tier)
	if err != nil {
		return exitBlocked, err
	}
	runner := o.runner(p, g)
	runner.Workers = 1
	runner.Tier = tier
	return o.execute(runner, p, []prewarm.Target{target}, o.auditLog(p, stderr, true),
		stdout, stderr)
}

// taskDir creates the task's private directory: under --scratch, else $TMPDIR, else the
// policy's scratch directory for root (which the scanning user can reach) or the system's
// temporary directory. The scanning user must be able to pass through it.
func taskDir(o *prewarmOptions, p *policy.Policy) (string, error) {
	base := o.scratch
	if base == "" {
		if tmp := os.Getenv("TMPDIR"); filepath.IsAbs(tmp) {
			base = tmp
		} else if os.Geteuid() == 0 {
			base = p.Extract.ScratchDir
		} else {
			base = os.TempDir()
		}
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", fmt.Errorf("creating the task's scratch directory: %w", err)
	}
	prefix := fmt.Sprintf("scan-gate-task-%s-%d-", cmp.Or(os.Getenv("SLURM_ARRAY_JOB_ID"),
		"local"), o.task)
	dir, err := os.MkdirTemp(base, prefix)
	if err != nil {
		return "", fmt.Errorf("creating the task's scratch directory: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("creating the task's scratch directory: %w", err)
	}
	return dir, nil
}
