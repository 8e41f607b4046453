package watch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/scan-gate/scan-gate/gate"
	"github.com/scan-gate/scan-gate/gate/extract"
	"github.com/scan-gate/scan-gate/gate/scanner"
	"github.com/scan-gate/scan-gate/policy"
)

// Method says how a root filesystem was checked.
type Method string

// Methods.
const (
	// MethodImage: the root is a loop-mounted image file, checked through the gate and its
	// cache like any launch.
	MethodImage Method = "image"
	// MethodWalk: the live root was copied, staying on its own mount, and the copy scanned.
	MethodWalk Method = "walk"
)

// Decision is the outcome of inspecting the root filesystem of one process.
type Decision struct {
	Process Process
	Root    Root
	Method  Method
	// Result is the verdict, as for a launch. Its Action is empty when there is none
	// because the process ended first (Ended) or moved to another root (Changed).
	Result gate.Result
	// Ended says the process ended, or its PID was reused, during the inspection.
	Ended bool
	// Changed says the process moved to another root during the inspection (a runtime
	// still setting the container up): no verdict; a Watcher inspects the new root.
	Changed bool
	// Skipped lists what the walk left out because another filesystem is mounted there.
	Skipped []string
	// Vanished counts entries that disappeared while the walk reached them.
	Vanished int
}

// Inspector checks the root filesystems of running processes with a gate's policy, caches
// and scanner.
type Inspector struct {
	Gate *gate.Gate
	// afterFile, when set, runs after each file a walk copies (tests use it).
	afterFile func(where string)
}

// ErrHostRoot is returned for a process whose root is the host's: there is no container to
// check, and the host's own files are never scanned.
var ErrHostRoot = errors.New("the process runs in the host's root, not in a container")

// Inspect checks the root filesystem of p for who. A root that cannot be read whole gives
// a no-decision verdict ("cannot inspect"), never a clean one.
func (in *Inspector) Inspect(ctx context.Context, p Process, who policy.Subject) (Decision,
	error) {
	d := Decision{Process: p}
	host, err := HostRoot()
	if err != nil {
		return d, err
	}
	root, err := p.Identify()
	if errors.Is(err, ErrGone) {
		d.Ended = true
		return d, nil
	}
	if err != nil {
		d.Result = in.cannotInspect(p.describe(Root{}, who.JobID), who, err)
		return d, nil
	}
	if root.ID == host {
		return d, fmt.Errorf("process %d: %w", p.PID, ErrHostRoot)
	}
	d.Root = root

	if root.Image != "" {
		if res, ok := in.checkImage(ctx, root, who); ok {
			d.Method, d.Result, d.Ended = MethodImage, res, !p.Alive()
			return d, nil
		}
	}
	d.Method = MethodWalk
	return in.walk(ctx, d, host, who), nil
}

// checkImage checks the image file behind a loop-mounted root through the gate. It returns
// ok=false when the file cannot be confirmed as the one the loop device reads, before and
// after the check.
func (in *Inspector) checkImage(ctx context.Context, root Root, who policy.Subject) (
	gate.Result, bool) {
	if err := checkPartition(root.Image, root.Offset, root.loop.sizeLimit); err != nil {
		return gate.Result{}, false
	}
	res := in.Gate.Check(ctx, gate.Request{Image: root.Image, Who: who})
	if !root.loop.sameFile(root.Image) {
		return gate.Result{}, false // replaced while it was checked
	}
	return res, true
}

