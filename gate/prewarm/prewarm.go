package prewarm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/scan-gate/scan-gate/cache"
	"github.com/scan-gate/scan-gate/gate"
	"github.com/scan-gate/scan-gate/gate/extract"
	"github.com/scan-gate/scan-gate/gate/finding"
	"github.com/scan-gate/scan-gate/gate/scanner"
	"github.com/scan-gate/scan-gate/policy"
)

// Status is what prewarming one target came to.
type Status string

// Statuses.
const (
	// Scanned: the target was scanned now and the result stored.
	Scanned Status = "scanned"
	// Fresh: a fresh result was already there (or another worker made it meanwhile).
	Fresh Status = "fresh"
	// Failed: the target could not be scanned; Outcome.Error says why.
	Failed Status = "error"
	// Interrupted: the run was stopped before the target was done. Nothing partial was
	// stored: running prewarm again takes it up.
	Interrupted Status = "interrupted"
	// Unassessed: the scanner ran but found nothing it could assess (a repo: target with no
	// lockfile or manifest). It has no result: no findings there mean nothing.
	Unassessed Status = "unassessed"
)

// Outcome is the result of prewarming one target.
type Outcome struct {
	Target Target `json:"target"`
	Status Status `json:"status"`
	// Action is what the policy does with the image, for a launch by no particular user,
	// when there is a result (Scanned, Fresh).
	Action policy.Action `json:"action,omitempty"`
	// Worst is the highest severity found, "none" for no findings.
	Worst string `json:"worst,omitempty"`
	// Key is the image's content key (File targets).
	Key string `json:"key,omitempty"`
	// Early says the result was still fresh but rescanned ahead of time (Runner.Jitter).
	Early bool `json:"early,omitempty"`
	// Published says the result was written to the shared tier (Runner.Tier).
	Published bool          `json:"published,omitempty"`
	Error     string        `json:"error,omitempty"`
	Duration  time.Duration `json:"duration_ns"`
	// Result is the gate's full result for a File target: for the audit log.
	Result *gate.Result `json:"-"`
}

// Blocked reports whether the policy blocks the image.
func (o Outcome) Blocked() bool {
	return (o.Status == Scanned || o.Status == Fresh) && o.Action == policy.Block
}

// Summary counts the outcomes of a run.
type Summary struct {
	Targets     int           `json:"targets"`
	Scanned     int           `json:"scanned"`
	Fresh       int           `json:"fresh"`
	Blocked     int           `json:"blocked"`
	Errors      int           `json:"errors"`
	Unassessed  int           `json:"unassessed"`
	Interrupted int           `json:"interrupted"`
	Elapsed     time.Duration `json:"elapsed_ns"`
	// PeakExtractions and PeakScratch are the most extractions and unpacked bytes there were
	// at once.
	PeakExtractions int   `json:"peak_extractions"`
	PeakScratch     int64 `json:"peak_scratch_bytes"`
}

// OK reports whether every target has a result.
func (s Summary) OK() bool { return s.Errors == 0 && s.Unassessed == 0 && s.Interrupted == 0 }

func (s *Summary) add(o Outcome) {
	switch o.Status {
	case Scanned:
		s.Scanned++
	case Fresh:
		s.Fresh++
	case Failed:
		s.Errors++
	case Unassessed:
		s.Unassessed++
	case Interrupted:
		s.Interrupted++
	}
	if o.Blocked() {
		s.Blocked++
	}
}

// Runner prewarms targets with a gate. Results go to the gate's writable cache, and also to
// Tier when it is set.
type Runner struct {
	// Gate checks and scans the File targets. Its Policy's timeouts and miss rules are not
	// used as they are: see prewarmPolicy.
	Gate *gate.Gate
	// Workers is how many targets are worked on at once; 0 means one per CPU core.
	Workers int
	// Limit bounds extractions and their scratch space across the workers; nil for none.
	Limit *extract.Limit
	// Jitter spreads rescans: see Due.
	Jitter time.Duration
	// Tier, when set, is a shared tier (opened for writing) that every result is also
	// written to, with a stat record that leaves out the device number.
	Tier *cache.Store
	// Report, when set, is called once per target as it is done, one call at a time.
	Report func(Outcome)
	// Now returns the time; tests set it.
	Now func() time.Time
}

