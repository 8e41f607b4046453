package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/scan-gate/scan-gate/gate"
	"github.com/scan-gate/scan-gate/gate/audit"
	"github.com/scan-gate/scan-gate/gate/extract"
	"github.com/scan-gate/scan-gate/gate/prewarm"
	"github.com/scan-gate/scan-gate/gate/setup"
	"github.com/scan-gate/scan-gate/policy"
)

const prewarmHelp = `Usage: scan-gate prewarm [flags] PATH...
       scan-gate prewarm [flags] --targets FILE
       scan-gate prewarm --slurm [--submit] [flags] --targets FILE
       scan-gate prewarm --list --targets FILE

Scans images ahead of their launches, so that a launch finds its result in the cache. A PATH
is an image file, a sandbox directory, or a directory walked for files matching the
policy's [prewarm] images globs (links and directories that match but are not image files
are reported). A targets file has one target a line: an image path (absolute, ./ or ../,
an image suffix such as .sif, or any name that exists relative to the file's directory or
--base), sif:PATH, a registry image (image:REF, or a bare name such as
docker.io/library/nginx:1.25 that does not exist locally) for the scanner's image command,
or repo:PATH for its source tree command; lines starting with # and blank lines are
ignored. Registry images and source trees are scanned and reported, not cached: no launch
is decided from them. A source tree in which the scanner finds no lockfile or manifest (an
OS tree, say) is reported as unassessed, not as clean.

Images with a fresh result are skipped; a stale one is rescanned, and a fresh one near its
end is rescanned early at a point of its own ([prewarm] jitter). An interrupted run leaves
every finished result in the cache: run it again and it goes on from there.

Exit status 0 when every target has a result, 1 when some could not be scanned, were
unassessed or interrupted, 2 for bad arguments or policy.

With --slurm, writes an sbatch array job over the targets file instead: array task N
prewarms the N-th target (comments and blank lines not counted), with its own scratch and
scanner state, and writes the result into the shared tier ([cache] shared_dir), which every
node reads after its own cache. --submit submits it. --list prints each array index with its
target.`

type prewarmOptions struct {
	common
	targets        string
	base           string
	workers        int
	maxExtractions int
	jsonOut        bool
	auditPath      string
	publish        bool
	sharedDir      string
	list           bool
	slurm          slurmOptions
	task           int
	scratch        string
}

func prewarmFlags(fs *flag.FlagSet) *prewarmOptions {
	o := &prewarmOptions{}
	o.register(fs)
	fs.StringVar(&o.targets, "targets", "", "read the targets from `file` (- for stdin)")
	fs.StringVar(&o.base, "base", "", "`dir` that relative paths of the targets file are "+
		"taken from (default: the file's directory)")
	fs.IntVar(&o.workers, "workers", 0, "images worked on at once (default: [prewarm] "+
		"workers, or one per core)")
	fs.IntVar(&o.maxExtractions, "max-extractions", 0, "extractions at once (default: "+
		"[prewarm] max_extractions)")
	fs.BoolVar(&o.jsonOut, "json", false, "print every outcome and the summary as JSON")
	fs.StringVar(&o.auditPath, "audit-log", "", "append an audit line per image scanned to "+
		"`file` (default: the policy's [audit] log)")
	fs.BoolVar(&o.publish, "publish", false, "also write every result to the shared tier")
	fs.StringVar(&o.sharedDir, "shared-dir", "", "the shared tier `dir` (default: the "+
		"policy's [cache] shared_dir)")
	fs.BoolVar(&o.list, "list", false, "print each target of --targets with its array index")
	o.slurm.register(fs)
	fs.IntVar(&o.task, "task", 0, "(run by the array job) prewarm the `N`-th target of "+
		"--targets and publish it to the shared tier")
	fs.StringVar(&o.scratch, "scratch", "", "with --task, or for the tasks of --slurm: "+
		"node-local `dir` for each task's own scratch and cache (default: $TMPDIR, else "+
		"[extract] scratch_dir for root, else the system's temporary directory)")
	return o
}

func runPrewarm(args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlagSet("prewarm", stderr)
	o := prewarmFlags(fs)
	if err := fs.Parse(args); err != nil {
		return exitUsage, badConfig(err)
	}
	if err := o.check(fs.Args()); err != nil {
		return exitUsage, err
	}
	p, err := o.loadPolicy()
	if err != nil {
		return exitUsage, err
	}
	targets, text, err := o.readTargets(fs.Args(), p)
	if err != nil {
		return exitUsage, err
	}

	switch {
	case o.list:
		listTargets(targets, stdout)
		return exitProceed, nil
	case o.slurm.enabled:
		return exitProceed, o.slurm.write(o, p, targets, text, stdout, stderr)
	case o.task > 0:
		return runPrewarmTask(o, p, targets, stdout, stderr)
	}
	return runPrewarmHere(o, p, targets, stdout, stderr)
}