// walk copies the process's root into a private directory and scans the copy.
func (in *Inspector) walk(ctx context.Context, d Decision, host RootID,
	who policy.Subject) Decision {
	p, label := d.Process, d.Process.describe(d.Root, who.JobID)
	start := time.Now()

	rootFD, err := unix.Open(p.rootDir(), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		if !p.Alive() {
			d.Ended = true
			return d
		}
		d.Result = in.cannotInspect(label, who, err)
		return d
	}
	defer unix.Close(rootFD)
	// The descriptor must be the root of this very process, and not the host's.
	var st unix.Stat_t
	if err := unix.Fstat(rootFD, &st); err != nil {
		d.Result = in.cannotInspect(label, who, err)
		return d
	}
	if !p.Alive() {
		d.Ended = true
		return d
	}
	if (RootID{Dev: st.Dev, Ino: st.Ino}) != d.Root.ID {
		d.Changed = true
		return d
	}
	if (RootID{Dev: st.Dev, Ino: st.Ino}) == host {
		d.Result = in.cannotInspect(label, who, ErrHostRoot)
		return d
	}

	g := in.Gate
	run, err := extract.NewRunDir(g.Extract.ScratchDir, g.Extract.Credential)
	if err != nil {
		d.Result = in.cannotInspect(label, who, err)
		return d
	}
	defer run.Remove()
	for _, sub := range []string{"root", "scan"} {
		if err := run.Mkdir(sub); err != nil {
			d.Result = in.cannotInspect(label, who, err)
			return d
		}
	}

	snap := &snapshotter{ctx: ctx, cred: g.Extract.Credential, afterFile: in.afterFile}
	err = snap.snapshot(rootFD, filepath.Join(run.Path, "root"))
	d.Skipped, d.Vanished = snap.stats.Mounts, snap.stats.Vanished
	// Whatever was copied, it counts only if the process was the same one throughout.
	if !p.Alive() {
		d.Ended = true
		return d
	}
	if err != nil {
		d.Result = in.cannotInspect(label, who, err)
		return d
	}
	// What a scanner reads to know the installed packages must be the root's own.
	for _, where := range d.Skipped {
		if db, ok := hidesPackageDatabase(where); ok {
			d.Result = in.cannotInspect(label, who, fmt.Errorf("%w: another filesystem "+
				"is mounted on %s, over the package database %s, and the walk reads only "+
				"the root's own filesystem", ErrCannotInspect, where, db))
			return d
		}
	}

	d.Result = in.scanCopy(ctx, label, filepath.Join(run.Path, "root"),
		filepath.Join(run.Path, "scan"), who)
	d.Result.Durations.Total = float64(time.Since(start).Microseconds()) / 1000
	return d
}

// scanCopy scans a snapshot and evaluates the policy. Snapshots are not cached: a live tree
// has no stable content key.
func (in *Inspector) scanCopy(ctx context.Context, label, root, scratch string,
	who policy.Subject) gate.Result {
	g := in.Gate
	who.Image = label
	res := gate.Result{Image: label, Cache: gate.CacheMiss}

	ident, err := g.Backend.Identify(ctx)
	if err != nil {
		return in.noDecision(res, who, false, fmt.Errorf("identifying scanner: %w", err))
	}
	res.Scanner = ident
	scanStart := time.Now()
	scanCtx, cancel := context.WithTimeout(ctx, g.Policy.Timeouts.Scan)
	defer cancel()
	scan, err := g.Backend.Scan(scanCtx, scanner.Target{Root: root, ScratchDir: scratch,
		Credential: g.Extract.Credential})
	res.Durations.Scan = float64(time.Since(scanStart).Microseconds()) / 1000
	if err != nil {
		return in.noDecision(res, who, false, fmt.Errorf("scanning %s: %w", label, err))
	}
	if scan.ScannerVersion == "" {
		scan.ScannerVersion = ident.Version
	}
	if scan.DBUpdatedAt.IsZero() {
		scan.DBUpdatedAt = ident.DBUpdatedAt
	}
	now := time.Now()
	if g.Now != nil {
		now = g.Now()
	}
	if scan.ScannedAt.IsZero() {
		scan.ScannedAt = now
	}
	res.Scan = scan
	res.Verdict = g.Policy.Evaluate(scan, who, now)
	res.Action = res.Verdict.Action
	res.Message = rootMessage(res.Verdict, label)
	return res
}

// cannotInspect is the verdict for a root that could not be read: the policy's unscannable
// action, never allow by default.
func (in *Inspector) cannotInspect(label string, who policy.Subject, err error) gate.Result {
	if !errors.Is(err, ErrCannotInspect) {
		err = fmt.Errorf("%w: %w", ErrCannotInspect, err)
	}
	who.Image = label
	return in.noDecision(gate.Result{Image: label, Cache: gate.CacheNone}, who, true, err)
}

func (in *Inspector) noDecision(res gate.Result, who policy.Subject, unscannable bool,
	err error) gate.Result {
	res.Error = err.Error()
	res.Verdict = in.Gate.Policy.NoDecision(who, unscannable, err.Error())
	res.Action = res.Verdict.Action
	res.Message = rootMessage(res.Verdict, res.Image)
	return res
}

