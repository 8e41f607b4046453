// Package slurm decides job launches for the Slurm launch points: the SPANK plugin's helper
// and the prolog. It reads who is launching from Slurm itself (the job record in
// slurmctld, the credential slurmd passes the plugin), never from the job's environment,
// which the user controls; it checks the images a step or a batch script names; it applies
// the user's --scan-gate option, which can only make the gate stricter; and it answers the
// plugin in a small line protocol (see Answer).
package slurm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/scan-gate/scan-gate/internal/proc"
)

// Tools are the Slurm client commands this package runs.
type Tools struct {
	// Squeue, Scontrol and Scancel are the commands, absolute or looked up in PATH and then
	// in the usual system directories; empty means the command's own name.
	Squeue, Scontrol, Scancel string
	// Conf, when set, is given to them as SLURM_CONF (a prolog's environment has none).
	Conf string
	// Timeout bounds each command; 0 means 30 seconds.
	Timeout time.Duration
}

// ErrNoScript is returned by BatchScript for a job that has no batch script (an salloc or
// srun allocation).
var ErrNoScript = errors.New("the job has no batch script")

func (t Tools) run(ctx context.Context, name, program string, args ...string) ([]byte,
	error) {
	if program == "" {
		program = name
	}
	path, err := proc.LookPath(program)
	if err != nil {
		return nil, err
	}
	timeout := t.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = []string{"PATH=" + proc.SafePath}
	if t.Conf != "" {
		cmd.Env = append(cmd.Env, "SLURM_CONF="+t.Conf)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err,
			strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// Job is what slurmctld records about a job that the policy and the audit log use.
type Job struct {
	ID        string
	User      string
	UID, GID  uint32
	Partition string
	Account   string
	// WorkDir is the job's working directory, where a batch script starts.
	WorkDir string
}

// jobFormat asks squeue for the fields of Job, one field each, so that no user-chosen
// text (a job name, say) can pose as another field. The work directory, the only field that
// may hold the separator, comes last.
const jobFormat = "%i|%u|%U|%g|%G|%P|%a|%Z"

// LookupJob reads the job record of job id from slurmctld.
func (t Tools) LookupJob(ctx context.Context, id string) (Job, error) {
	if _, err := strconv.ParseUint(id, 10, 32); err != nil {
		return Job{}, fmt.Errorf("reading job record: bad job id %q", id)
	}
	out, err := t.run(ctx, "squeue", t.Squeue, "--noheader", "--states=all", "--jobs="+id,
		"--format="+jobFormat)
	if err != nil {
		return Job{}, fmt.Errorf("reading job record of job %s: %w", id, err)
	}
	line, _, _ := strings.Cut(string(out), "\n")
	fields := strings.SplitN(line, "|", 8)
	if len(fields) != 8 || fields[0] != id {
		return Job{}, fmt.Errorf("reading job record of job %s: squeue printed %q", id,
			strings.TrimSpace(string(out)))
	}
	uid, err1 := strconv.ParseUint(fields[2], 10, 32)
	gid, err2 := strconv.ParseUint(fields[4], 10, 32)
	if err1 != nil || err2 != nil {
		return Job{}, fmt.Errorf("reading job record of job %s: bad user or group id in %q",
			id, line)
	}
	return Job{ID: id, User: fields[1], UID: uint32(uid), GID: uint32(gid),
		Partition: unset(fields[5]), Account: unset(fields[6]), WorkDir: fields[7]}, nil
}

// unset turns squeue's "(null)" into "".
func unset(field string) string {
	if field == "(null)" {
		return ""
	}
	return field
}

// BatchScript returns the batch script of job id, as slurmctld keeps it.
func (t Tools) BatchScript(ctx context.Context, id string) (string, error) {
	out, err := t.run(ctx, "scontrol", t.Scontrol, "write", "batch_script", id, "-")
	if err != nil {
		if strings.Contains(err.Error(), "No batch script") {
			return "", ErrNoScript
		}
		return "", fmt.Errorf("reading batch script of job %s: %w", id, err)
	}
	return string(out), nil
}

// StdOut returns the job's expanded output file, as scontrol shows it.
func (t Tools) StdOut(ctx context.Context, id string) (string, error) {
	out, err := t.run(ctx, "scontrol", t.Scontrol, "show", "job", id)
	if err != nil {
		return "", fmt.Errorf("reading output file of job %s: %w", id, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if value, ok := strings.CutPrefix(strings.TrimSpace(line), "StdOut="); ok {
			return value, nil
		}
	}
	return "", fmt.Errorf("reading output file of job %s: scontrol shows none", id)
}

// Comment sets the job's AdminComment, which the user reads in `scontrol show job` and
// cannot change.
func (t Tools) Comment(ctx context.Context, id, text string) error {
	text = strings.ReplaceAll(text, "\n", " ")
	if _, err := t.run(ctx, "scontrol", t.Scontrol, "update", "JobId="+id,
		"AdminComment="+text); err != nil {
		return fmt.Errorf("recording the reason on job %s: %w", id, err)
	}
	return nil
}

// Cancel cancels job id. Run from PrologSlurmctld, it is the prolog's last act:
// slurmctld kills the prolog of a job that is cancelled.
func (t Tools) Cancel(ctx context.Context, id string) error {
	if _, err := t.run(ctx, "scancel", t.Scancel, id); err != nil {
		return fmt.Errorf("cancelling job %s: %w", id, err)
	}
	return nil
}
