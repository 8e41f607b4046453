package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/scan-gate/scan-gate/gate/launch"
	"github.com/scan-gate/scan-gate/gate/slurm"
	"github.com/scan-gate/scan-gate/policy"
)

type stepOptions struct {
	common
	job, step   string
	uid, gid    uint
	gids        string
	cwd         string
	option      string
	batchScript string
	watching    bool
}

func stepFlags(fs *flag.FlagSet) *stepOptions {
	o := &stepOptions{}
	o.register(fs)
	fs.StringVar(&o.job, "job", "", "Slurm job `id` (required)")
	fs.StringVar(&o.step, "step", "", "Slurm step `id`, for the log")
	fs.UintVar(&o.uid, "uid", 0, "the job's user `id`, from Slurm")
	fs.UintVar(&o.gid, "gid", 0, "the job's group `id`, from Slurm")
	fs.StringVar(&o.gids, "gids", "", "the user's supplementary group `ids`, comma-separated")
	fs.StringVar(&o.cwd, "cwd", "", "the `directory` the step's tasks start in, for "+
		"relative image paths (default: the job's)")
	fs.StringVar(&o.option, "option", "", "the user's --scan-gate `value`")
	fs.StringVar(&o.batchScript, "batch-script", "", "the spooled batch script `file` of a "+
		"batch step (read instead of ARGV)")
	fs.BoolVar(&o.watching, "watching", false, "the post-launch watch covers images that "+
		"cannot be named now")
	return o
}

// runStep decides one job step and answers the plugin on stdout.
func runStep(args []string, stdout, stderr io.Writer) (int, error) {
	fs := flag.NewFlagSet("step", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := stepFlags(fs)
	if err := fs.Parse(args); err != nil {
		return exitUsage, err
	}
	if _, err := strconv.ParseUint(o.job, 10, 32); err != nil {
		return exitUsage, fmt.Errorf("--job: want a job id, got %q", o.job)
	}
	log := o.logger(stderr)

	found, err := o.launches(fs.Args())
	if err != nil {
		return exitError, err
	}
	log.Debug("launches found", "job", o.job, "step", o.step, "images", found.Images,
		"unresolved", found.Unresolved)
	if found.Empty() {
		// No container: answer at once, without reading the policy.
		return exitOK, slurm.Answer{Action: policy.Allow}.Write(stdout)
	}

	p, err := o.loadPolicy()
	if err != nil {
		return exitUsage, err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	l := slurm.Launch{Found: found, Dir: o.cwd, Who: o.subject(), Watching: o.watching}
	var notes []string
	if l.Option, err = slurm.ParseOption(o.option); err != nil {
		notes = append(notes, "ignoring "+err.Error())
	}
	checker, closeLog := o.checker(p, stderr)
	defer closeLog()

	job, err := o.tools().LookupJob(ctx, o.job)
	switch {
	case err == nil:
		l.Who.Partition, l.Who.Account = job.Partition, job.Account
		if l.Dir == "" {
			l.Dir = job.WorkDir
		}
	case needsJobRecord(p):
		checker.Unavailable = err // the policy's scopes cannot be matched without it
	default:
		fmt.Fprintf(stderr, "spank-helper: %v (the policy does not need it)\n", err)
	}

	answer := checker.Decide(ctx, l)
	answer.Messages = append(notes, answer.Messages...)
	log.Debug("decided", "job", o.job, "step", o.step, "action", answer.Action,
		"watch", answer.Watch, "unresolved", answer.Unresolved)
	return exitOK, answer.Write(stdout)
}

// launches finds what the step launches: from the batch script, or from its argv.
func (o *stepOptions) launches(argv []string) (launch.Found, error) {
	if o.batchScript == "" {
		found := launch.FromArgv(argv)
		if len(argv) > 0 && o.isSIF(argv[0]) && !slices.Contains(found.Images, argv[0]) {
			found.Images = append(found.Images, argv[0]) // a SIF run as a program
		}
		return found, nil
	}
	text, err := os.ReadFile(o.batchScript)
	if err != nil {
		return launch.Found{}, fmt.Errorf("reading batch script: %w", err)
	}
	return launch.FromScript(string(text)), nil
}

// subject is who launches, from the ids Slurm gave the plugin.
func (o *stepOptions) subject() policy.Subject {
	uid := strconv.FormatUint(uint64(o.uid), 10)
	who := policy.Subject{User: uid, JobID: o.job}
	if u, err := user.LookupId(uid); err == nil {
		who.User = u.Username
	}
	gids := []uint32{uint32(o.gid)}
	for _, field := range strings.Split(o.gids, ",") {
		if gid, err := strconv.ParseUint(strings.TrimSpace(field), 10, 32); err == nil {
			gids = append(gids, uint32(gid))
		}
	}
	who.Groups = groupNames(gids)
	return who
}

// isSIF reports whether program, a path the step runs, is a SIF file whatever its name: a
// SIF starts with a launch script (#!/usr/bin/env run-singularity), so the kernel runs it
// as a container. A bare name is looked up in the user's PATH, which is not read here.
func (o *stepOptions) isSIF(program string) bool {
	if !strings.Contains(program, "/") {
		return false
	}
	if !filepath.IsAbs(program) {
		if o.cwd == "" {
			return false
		}
		program = filepath.Join(o.cwd, program)
	}
	f, err := os.Open(program)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, len(sifMagic)+sifMagicOffset)
	if _, err := io.ReadFull(f, head); err != nil {
		return false
	}
	return string(head[sifMagicOffset:]) == sifMagic
}

// sifMagic stands at sifMagicOffset in a SIF file, after its launch script.
const (
	sifMagic       = "SIF_MAGIC\x00"
	sifMagicOffset = 32
)