// rootMessage is the verdict's message on a container root named by label ("container
// root of PID ..."), which reads as its own subject: not "image container root ...".
func rootMessage(v policy.Verdict, label string) string {
	return strings.TrimPrefix(v.Message(label), "image ")
}

// packageDatabases are where scanners read which packages are installed (dpkg, rpm, apk;
// /lib/apk/db may be reached through /usr/lib when /lib is a link).
var packageDatabases = []string{"/var/lib/dpkg", "/var/lib/rpm", "/usr/lib/sysimage/rpm",
	"/lib/apk/db", "/usr/lib/apk/db"}

// hidesPackageDatabase reports whether a mount at where (a path in the container) covers a
// package database: on it, on a directory above it, or on a file or directory inside it.
// The walk does not read other filesystems, so what it would scan there is not the image's.
func hidesPackageDatabase(where string) (string, bool) {
	for _, db := range packageDatabases {
		if where == db || strings.HasPrefix(db, where+"/") ||
			strings.HasPrefix(where, db+"/") {
			return db, true
		}
	}
	return "", false
}

// describe names the root of p for messages and the audit log, which outlive the process
// (a /proc/PID/root path means nothing later): the image it comes from when known, the
// Slurm job (the process's own, else job) and the program the process runs.
func (p Process) describe(root Root, job string) string {
	var details []string
	if root.Image != "" {
		details = append(details, "image "+root.Image)
	}
	if own := p.JobID(); own != "" {
		job = own
	}
	if job != "" {
		details = append(details, "job "+job)
	}
	if exe, err := os.Readlink(filepath.Join(procDir, strconv.Itoa(p.PID), "exe")); err == nil {
		details = append(details, "exe "+exe)
	}
	label := fmt.Sprintf("container root of PID %d", p.PID)
	if len(details) > 0 {
		label += " (" + strings.Join(details, ", ") + ")"
	}
	return label
}

// Watcher follows a task and its descendants, from before they enter a container until the
// task ends, and inspects each container root it sees once.
type Watcher struct {
	Inspector *Inspector
	// Interval is how often the process tree is looked at; 0 means 250ms.
	Interval time.Duration
	// OnDecision receives each decision as it is made.
	OnDecision func(Decision)
}

// Run watches task until it ends (nil) or ctx is done (ctx's error). Who is the subject the
// policy is evaluated for.
func (w *Watcher) Run(ctx context.Context, task Process, who policy.Subject) error {
	interval := w.Interval
	if interval <= 0 {
		interval = 250 * time.Millisecond
	}
	host, err := HostRoot()
	if err != nil {
		return err
	}
	seen := map[RootID]bool{host: true}
	unreadable := map[Process]bool{}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		if !task.Alive() {
			return nil
		}
		for _, p := range append([]Process{task}, task.Descendants()...) {
			id, err := p.Root()
			switch {
			case errors.Is(err, ErrGone) || err == nil && seen[id]:
				continue
			case err != nil:
				// A root this caller may not read is reported, once: it is never clean.
				if unreadable[p] {
					continue
				}
				unreadable[p] = true
			default:
				seen[id] = true
			}
			d, err := w.Inspector.Inspect(ctx, p, who)
			if errors.Is(err, ErrHostRoot) {
				continue
			}
			if err != nil {
				return err
			}
			if w.OnDecision != nil {
				w.OnDecision(d)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
		}
	}
}

// Entry is one process running in a container, as ps lists it.
type Entry struct {
	PID  int    `json:"pid"`
	UID  int    `json:"uid"`
	Job  string `json:"job,omitempty"`
	Root Root   `json:"root"`
}

// List returns the processes whose root is not the host's, by PID. Processes this caller
// may not inspect are left out (run as root to see every user's).
func List() ([]Entry, error) {
	host, err := HostRoot()
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, pid := range allPIDs() {
		if pid == os.Getpid() {
			continue
		}
		p, err := Lookup(pid)
		if err != nil {
			continue
		}
		id, err := p.Root()
		if err != nil || id == host {
			continue
		}
		root, err := p.Identify()
		if err != nil {
			continue
		}
		uid, _ := p.UID()
		out = append(out, Entry{PID: pid, UID: uid, Job: p.JobID(), Root: root})
	}
	return out, nil
}