// Run prewarms targets and returns the counts. When ctx ends, the targets not done are
// Interrupted; every result stored so far stays, so a second run resumes where this one
// stopped.
func (r *Runner) Run(ctx context.Context, targets []Target) Summary {
	start := time.Now()
	g := r.prewarmGate()
	workers := r.workers()

	var (
		mu      sync.Mutex
		summary = Summary{Targets: len(targets)}
		next    = make(chan Target)
		wg      sync.WaitGroup
	)
	done := func(o Outcome) {
		mu.Lock()
		defer mu.Unlock()
		summary.add(o)
		if r.Report != nil {
			r.Report(o)
		}
	}
	for range min(workers, max(len(targets), 1)) {
		wg.Go(func() {
			for t := range next {
				done(r.one(ctx, g, t))
			}
		})
	}
	for _, t := range targets {
		if ctx.Err() != nil {
			done(Outcome{Target: t, Status: Interrupted, Error: "not started"})
			continue
		}
		next <- t
	}
	close(next)
	wg.Wait()

	summary.Elapsed = time.Since(start)
	if r.Limit != nil {
		summary.PeakExtractions, summary.PeakScratch = r.Limit.Peak()
	}
	return summary
}

// prewarmGate is a copy of the runner's gate set up for prewarming: a miss or a stale result
// is scanned now (never left to the background, never blocked), and the time limits allow
// for queueing behind the other workers' extractions, which happens inside the gate's scan
// time limit: each worker ahead may take a whole scan timeout.
func (r *Runner) prewarmGate() *gate.Gate {
	g := *r.Gate
	p := *r.Gate.Policy
	p.On.Miss = policy.MissScan
	p.On.Stale = policy.StaleRescan
	if r.Limit != nil {
		p.Timeouts.Scan *= time.Duration(r.workers() + 1)
	}
	p.Timeouts.Wait = 2*p.Timeouts.Scan + time.Minute
	g.Policy = &p
	g.Background = nil
	g.Extract.Limit = r.Limit
	return &g
}

// workers is the number of workers to start.
func (r *Runner) workers() int {
	if r.Workers > 0 {
		return r.Workers
	}
	return runtime.NumCPU()
}

func (r *Runner) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// one prewarms one target.
func (r *Runner) one(ctx context.Context, g *gate.Gate, t Target) Outcome {
	start := time.Now()
	var o Outcome
	switch {
	case t.Problem != "":
		o = Outcome{Status: Failed, Error: t.Problem}
	case t.Kind == File:
		o = r.file(ctx, g, t)
	case t.Kind == Registry || t.Kind == Repo:
		o = r.ref(ctx, g, t)
	default:
		o = Outcome{Status: Failed, Error: fmt.Sprintf("unknown kind of target %q", t.Kind)}
	}
	o.Target = t
	o.Duration = time.Since(start)
	if o.Status == Failed && (ctx.Err() != nil || killedBySignal(o.Error)) {
		o.Status = Interrupted
	}
	return o
}

