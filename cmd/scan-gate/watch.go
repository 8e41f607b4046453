package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/scan-gate/scan-gate/gate/audit"
	"github.com/scan-gate/scan-gate/gate/extract"
	"github.com/scan-gate/scan-gate/gate/setup"
	"github.com/scan-gate/scan-gate/gate/watch"
	"github.com/scan-gate/scan-gate/internal/proc"
	"github.com/scan-gate/scan-gate/policy"
)

type watchOptions struct {
	common
	pid       int
	action    string
	scancel   string
	auditPath string
	interval  time.Duration
	jsonOut   bool
	who       policy.Subject
}

func watchFlags(fs *flag.FlagSet) *watchOptions {
	o := &watchOptions{}
	o.register(fs)
	fs.IntVar(&o.pid, "pid", 0, "the task's process `id` (required)")
	fs.StringVar(&o.who.JobID, "job", "", "Slurm job `id` (default: from the process's "+
		"cgroup or environment)")
	fs.StringVar(&o.who.User, "user", "", "user `name` for the policy (default: the "+
		"process's owner)")
	fs.StringVar(&o.action, "action", "", "what a blocked container does: log, notify or "+
		"cancel (default: the policy's [watch] action)")
	fs.StringVar(&o.scancel, "scancel", "", "the scancel `binary` (default: the policy's "+
		"[watch] scancel)")
	fs.StringVar(&o.auditPath, "audit-log", "", "append audit lines to `file` (default: "+
		"the policy's [audit] log)")
	fs.DurationVar(&o.interval, "interval", 250*time.Millisecond, "how often the process "+
		"tree is looked at")
	fs.BoolVar(&o.jsonOut, "json", false, "print each decision as a JSON line on stdout")
	return o
}

// decisionOutput is one line of --json.
type decisionOutput struct {
	PID      int          `json:"pid"`
	Method   watch.Method `json:"method,omitempty"`
	Root     watch.Root   `json:"root"`
	Ended    bool         `json:"ended,omitempty"`
	Changed  bool         `json:"changed,omitempty"`
	Skipped  []string     `json:"skipped_mounts,omitempty"`
	Vanished int          `json:"vanished,omitempty"`
	Result   any          `json:"result,omitempty"`
}

// runWatch follows one task until it ends, checks every container root it or its
// descendants enter, and acts on what the policy blocks.
func runWatch(args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlagSet("watch", stderr)
	o := watchFlags(fs)
	if err := fs.Parse(args); err != nil {
		return exitUsage, badConfig(err)
	}
	if fs.NArg() > 0 {
		return exitUsage, usageError("unexpected argument %q (give the process as --pid PID)",
			fs.Arg(0))
	}
	if o.pid <= 0 {
		return exitUsage, usageError("--pid PID is required")
	}
	p, err := o.loadPolicy()
	if err != nil {
		return exitUsage, err
	}
	action := p.Watch.Action
	if o.action != "" {
		action = policy.WatchAction(o.action)
	}
	switch action {
	case policy.WatchLog, policy.WatchNotify, policy.WatchCancel:
	default:
		return exitUsage, usageError("unknown action %q (want log, notify or cancel)", action)
	}
	if o.scancel == "" {
		o.scancel = p.Watch.Scancel
	}
	log := o.logger(stderr)

	task, err := watch.Lookup(o.pid)
	if errors.Is(err, watch.ErrGone) {
		log.Debug("the task has already ended; nothing to watch", "pid", o.pid)
		return exitProceed, nil
	}
	if err != nil {
		return exitBlocked, err
	}
	who := o.who
	if who.User == "" {
		who.User = ownerName(task)
	}
	if who.JobID == "" {
		who.JobID = task.JobID()
	}

	g, err := setup.New(p)
	if err != nil {
		return exitBlocked, fmt.Errorf("setting up the gate: %w", err)
	}
	extract.Sweep(g.Extract.ScratchDir)
	auditLog := openAudit(o.auditPath, p.AuditLog, log)
	defer auditLog.Close()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	a := &actor{task: task, who: who, action: action, scancel: o.scancel, audit: auditLog,
		digest: p.Digest(), stdout: stdout, stderr: stderr, jsonOut: o.jsonOut, log: log}
	w := &watch.Watcher{Inspector: &watch.Inspector{Gate: g}, Interval: o.interval,
		OnDecision: a.decided}
	log.Debug("watching", "pid", task.PID, "job", who.JobID, "user", who.User,
		"action", action)
	if err := w.Run(ctx, task, who); err != nil && !errors.Is(err, context.Canceled) {
		return exitBlocked, err
	}
	if a.blocked {
		return exitBlocked, nil
	}
	return exitProceed, nil
}

// actor records each decision and carries out the watch action.
type actor struct {
	task    watch.Process
	who     policy.Subject
	action  policy.WatchAction
	scancel string
	audit   *audit.Log
	digest  string
	stdout  io.Writer
	stderr  io.Writer
	jsonOut bool
	log     interface {
		Debug(string, ...any)
		Warn(string, ...any)
	}
	blocked bool
}

