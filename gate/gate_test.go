package gate

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scan-gate/scan-gate/cache"
	"github.com/scan-gate/scan-gate/gate/extract"
	"github.com/scan-gate/scan-gate/gate/finding"
	"github.com/scan-gate/scan-gate/gate/scanner"
	"github.com/scan-gate/scan-gate/internal/proc"
	"github.com/scan-gate/scan-gate/internal/testimage"
	"github.com/scan-gate/scan-gate/policy"
)

// countingBackend stands in for a scanner in these orchestration tests (the real trivy is
// exercised by the scanner and command tests). It reports one critical finding when the
// tree holds the vulnerable curl, and counts its runs.
type countingBackend struct {
	runs    atomic.Int32
	version string
	dbDate  time.Time
	fail    error
	delay   time.Duration
}

func (b *countingBackend) Name() string     { return "counting" }
func (b *countingBackend) Settings() string { return "v1" }

func (b *countingBackend) Identify(context.Context) (scanner.Identity, error) {
	return scanner.Identity{Name: "counting", Version: b.version, DBUpdatedAt: b.dbDate}, nil
}

func (b *countingBackend) Scan(ctx context.Context, t scanner.Target) (*finding.Scan, error) {
	b.runs.Add(1)
	select {
	case <-time.After(b.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if b.fail != nil {
		return nil, b.fail
	}
	status, err := os.ReadFile(filepath.Join(t.Root, "var/lib/dpkg/status"))
	if err != nil {
		return nil, err
	}
	scan := &finding.Scan{Scanner: "counting"}
	if strings.Contains(string(status), "Version: 7.88.1-10+deb12u1\n") {
		scan.Findings = []finding.Finding{{ID: "CVE-2023-38545", Package: "curl",
			Installed: "7.88.1-10+deb12u1", FixedVersions: []string{"7.88.1-10+deb12u4"},
			FixState: finding.Fixed, Severity: finding.Critical}}
	}
	return scan, nil
}

type fixture struct {
	gate       *Gate
	backend    *countingBackend
	vulnerable string
	patched    string
	background []string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o755)
	f := &fixture{backend: &countingBackend{version: "1.0",
		dbDate: time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)}}
	f.vulnerable = filepath.Join(dir, "vulnerable.sif")
	f.patched = filepath.Join(dir, "patched.sif")
	for path, pkgs := range map[string][]testimage.Package{f.vulnerable: testimage.Vulnerable,
		f.patched: testimage.Patched} {
		if err := testimage.Build(context.Background(), path, pkgs); err != nil {
			t.Fatal(err)
		}
		os.Chmod(path, 0o644)
	}
	store, err := cache.Open(filepath.Join(dir, "cache"), cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var cred *proc.Credential
	if os.Geteuid() == 0 {
		cred = &proc.Credential{UID: 65534, GID: 65534}
	}
	f.gate = &Gate{
		Policy:  policy.Default(),
		Node:    store,
		Backend: f.backend,
		Extract: extract.Options{ScratchDir: filepath.Join(dir, "scratch"), Credential: cred},
		Background: func(image string) error {
			f.background = append(f.background, image)
			return nil
		},
	}
	return f
}

func (f *fixture) check(t *testing.T, image string) Result {
	t.Helper()
	return f.gate.Check(context.Background(), Request{Image: image,
		Who: policy.Subject{User: "alice"}})
}

func TestMissThenHit(t *testing.T) {
	f := newFixture(t)
	first := f.check(t, f.vulnerable)
	if first.Action != policy.Block || first.Cache != CacheMiss || first.HashedBytes == 0 {
		t.Fatalf("first check: action %s, cache %s, hashed %d, error %q", first.Action,
			first.Cache, first.HashedBytes, first.Error)
	}
	second := f.check(t, f.vulnerable)
	if second.Action != policy.Block || second.Cache != CacheHit {
		t.Fatalf("second check: action %s, cache %s", second.Action, second.Cache)
	}
	if second.HashedBytes != 0 {
		t.Fatalf("a hit on an unchanged file read %d image bytes", second.HashedBytes)
	}
	if got := f.backend.runs.Load(); got != 1 {
		t.Fatalf("scanner ran %d times, want 1", got)
	}
	if allowed := f.check(t, f.patched); allowed.Action != policy.Allow {
		t.Fatalf("patched image: %s %q", allowed.Action, allowed.Error)
	}
}

func TestStaleResult(t *testing.T) {
	f := newFixture(t)
	f.check(t, f.patched)
	f.backend.dbDate = f.backend.dbDate.Add(24 * time.Hour)

	res := f.check(t, f.patched)
	if res.Cache != CacheStale || res.Action != policy.Allow || !res.Background {
		t.Fatalf("stale with use-and-rescan: cache %s, action %s, background %v", res.Cache,
			res.Action, res.Background)
	}
	if f.backend.runs.Load() != 1 || len(f.background) != 1 {
		t.Fatalf("runs %d, background %v", f.backend.runs.Load(), f.background)
	}

	f.gate.Policy.On.Stale = policy.StaleRescan
	res = f.check(t, f.patched)
	if res.Cache != CacheStale || res.Background || f.backend.runs.Load() != 2 {
		t.Fatalf("stale with rescan: cache %s, runs %d", res.Cache, f.backend.runs.Load())
	}
	if res = f.check(t, f.patched); res.Cache != CacheHit {
		t.Fatalf("after the rescan: cache %s", res.Cache)
	}
}

func TestOldResultIsStale(t *testing.T) {
	f := newFixture(t)
	f.check(t, f.patched)
	f.gate.Now = func() time.Time { return time.Now().Add(8 * 24 * time.Hour) }
	if res := f.check(t, f.patched); res.Cache != CacheStale {
		t.Fatalf("result older than max_age: cache %s", res.Cache)
	}
	f.gate.Now = nil
	f.backend.version = "2.0"
	if res := f.check(t, f.patched); res.Cache != CacheStale {
		t.Fatalf("result of an older scanner: cache %s", res.Cache)
	}
}

func TestMissRules(t *testing.T) {
	f := newFixture(t)
	f.gate.Policy.On.Miss = policy.MissBlock
	res := f.check(t, f.patched)
	if res.Action != policy.Block || !strings.Contains(res.Message, "not been scanned yet") {
		t.Fatalf("miss = block: %s %q", res.Action, res.Message)
	}
	f.gate.Policy.On.Miss = policy.MissAllowAndScan
	res = f.check(t, f.vulnerable)
	if res.Action != policy.Allow || !res.Background || f.backend.runs.Load() != 0 {
		t.Fatalf("miss = allow-and-scan: %s, background %v, runs %d", res.Action,
			res.Background, f.backend.runs.Load())
	}
}

func TestScanErrorIsNoDecisionAndNotCached(t *testing.T) {
	f := newFixture(t)
	f.backend.fail = errors.New("scanner crashed")
	res := f.check(t, f.vulnerable)
	if res.Action != policy.Block || !res.Verdict.NoDecision ||
		!strings.Contains(res.Error, "scanner crashed") {
		t.Fatalf("scan error: action %s, no decision %v, error %q", res.Action,
			res.Verdict.NoDecision, res.Error)
	}
	f.gate.Policy.On.NoDecision = policy.Allow
	f.backend.fail = nil
	if res := f.check(t, f.vulnerable); res.Cache != CacheMiss || res.Action != policy.Block {
		t.Fatalf("after a failed scan: cache %s, action %s", res.Cache, res.Action)
	}
}

func TestWaitLimit(t *testing.T) {
	f := newFixture(t)
	f.gate.Policy.Timeouts.Wait = 200 * time.Millisecond
	f.backend.delay = time.Minute
	start := time.Now()
	res := f.check(t, f.vulnerable)
	if elapsed := time.Since(start); elapsed > 20*time.Second {
		t.Fatalf("check took %s with a 200ms wait limit", elapsed)
	}
	if !res.Verdict.NoDecision || !res.Background ||
		!strings.Contains(res.Error, "timeouts.wait") {
		t.Fatalf("wait exceeded: no decision %v, background %v, error %q",
			res.Verdict.NoDecision, res.Background, res.Error)
	}
}

func TestUnscannableImage(t *testing.T) {
	f := newFixture(t)
	res := f.check(t, "/dev/null")
	if res.Action != policy.Block || res.Cache != CacheNone {
		t.Fatalf("/dev/null: %s %s", res.Action, res.Cache)
	}
	f.gate.Policy.On.Unscannable = policy.Allow
	truncated := filepath.Join(t.TempDir(), "cut.sif")
	data, _ := os.ReadFile(f.patched)
	os.WriteFile(truncated, data[:len(data)/2], 0o644)
	if res := f.check(t, truncated); res.Action != policy.Allow || !res.Verdict.Unscannable {
		t.Fatalf("truncated SIF with unscannable = allow: %s, unscannable %v", res.Action,
			res.Verdict.Unscannable)
	}
}

// TestRescansShareOneScan: background rescans that waited for another scan of the image
// take its result instead of scanning again.
func TestRescansShareOneScan(t *testing.T) {
	f := newFixture(t)
	start := time.Now()
	rescan := func() Result {
		return f.gate.Check(context.Background(), Request{Image: f.patched, Rescan: true,
			NotBefore: start})
	}
	if res := rescan(); res.Cache != CacheMiss {
		t.Fatalf("first rescan: cache %s, error %q", res.Cache, res.Error)
	}
	if res := rescan(); res.Cache != CacheHit || f.backend.runs.Load() != 1 {
		t.Fatalf("second rescan: cache %s, runs %d", res.Cache, f.backend.runs.Load())
	}
	// A forced rescan (no NotBefore) scans again.
	f.gate.Check(context.Background(), Request{Image: f.patched, Rescan: true})
	if f.backend.runs.Load() != 2 {
		t.Fatalf("forced rescan: runs %d, want 2", f.backend.runs.Load())
	}
}