// killedBySignal reports whether a target's error says a child was stopped by SIGINT or
// SIGTERM: a signal sent to every process of a job step (scancel, srun forwarding it) can
// end the scanner before this process has seen its own copy and ended ctx. Such a target
// was interrupted; it is not a scanner error.
func killedBySignal(msg string) bool {
	for _, s := range []string{"signal: interrupt", "signal: terminated",
		"exit status 130", "exit status 143"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// file checks an image the way a launch does, scanning it when its result is missing or
// stale, or when it is due for an early rescan.
func (r *Runner) file(ctx context.Context, g *gate.Gate, t Target) Outcome {
	before := statID(t.Ref)
	req := gate.Request{Image: t.Ref}
	res := g.Check(ctx, req)
	status := Scanned
	early := false
	if res.Error == "" && res.Cache == gate.CacheHit && res.Durations.Scan == 0 {
		status = Fresh
		if res.Scan != nil && Due(res.Key, res.Scan.ScannedAt, r.now(),
			g.Policy.Timeouts.MaxAge, r.Jitter) {
			req.Rescan, early = true, true
			res = g.Check(ctx, req)
			status = Scanned
		}
	}
	o := Outcome{Status: status, Key: res.Key, Early: early, Result: &res}
	if res.Error != "" {
		o.Status, o.Error = Failed, res.Error
		return o
	}
	o.Action = res.Action
	if res.Scan != nil {
		o.Worst = worst(res.Scan.Findings)
	}
	if r.Tier != nil {
		published, err := r.publish(g, res.Image, before, res)
		if err != nil {
			o.Status, o.Error = Failed, err.Error()
		}
		o.Published = published
	}
	return o
}

// ImageScanner is a scanner backend with a command for registry images.
type ImageScanner interface {
	ScanImage(ctx context.Context, ref string, target scanner.Target) (*finding.Scan, error)
}

// RepoScanner is a scanner backend with a command for source trees (target.Root).
type RepoScanner interface {
	ScanRepo(ctx context.Context, target scanner.Target) (*finding.Scan, error)
}

// ref scans a registry image or a source tree with the backend's own command. No launch is
// ever decided from these results (the gate checks image files), so they are reported and
// not cached; a backend without the command is an error, never a silent skip.
func (r *Runner) ref(ctx context.Context, g *gate.Gate, t Target) Outcome {
	imageScanner, hasImage := g.Backend.(ImageScanner)
	repoScanner, hasRepo := g.Backend.(RepoScanner)
	switch {
	case t.Kind == Registry && !hasImage:
		return Outcome{Status: Failed, Error: fmt.Sprintf("the %s scanner backend has no "+
			"command for registry images", g.Backend.Name())}
	case t.Kind == Repo && !hasRepo:
		return Outcome{Status: Failed, Error: fmt.Sprintf("the %s scanner backend has no "+
			"command for source trees", g.Backend.Name())}
	}

	run, err := extract.NewRunDir(g.Extract.ScratchDir, g.Extract.Credential)
	if err != nil {
		return Outcome{Status: Failed, Error: fmt.Sprintf("scanning %s: %v", t, err)}
	}
	defer run.Remove()
	if err := run.Mkdir("scan"); err != nil {
		return Outcome{Status: Failed, Error: fmt.Sprintf("scanning %s: %v", t, err)}
	}
	ctx, cancel := context.WithTimeout(ctx, r.Gate.Policy.Timeouts.Scan)
	defer cancel()
	target := scanner.Target{ScratchDir: run.Path + "/scan", Credential: g.Extract.Credential}

	var scan *finding.Scan
	if t.Kind == Registry {
		scan, err = imageScanner.ScanImage(ctx, t.Ref, target)
	} else {
		target.Root = t.Ref
		scan, err = repoScanner.ScanRepo(ctx, target)
	}
	if errors.Is(err, scanner.ErrNothingAssessed) {
		return Outcome{Status: Unassessed, Error: err.Error()}
	}
	if err != nil {
		return Outcome{Status: Failed, Error: err.Error()}
	}
	v := g.Policy.Evaluate(scan, policy.Subject{Image: t.String()}, r.now())
	return Outcome{Status: Scanned, Action: v.Action, Worst: worst(scan.Findings)}
}

// worst names the highest severity found, or "none".
func worst(findings []finding.Finding) string {
	if len(findings) == 0 {
		return "none"
	}
	return finding.Worst(findings).String()
}

// Due reports whether a result that is still fresh should be rescanned now. Each result
// gets a point of its own, fixed by its content key, within jitter before maxAge; once its
// age passes that point it is due. Images scanned together thus turn due at different runs
// of prewarm (when jitter is longer than the time between runs), and their results stop
// expiring together. A jitter of 0 never rescans early.
func Due(key string, scannedAt, now time.Time, maxAge, jitter time.Duration) bool {
	if jitter <= 0 || scannedAt.IsZero() {
		return false
	}
	offset := time.Duration(xxhash.Sum64String("scan-gate jitter\x00"+key) %
		uint64(jitter))
	return now.Sub(scannedAt) >= maxAge-offset
}

// statID is the identity of the file at path now, or the zero FileID.
func statID(path string) cache.FileID {
	fi, err := os.Stat(path)
	if err != nil {
		return cache.FileID{}
	}
	return cache.FileIDOf(fi)
}

// errNoEntry means the gate decided without storing an entry the tier could get.
var errNoEntry = errors.New("no cached entry to publish")