// check refuses flag combinations that mean nothing.
func (o *prewarmOptions) check(paths []string) error {
	switch {
	case o.targets == "" && len(paths) == 0:
		return usageError("nothing to prewarm: give PATH... or --targets FILE " +
			"(see 'scan-gate help prewarm')")
	case o.targets != "" && len(paths) > 0:
		return usageError("give PATH... or --targets FILE, not both")
	case (o.slurm.enabled || o.task > 0 || o.list) && o.targets == "":
		return usageError("--slurm, --task and --list work on a --targets file")
	case o.slurm.submit && !o.slurm.enabled:
		return usageError("--submit goes with --slurm")
	case o.task < 0 || o.workers < 0 || o.maxExtractions < 0:
		return usageError("--task, --workers and --max-extractions take positive numbers")
	}
	return nil
}

// readTargets returns the targets and, for a targets file, its text.
func (o *prewarmOptions) readTargets(paths []string, p *policy.Policy) ([]prewarm.Target,
	string, error) {
	if o.targets == "" {
		return prewarm.Expand(paths, p.Prewarm.Images), "", nil
	}
	var data []byte
	var err error
	base := o.base
	if o.targets == "-" {
		data, err = io.ReadAll(os.Stdin)
		if base == "" {
			base, _ = os.Getwd()
		}
	} else {
		data, err = os.ReadFile(o.targets)
		if base == "" {
			base = filepath.Dir(o.targets)
		}
	}
	if err != nil {
		return nil, "", usageError("reading targets: %v", err)
	}
	if base, err = filepath.Abs(base); err != nil {
		return nil, "", usageError("targets base directory: %v", err)
	}
	targets, err := prewarm.ParseTargets(bytes.NewReader(data), base)
	if err != nil {
		return nil, "", usageError("%v", err)
	}
	return targets, string(data), nil
}

func listTargets(targets []prewarm.Target, stdout io.Writer) {
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INDEX\tLINE\tKIND\tTARGET")
	for i, t := range targets {
		ref := t.Ref
		if t.Problem != "" {
			ref += " (" + t.Problem + ")"
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\n", i+1, t.Line, t.Kind, ref)
	}
	tw.Flush()
}

// runPrewarmHere prewarms on this node, into the node cache (or the user's own).
func runPrewarmHere(o *prewarmOptions, p *policy.Policy, targets []prewarm.Target, stdout,
	stderr io.Writer) (int, error) {
	g, err := setup.New(p)
	if err != nil {
		return exitBlocked, err
	}
	if n, _ := extract.Sweep(g.Extract.ScratchDir); n > 0 {
		o.logger(stderr).Debug("swept scratch directories of killed runs", "count", n)
	}
	runner := o.runner(p, g)
	if o.publish {
		if runner.Tier, err = setup.OpenSharedWriter(p, o.sharedDir); err != nil {
			return exitBlocked, err
		}
	}
	return o.execute(runner, p, targets, o.auditLog(p, stderr, false), stdout, stderr)
}

func (o *prewarmOptions) runner(p *policy.Policy, g *gate.Gate) *prewarm.Runner {
	workers := cmp.Or(o.workers, p.Prewarm.Workers)
	return &prewarm.Runner{
		Gate:    g,
		Workers: workers,
		Limit: extract.NewLimit(cmp.Or(o.maxExtractions, p.Prewarm.MaxExtractions),
			p.Prewarm.ScratchSpace),
		Jitter: p.Prewarm.Jitter,
	}
}

// auditLog opens the audit log for the prewarm lines: the flag's, else the policy's unless
// quiet (array tasks, which may not write the node's log).
func (o *prewarmOptions) auditLog(p *policy.Policy, stderr io.Writer, quiet bool) *audit.Log {
	if o.auditPath == "" && quiet {
		return audit.New(io.Discard)
	}
	return openAudit(o.auditPath, p.AuditLog, o.logger(stderr))
}

// execute runs the runner with progress on stderr and the summary on stdout, and returns
// the exit status.
func (o *prewarmOptions) execute(runner *prewarm.Runner, p *policy.Policy,
	targets []prewarm.Target, auditLog *audit.Log, stdout, stderr io.Writer) (int, error) {
	defer auditLog.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	progress := newProgress(stderr, len(targets), o.jsonOut, o.verbose)
	digest := p.Digest()
	var outcomes []prewarm.Outcome
	runner.Report = func(out prewarm.Outcome) {
		if out.Result != nil && (out.Status == prewarm.Scanned || out.Status == prewarm.Failed) {
			auditLog.RecordPrewarm(*out.Result, digest)
		}
		outcomes = append(outcomes, out)
		progress.done(out)
	}
	fmt.Fprintf(stderr, "prewarm: %d targets, %d at a time, at most %d extractions and %s "+
		"of scratch at once\n", len(targets), runnerWorkers(runner),
		cmp.Or(o.maxExtractions, p.Prewarm.MaxExtractions), bytesText(p.Prewarm.ScratchSpace))
	summary := runner.Run(ctx, targets)
	progress.finish()

	if o.jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(struct {
			Summary  prewarm.Summary   `json:"summary"`
			Outcomes []prewarm.Outcome `json:"outcomes"`
		}{summary, outcomes})
	} else {
		printSummary(summary, stdout)
	}
	if summary.Interrupted > 0 {
		fmt.Fprintf(stderr, "prewarm: interrupted with %d targets not done; run the same "+
			"command again to go on (finished images are not scanned again)\n",
			summary.Interrupted)
	}
	if o.task == 0 {
		if err := writeMetricsFile(p, o.auditPath); err != nil {
			fmt.Fprintf(stderr, "scan-gate prewarm: warning: %v\n", err)
		}
	}
	if !summary.OK() {
		return exitBlocked, nil
	}
	return exitProceed, nil
}

