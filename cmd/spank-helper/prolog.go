package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/scan-gate/scan-gate/gate/launch"
	"github.com/scan-gate/scan-gate/gate/slurm"
	"github.com/scan-gate/scan-gate/internal/proc"
	"github.com/scan-gate/scan-gate/policy"
)

type prologOptions struct {
	common
	failOnError bool
	noOutput    bool
}

func prologFlags(fs *flag.FlagSet) *prologOptions {
	o := &prologOptions{}
	o.register(fs)
	fs.BoolVar(&o.failOnError, "fail-on-error", false, "exit 1 when no check could be "+
		"made (a node Prolog that fails drains the node; PrologSlurmctld requeues the job)")
	fs.BoolVar(&o.noOutput, "no-output", false, "do not write the reason for a block "+
		"into the job's output file")
	return o
}

// runProlog decides a batch job before it starts. A block stops the job through Slurm and
// still exits 0: the prolog itself must not fail.
func runProlog(args []string, stderr io.Writer) (int, error) {
	fs := flag.NewFlagSet("prolog", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := prologFlags(fs)
	if err := fs.Parse(args); err != nil {
		return exitUsage, err
	}
	id := os.Getenv("SLURM_JOB_ID")
	if _, err := strconv.ParseUint(id, 10, 32); err != nil {
		return exitUsage, fmt.Errorf("SLURM_JOB_ID is %q, not a job id", id)
	}
	// A gate error lets the job run, unless the admin said otherwise; either way the job
	// says why it was not checked.
	gateError := func(err error) (int, error) {
		err = fmt.Errorf("job %s not checked: %w", id, err)
		o.tools().Comment(context.Background(), id, "scan-gate: "+err.Error())
		if o.failOnError {
			return exitError, err
		}
		return exitOK, err
	}
	p, err := o.loadPolicy()
	if err != nil {
		return gateError(err)
	}
	ctx := context.Background()
	tools := o.tools()

	script, err := tools.BatchScript(ctx, id)
	if errors.Is(err, slurm.ErrNoScript) {
		return exitOK, nil // an allocation: its steps are not visible to a prolog
	}
	if err != nil {
		return gateError(err)
	}
	found := launch.FromScript(script)
	if found.Empty() {
		return exitOK, nil
	}
	job, err := tools.LookupJob(ctx, id)
	if err != nil {
		return gateError(err)
	}
	who := policy.Subject{User: job.User, Groups: userGroups(job), Partition: job.Partition,
		Account: job.Account, JobID: id}

	checker, closeLog := o.checker(p, stderr)
	defer closeLog()
	answer := checker.Decide(ctx, slurm.Launch{Found: found, Dir: job.WorkDir, Who: who})
	if answer.Action != policy.Block {
		return exitOK, nil
	}

	var blocked []string
	for _, res := range answer.Results {
		if res.Action == policy.Block {
			blocked = append(blocked, res.Message)
		}
	}
	reason := "scan-gate: " + strings.Join(blocked, "; ")
	fmt.Fprintf(stderr, "spank-helper prolog: job %s blocked: %s\n", id, reason)

	// The reason first, the cancel last: slurmctld kills the prolog of a cancelled job.
	if err := tools.Comment(ctx, id, reason); err != nil {
		fmt.Fprintf(stderr, "spank-helper prolog: %v\n", err)
	}
	if !o.noOutput {
		if err := tellJobOutput(ctx, tools, id, job, reason); err != nil {
			fmt.Fprintf(stderr, "spank-helper prolog: job %s: %v\n", id, err)
		}
	}
	if err := tools.Cancel(ctx, id); err != nil {
		return gateError(err)
	}
	return exitOK, nil
}

// userGroups are the names of the job user's groups, primary first.
func userGroups(job slurm.Job) []string {
	gids := []uint32{job.GID}
	if u, err := user.LookupId(strconv.FormatUint(uint64(job.UID), 10)); err == nil {
		if ids, err := u.GroupIds(); err == nil {
			for _, id := range ids {
				if gid, err := strconv.ParseUint(id, 10, 32); err == nil {
					gids = append(gids, uint32(gid))
				}
			}
		}
	}
	return groupNames(gids)
}

// tellJobOutput appends the reason to the job's output file, written as the job's user so
// that the gate gains no right the user lacks. It needs root; elsewhere it does nothing.
func tellJobOutput(ctx context.Context, tools slurm.Tools, id string, job slurm.Job,
	reason string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	out, err := tools.StdOut(ctx, id)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(out, "/") {
		return fmt.Errorf("output file %q is not an absolute path", out)
	}
	tee, err := proc.LookPath("tee")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, tee, "-a", "--", out)
	cmd.Env = []string{"PATH=" + proc.SafePath}
	cmd.Dir = "/"
	cmd.Stdin = strings.NewReader(reason + "\n")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: job.UID,
		Gid: job.GID}}
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("writing the reason into %s as the job's user: %w: %s", out, err,
			strings.TrimSpace(string(msg)))
	}
	return nil
}