func (a *actor) decided(d watch.Decision) {
	if a.jsonOut {
		out := decisionOutput{PID: d.Process.PID, Method: d.Method, Root: d.Root,
			Ended: d.Ended, Changed: d.Changed, Skipped: d.Skipped, Vanished: d.Vanished}
		if d.Result.Action != "" {
			out.Result = d.Result
		}
		line, _ := json.Marshal(out)
		fmt.Fprintf(a.stdout, "%s\n", line)
	}
	res := d.Result
	if res.Action == "" {
		why := "the process ended before its root was inspected"
		if d.Changed {
			why = "the process moved to another root during the inspection"
		}
		a.log.Debug(why+"; no decision", "pid", d.Process.PID)
		return
	}
	who := a.who
	who.Image = res.Image
	a.audit.Record(res, who, a.digest)
	if res.Action == policy.Allow || res.Action == policy.Audit {
		return
	}
	fmt.Fprintf(a.stderr, "process %d: %s\n", d.Process.PID, res.Message)
	if res.Action.Proceeds() {
		if a.action != policy.WatchLog {
			a.notify(fmt.Sprintf("scan-gate: %s\n", res.Message))
		}
		return
	}
	a.blocked = true
	if !a.task.Alive() {
		return // the task is over: nobody to tell, nothing to cancel
	}
	switch a.action {
	case policy.WatchNotify:
		a.notify(fmt.Sprintf("scan-gate: %s\n", res.Message))
	case policy.WatchCancel:
		if a.who.JobID == "" {
			a.notify(fmt.Sprintf("scan-gate: %s\n", res.Message))
			fmt.Fprintf(a.stderr, "scan-gate watch: no job id known; not cancelling\n")
			return
		}
		a.notify(fmt.Sprintf("scan-gate: %s; cancelling job %s\n", res.Message, a.who.JobID))
		if err := a.cancel(); err != nil {
			fmt.Fprintf(a.stderr, "scan-gate watch: %v\n", err)
		}
	}
}

// notify writes the message on the task's standard error, through a duplicate of the task's
// own descriptor 2 (pidfd_getfd): the write has exactly the rights the task has, and a
// descriptor the task cannot write to is left alone.
func (a *actor) notify(message string) {
	if err := writeToStderr(a.task, message); err != nil {
		a.log.Warn("could not write to the task's stderr", "pid", a.task.PID, "error", err)
	}
}

func writeToStderr(task watch.Process, message string) error {
	pidfd, err := unix.PidfdOpen(task.PID, 0)
	if err != nil {
		return fmt.Errorf("opening process %d: %w", task.PID, err)
	}
	defer unix.Close(pidfd)
	if !task.Alive() {
		return fmt.Errorf("process %d: %w", task.PID, watch.ErrGone)
	}
	fd, err := unix.PidfdGetfd(pidfd, 2, 0)
	if err != nil {
		return fmt.Errorf("getting stderr of process %d: %w", task.PID, err)
	}
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil || flags&unix.O_ACCMODE == unix.O_RDONLY {
		unix.Close(fd)
		return fmt.Errorf("stderr of process %d is not open for writing", task.PID)
	}
	f := os.NewFile(uintptr(fd), "stderr of "+strconv.Itoa(task.PID))
	// A full pipe must not hold the watch up: give the write a few seconds.
	done := make(chan error, 1)
	go func() {
		_, err := io.WriteString(f, message)
		done <- err
	}()
	select {
	case err := <-done:
		f.Close()
		return err
	case <-time.After(5 * time.Second):
		return fmt.Errorf("writing to stderr of process %d: timed out", task.PID)
	}
}

// cancel runs scancel on the job.
func (a *actor) cancel() error {
	path, err := proc.LookPath(a.scancel)
	if err != nil {
		return fmt.Errorf("cancelling job %s: %w", a.who.JobID, err)
	}
	ctx, stop := context.WithTimeout(context.Background(), 30*time.Second)
	defer stop()
	out, err := exec.CommandContext(ctx, path, a.who.JobID).CombinedOutput()
	if err != nil {
		return fmt.Errorf("cancelling job %s: %s: %w: %s", a.who.JobID, path, err,
			strings.TrimSpace(string(out)))
	}
	return nil
}

// ownerName is the name of the process's owner, or its uid when it has no name.
func ownerName(p watch.Process) string {
	uid, err := p.UID()
	if err != nil {
		return ""
	}
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return u.Username
	}
	return strconv.Itoa(uid)
}

const watchHelp = `Usage: scan-gate watch --pid PID [--job ID] [--action log|notify|cancel] [flags]

Follows a task from before it enters a container until it ends, and checks every container
root that the task or its descendants enter (each once). A root that is a loop-mounted
squashfs is mapped back to its image file and checked through the cache; any other root is
copied, staying on its own filesystem (leaving out /proc, /sys, /dev, tmpfs and bind mounts
such as the user's home), and the copy scanned. A root that cannot be read gets the
policy's [on] unscannable action, never "clean". Every decision is written to the audit
log; on a block, notify also writes the message to the task's stderr and cancel also runs
scancel on the job. The host's own root is never scanned. Exit status: 0 when nothing was
blocked, 1 when something was. Run as root (the SPANK plugin starts it for every task).`