func printSummary(s prewarm.Summary, stdout io.Writer) {
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "TARGETS\tSCANNED\tFRESH\tBLOCKED\tERRORS\tUNASSESSED\tNOT DONE\tTIME\t")
	fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t\n", s.Targets, s.Scanned, s.Fresh,
		s.Blocked, s.Errors, s.Unassessed, s.Interrupted, s.Elapsed.Round(10*time.Millisecond))
	tw.Flush()
}

// progress shows a bar on a terminal and plain log lines otherwise; problems are always
// printed as lines.
type progress struct {
	out     io.Writer
	verbose bool
	bar     *progressbar.ProgressBar
	total   int
	count   int
}

func newProgress(stderr io.Writer, total int, quiet, verbose bool) *progress {
	p := &progress{out: stderr, total: total, verbose: verbose}
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) && !quiet {
		p.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(stderr),
			progressbar.OptionSetDescription("prewarm"),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionShowElapsedTimeOnFinish(),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
	}
	return p
}

func (p *progress) done(o prewarm.Outcome) {
	p.count++
	line := fmt.Sprintf("prewarm: [%*d/%d] %-7s %s", len(fmt.Sprint(p.total)), p.count,
		p.total, o.Status, o.Target)
	detail := ""
	switch {
	case o.Error != "":
		first, rest, more := strings.Cut(o.Error, "\n")
		line += ": " + first
		if more && p.verbose {
			detail = "\t" + strings.ReplaceAll(strings.TrimSpace(rest), "\n", "\n\t") + "\n"
		} else if more {
			line += " (more with -v)"
		}
	case o.Worst == "none":
		line += fmt.Sprintf(": %s (no findings)", o.Action)
	case o.Action != "":
		line += fmt.Sprintf(": %s (worst %s)", o.Action, o.Worst)
	}
	if o.Early {
		line += ", rescanned early"
	}
	if o.Published {
		line += ", published to the shared tier"
	}
	if o.Status == prewarm.Scanned {
		line += fmt.Sprintf(" in %s", o.Duration.Round(10*time.Millisecond))
	}
	if p.bar == nil {
		fmt.Fprint(p.out, line+"\n"+detail)
		return
	}
	if o.Status == prewarm.Failed || o.Status == prewarm.Unassessed {
		p.bar.Clear()
		fmt.Fprint(p.out, line+"\n"+detail)
	}
	p.bar.Add(1)
}

func (p *progress) finish() {
	if p.bar != nil {
		p.bar.Finish()
	}
}

func runnerWorkers(r *prewarm.Runner) int {
	if r.Workers > 0 {
		return r.Workers
	}
	return runtime.NumCPU()
}

// bytesText formats a byte count in the largest binary unit that keeps it whole or near.
func bytesText(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	f, i := float64(n), 0
	for f >= 1024 && i < len(units)-1 {
		f, i = f/1024, i+1
	}
	return strconv.FormatFloat(f, 'f', -1, 64) + units[i]
}

// errNoTier is returned when a task has no shared tier to write.
var errNoTier = errors.New("no shared tier to write: set [cache] shared_dir or --shared-dir")
