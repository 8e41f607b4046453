package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/scan-gate/scan-gate/gate"
	"github.com/scan-gate/scan-gate/gate/audit"
	"github.com/scan-gate/scan-gate/gate/extract"
	"github.com/scan-gate/scan-gate/gate/launch"
	"github.com/scan-gate/scan-gate/gate/setup"
	"github.com/scan-gate/scan-gate/policy"
)

// runLaunchCheck reads an apptainer or singularity command line, finds the image it would
// start and checks it like check does. A command line that starts nothing proceeds at once.
func runLaunchCheck(args []string, stdout, stderr io.Writer) (int, error) {
	flags := newFlagSet("launch-check", stderr)
	o := checkFlags(flags)
	if err := flags.Parse(args); err != nil {
		return exitUsage, badConfig(err)
	}
	argv := flags.Args()
	if len(argv) == 0 {
		return exitUsage, usageError("no command line given (see 'scan-gate help launch-check')")
	}
	started, parseErr := launch.Parse(argv)
	scheme := launch.Scheme(started.Image)
	if parseErr == nil && (started.Command == "" || scheme == "instance") {
		return exitProceed, nil // nothing new starts: build, pull, a running instance, ...
	}

	p, err := o.loadPolicy()
	if err != nil {
		return exitUsage, err
	}
	o.fillWho()
	fillFromSlurmEnv(&o.who)
	log := o.logger(stderr)

	auditLog := openLaunchAudit(o.auditPath, p.AuditLog, stderr)
	defer auditLog.Close()
	out := checkOutput{Action: policy.Allow, Policy: p.Digest(), Who: o.who}
	who := o.who
	who.Image = started.Image

	prog := filepath.Base(argv[0])
	var res gate.Result
	switch {
	case parseErr != nil:
		who.Image = ""
		res = undecided(p, who, false, fmt.Sprintf("cannot tell which image this %s "+
			"command line starts: %v", prog, parseErr))
	case scheme != "":
		res = undecided(p, who, true, fmt.Sprintf("images from %s are fetched by %s "+
			"itself; scan-gate checks local SIF, squashfs and sandbox images only",
			schemePrefix(started.Image, scheme), prog))
		if !res.Action.Proceeds() || res.Action == policy.Warn {
			res.Verdict.NextStep = fmt.Sprintf("pull it into a SIF file first (%s pull "+
				"IMAGE.sif %s) and run that file", prog, started.Image)
			res.Message = res.Verdict.Message(started.Image)
		}
	default:
		g, err := setup.New(p)
		if err != nil {
			return decideWithoutGate(p, o, []string{started.Image}, stdout,
				stderr, err)
		}
		g.Background = backgroundRescan(o)
		extract.Sweep(g.Extract.ScratchDir)

		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM,
			syscall.SIGINT)
		defer stop()
		res = g.Check(ctx, gate.Request{Image: started.Image, Who: o.who})
	}
	log.Debug("launch checked", "command", started.Command, "image", started.Image,
		"action", res.Action, "cache", res.Cache, "error", res.Error)

	auditLog.Record(res, who, out.Policy)
	out.Results = []gate.Result{res}
	out.Action = policy.Stricter(out.Action, res.Action)
	return report(out, o.jsonOut, stdout, stderr), nil
}

// undecided is the result for a launch the gate cannot check: the policy's no-decision (or,
// for an image it cannot read, unscannable) action applies.
func undecided(p *policy.Policy, who policy.Subject, unscannable bool, reason string) gate.Result {
	v := p.NoDecision(who, unscannable, reason)
	return gate.Result{Image: who.Image, Action: v.Action, Verdict: v, Cache: gate.CacheNone,
		Message: v.Message(who.Image), Error: reason}
}

// schemePrefix writes a scheme as it appears in ref: "docker://" or "docker-archive:".
func schemePrefix(ref, scheme string) string {
	if strings.HasPrefix(ref[len(scheme):], "://") {
		return scheme + "://"
	}
	return scheme + ":"
}

// fillFromSlurmEnv takes the job's id, partition and account from a Slurm job's environment
// when no flag gave them. The environment is the user's: these values are for scopes and
// the audit line of a convenience check, not for enforcement.
func fillFromSlurmEnv(who *policy.Subject) {
	for _, f := range []struct {
		dst *string
		env string
	}{
		{&who.JobID, "SLURM_JOB_ID"},
		{&who.Partition, "SLURM_JOB_PARTITION"},
		{&who.Account, "SLURM_JOB_ACCOUNT"},
	} {
		if *f.dst == "" {
			*f.dst = os.Getenv(f.env)
		}
	}
}

// openLaunchAudit opens the audit log like check does, except that a user who may not write
// the node's audit log gets no warning at every launch: a user-run wrapper is convenience,
// and its decisions are audited only where the user can write.
func openLaunchAudit(flagPath, policyPath string, stderr io.Writer) *audit.Log {
	path := flagPath
	if path == "" {
		path = policyPath
	}
	if path == "" || path == "-" {
		return audit.New(io.Discard)
	}
	l, err := audit.Open(path)
	if err == nil {
		return l
	}
	if os.Geteuid() != 0 && errors.Is(err, fs.ErrPermission) {
		return audit.New(io.Discard)
	}
	fmt.Fprintf(stderr, "scan-gate: warning: %v; decisions are not audited\n", err)
	return audit.New(io.Discard)
}

const launchCheckHelp = `Usage: scan-gate launch-check [flags] -- apptainer|singularity ARGS...

Reads an apptainer or singularity command line without running it, finds the image that
exec, run, shell, test, instance start or instance run would start, and checks it like
check. Exit status as for check; a command line that starts no container (build, pull, a
command on a running instance://) exits 0 without a check. An image the runtime fetches
itself (docker://, oras://, library://, ...) gets the policy's [on] unscannable action; a
command line that cannot be read (an unknown option) gets [on] no_decision. The job id,
partition and account default to SLURM_JOB_ID, SLURM_JOB_PARTITION, SLURM_JOB_ACCOUNT.
The apptainer wrapper in contrib/apptainer calls it.`
