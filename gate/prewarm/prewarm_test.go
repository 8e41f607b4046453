package prewarm

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scan-gate/scan-gate/cache"
	"github.com/scan-gate/scan-gate/gate"
	"github.com/scan-gate/scan-gate/gate/extract"
	"github.com/scan-gate/scan-gate/gate/finding"
	"github.com/scan-gate/scan-gate/gate/scanner"
	"github.com/scan-gate/scan-gate/internal/proc"
	"github.com/scan-gate/scan-gate/internal/testimage"
	"github.com/scan-gate/scan-gate/policy"
)

// fakeBackend stands in for a scanner: a critical finding when the tree holds the vulnerable
// curl. It counts its scans and how many run at once.
type fakeBackend struct {
	scans, running, peak atomic.Int32
	delay                time.Duration
}

func (b *fakeBackend) Name() string     { return "fake" }
func (b *fakeBackend) Settings() string { return "v1" }

func (b *fakeBackend) Identify(context.Context) (scanner.Identity, error) {
	return scanner.Identity{Name: "fake", Version: "1.0",
		DBUpdatedAt: time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)}, nil
}

func (b *fakeBackend) Scan(ctx context.Context, t scanner.Target) (*finding.Scan, error) {
	b.scans.Add(1)
	now := b.running.Add(1)
	defer b.running.Add(-1)
	for old := b.peak.Load(); now > old && !b.peak.CompareAndSwap(old, now); {
		old = b.peak.Load()
	}
	select {
	case <-time.After(b.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	status, err := os.ReadFile(filepath.Join(t.Root, "var/lib/dpkg/status"))
	if err != nil {
		return nil, err
	}
	scan := &finding.Scan{Scanner: "fake", Findings: []finding.Finding{}}
	if strings.Contains(string(status), "Version: 7.88.1-10+deb12u1\n") {
		scan.Findings = append(scan.Findings, finding.Finding{ID: "CVE-2023-38545",
			Package: "curl", Installed: "7.88.1-10+deb12u1", FixState: finding.Fixed,
			FixedVersions: []string{"7.88.1-10+deb12u4"}, Severity: finding.Critical})
	}
	return scan, nil
}

// imageBackend also has an image command.
type imageBackend struct {
	fakeBackend
	refs []string
}

func (b *imageBackend) ScanImage(ctx context.Context, ref string,
	t scanner.Target) (*finding.Scan, error) {
	if t.ScratchDir == "" {
		return nil, fmt.Errorf("no scratch dir")
	}
	b.refs = append(b.refs, ref)
	return &finding.Scan{Scanner: "fake", Findings: []finding.Finding{{ID: "CVE-1",
		Severity: finding.Critical, FixState: finding.Fixed}}}, nil
}

type fixture struct {
	dir                         string
	patched, copied, vulnerable string
	corrupt                     string
}

// images builds a clean image, a copy of it (the same content key), a vulnerable one and a
// corrupt file.
func images(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{dir: reachable(t)}
	f.patched = filepath.Join(f.dir, "patched.sif")
	f.copied = filepath.Join(f.dir, "copied.sif")
	f.vulnerable = filepath.Join(f.dir, "vulnerable.sif")
	f.corrupt = filepath.Join(f.dir, "corrupt.sif")
	ctx := context.Background()
	if err := testimage.Build(ctx, f.patched, testimage.Patched); err != nil {
		t.Fatal(err)
	}
	if err := testimage.Build(ctx, f.vulnerable, testimage.Vulnerable); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(f.patched)
	os.WriteFile(f.copied, data, 0o644)
	os.WriteFile(f.corrupt, data[:len(data)/2], 0o644)
	for _, p := range []string{f.patched, f.vulnerable} {
		os.Chmod(p, 0o644)
	}
	return f
}

func (f *fixture) targets() []Target {
	var out []Target
	for _, p := range []string{f.patched, f.copied, f.vulnerable, f.corrupt} {
		out = append(out, Target{Kind: File, Ref: p})
	}
	return out
}

func reachable(t *testing.T) string {
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o755)
	return dir
}

func newGate(t *testing.T, backend scanner.Backend) *gate.Gate {
	t.Helper()
	dir := reachable(t)
	store, err := cache.Open(filepath.Join(dir, "cache"), cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var cred *proc.Credential
	if os.Geteuid() == 0 {
		cred = &proc.Credential{UID: 65534, GID: 65534}
	}
	return &gate.Gate{Policy: policy.Default(), Node: store, Backend: backend,
		Extract: extract.Options{ScratchDir: filepath.Join(dir, "scratch"), Credential: cred}}
}

func TestRunnerScansOnceAndSkipsFresh(t *testing.T) {
	f := images(t)
	backend := &fakeBackend{delay: 50 * time.Millisecond}
	limit := extract.NewLimit(1, 0)
	var reported []Outcome
	r := &Runner{Gate: newGate(t, backend), Workers: 4, Limit: limit,
		Report: func(o Outcome) { reported = append(reported, o) }}

	s := r.Run(context.Background(), f.targets())
	if s.Targets != 4 || s.Scanned != 2 || s.Fresh != 1 || s.Blocked != 1 || s.Errors != 1 ||
		s.Interrupted != 0 || s.OK() {
		t.Fatalf("first run: %+v", s)
	}
	if n := backend.scans.Load(); n != 2 {
		t.Errorf("scanner ran %d times for 2 distinct images", n)
	}
	if s.PeakExtractions != 1 || backend.peak.Load() > 2 {
		t.Errorf("peak extractions %d (limit 1), peak scans %d", s.PeakExtractions,
			backend.peak.Load())
	}
	if len(reported) != 4 {
		t.Errorf("reported %d outcomes, want 4", len(reported))
	}
	for _, o := range reported {
		if o.Target.Ref == f.corrupt && (o.Status != Failed ||
			!strings.Contains(o.Error, "malformed")) {
			t.Errorf("corrupt image: %+v", o)
		}
		if o.Target.Ref == f.vulnerable && (!o.Blocked() || o.Worst != "critical") {
			t.Errorf("vulnerable image: %+v", o)
		}
	}

	again := r.Run(context.Background(), f.targets())
	if again.Fresh != 3 || again.Scanned != 0 || backend.scans.Load() != 2 {
		t.Errorf("second run: %+v, %d scans in all", again, backend.scans.Load())
	}
}

func TestRunnerInterrupted(t *testing.T) {
	f := images(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := &Runner{Gate: newGate(t, &fakeBackend{}), Workers: 2}
	s := r.Run(ctx, f.targets())
	if s.Interrupted != 4 || s.OK() {
		t.Errorf("run with a canceled context: %+v", s)
	}
}

func TestDue(t *testing.T) {
	const maxAge, jitter = 7 * 24 * time.Hour, 48 * time.Hour
	scanned := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	if Due("k", scanned, scanned.Add(maxAge-jitter-time.Second), maxAge, jitter) {
		t.Error("due before its window")
	}
	if !Due("k", scanned, scanned.Add(maxAge), maxAge, jitter) {
		t.Error("not due at max age")
	}
	if Due("k", scanned, scanned.Add(maxAge), maxAge, 0) {
		t.Error("due with jitter off")
	}
	// Halfway through the window, about half of the keys are due: the results of images
	// scanned together are spread over it.
	due := 0
	for i := range 1000 {
		if Due(fmt.Sprintf("%016x", i), scanned, scanned.Add(maxAge-jitter/2), maxAge, jitter) {
			due++
		}
	}
	if due < 400 || due > 600 {
		t.Errorf("%d of 1000 keys due halfway through the window, want about 500", due)
	}
}

func TestRunnerRescansEarly(t *testing.T) {
	f := images(t)
	backend := &fakeBackend{}
	g := newGate(t, backend)
	r := &Runner{Gate: g, Workers: 2}
	r.Run(context.Background(), f.targets()[:1])

	// A day before max age, with a jitter of six days: the result is due (for all but a
	// one-in-a-hundred-thousand key).
	r.Jitter = 6 * 24 * time.Hour
	r.Now = func() time.Time { return time.Now().Add(g.Policy.Timeouts.MaxAge - 24*time.Hour) }
	var early bool
	r.Report = func(o Outcome) { early = o.Early }
	s := r.Run(context.Background(), f.targets()[:1])
	if s.Scanned != 1 || !early || backend.scans.Load() != 2 {
		t.Errorf("due result: %+v, early %v, %d scans", s, early, backend.scans.Load())
	}
}

func TestRunnerRefTargets(t *testing.T) {
	targets := []Target{{Kind: Registry, Ref: "ghcr.io/org/app:1"},
		{Kind: Repo, Ref: t.TempDir()}, {Kind: Unknown, Ref: "x", Problem: "bad line"}}

	plain := &Runner{Gate: newGate(t, &fakeBackend{}), Workers: 1}
	var errs []string
	plain.Report = func(o Outcome) { errs = append(errs, o.Error) }
	if s := plain.Run(context.Background(), targets); s.Errors != 3 {
		t.Errorf("a backend without image and repo commands: %+v", s)
	}
	want := []string{"has no command for registry images", "has no command for source trees",
		"bad line"}
	for i := range want {
		if !strings.Contains(errs[i], want[i]) {
			t.Errorf("error %d = %q, want %q", i, errs[i], want[i])
		}
	}

	backend := &imageBackend{}
	g := newGate(t, backend)
	r := &Runner{Gate: g, Workers: 1}
	s := r.Run(context.Background(), targets[:1])
	if s.Scanned != 1 || s.Blocked != 1 || len(backend.refs) != 1 {
		t.Errorf("registry image with an image command: %+v, refs %v", s, backend.refs)
	}
	if entries, _ := g.Node.List(); len(entries) != 0 {
		t.Errorf("a registry image's result was cached: %d entries", len(entries))
	}
}

// A runner with a tier publishes entries and device-free stat records; a node with an empty
// cache then finds everything fresh in the tier, reading no image.
func TestRunnerPublishes(t *testing.T) {
	f := images(t)
	backend := &fakeBackend{}
	tier, err := cache.Open(filepath.Join(reachable(t), "tier"), cache.Options{Shared: true})
	if err != nil {
		t.Fatal(err)
	}
	var published int
	r := &Runner{Gate: newGate(t, backend), Workers: 2, Tier: tier,
		Report: func(o Outcome) {
			if o.Published {
				published++
			}
		}}
	if s := r.Run(context.Background(), f.targets()); s.Scanned != 2 || s.Errors != 1 {
		t.Fatalf("publishing run: %+v", s)
	}
	if published != 3 {
		t.Errorf("%d outcomes published, want 3 (2 entries, and the copy's stat record)",
			published)
	}
	entries, _ := tier.List()
	if len(entries) != 2 {
		t.Fatalf("%d entries in the tier, want 2", len(entries))
	}
	fi, _ := os.Stat(f.copied)
	id := cache.FileIDOf(fi)
	id.Dev++ // another node's view of the same file
	if _, ok := tier.LookupStat(f.copied, id); !ok {
		t.Error("the tier's stat record depends on the device number")
	}

	other := newGate(t, backend)
	other.Shared = tier
	var hashed int64
	r2 := &Runner{Gate: other, Workers: 2, Report: func(o Outcome) {
		if o.Result != nil {
			hashed += o.Result.HashedBytes
		}
	}}
	if s := r2.Run(context.Background(), f.targets()[:3]); s.Fresh != 3 || hashed != 0 ||
		backend.scans.Load() != 2 {
		t.Errorf("node with an empty cache: %+v, %d bytes hashed, %d scans", s, hashed,
			backend.scans.Load())
	}
}

// repoBackend has a repo command that finds nothing to assess, as trivy repo does on an OS
// tree, and an image command that fails as a scanner ended by a job step's SIGINT does.
type repoBackend struct{ fakeBackend }

func (b *repoBackend) ScanRepo(ctx context.Context, t scanner.Target) (*finding.Scan, error) {
	return nil, fmt.Errorf("trivy: scanning source tree %s: %w: no lockfile", t.Root,
		scanner.ErrNothingAssessed)
}

func (b *repoBackend) ScanImage(ctx context.Context, ref string,
	t scanner.Target) (*finding.Scan, error) {
	return nil, fmt.Errorf("trivy: scanning registry image %s: running trivy: signal: "+
		"interrupt", ref)
}

// TestRunnerUnassessedAndInterrupted checks that a repo scan that assessed nothing is not
// reported as a clean result, and that a scanner stopped by SIGINT before the run's own
// context ended counts as interrupted, not as a scanner error.
func TestRunnerUnassessedAndInterrupted(t *testing.T) {
	var outcomes []Outcome
	r := &Runner{Gate: newGate(t, &repoBackend{}), Workers: 1,
		Report: func(o Outcome) { outcomes = append(outcomes, o) }}
	s := r.Run(context.Background(), []Target{{Kind: Repo, Ref: t.TempDir()},
		{Kind: Registry, Ref: "ghcr.io/org/app:1"}})
	if s.Scanned != 0 || s.Errors != 0 || s.Unassessed != 1 || s.Interrupted != 1 || s.OK() {
		t.Errorf("summary %+v; want 1 unassessed, 1 interrupted, no errors, not OK", s)
	}
	if len(outcomes) != 2 || outcomes[0].Status != Unassessed || outcomes[0].Action != "" ||
		outcomes[0].Worst != "" || outcomes[1].Status != Interrupted {
		t.Errorf("outcomes %+v", outcomes)
	}
}
