package gate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/scan-gate/scan-gate/cache"
	"github.com/scan-gate/scan-gate/gate/extract"
	"github.com/scan-gate/scan-gate/gate/finding"
	"github.com/scan-gate/scan-gate/gate/image"
	"github.com/scan-gate/scan-gate/gate/scanner"
	"github.com/scan-gate/scan-gate/policy"
)

// recall returns the scan to decide from: a cached one, or a fresh one made under the key's
// lock. It returns (nil, nil) when the miss rule decided the launch without a scan; res then
// holds that verdict.
func (g *Gate) recall(ctx context.Context, res *Result, req Request, im *image.Image,
	key cache.Key, ident scanner.Identity) (*finding.Scan, error) {
	if !req.Rescan {
		if entry, store := g.lookup(key, ident); entry != nil {
			store.Touch(key)
			staleWhy := g.staleness(entry, ident)
			if staleWhy == "" {
				res.Cache = CacheHit
				return &entry.Scan, nil
			}
			res.Cache = CacheStale
			if g.Policy.On.Stale == policy.StaleUseAndRescan {
				res.Background = g.startBackground(req.Image)
				return &entry.Scan, nil
			}
		}
	}
	if res.Cache == CacheNone {
		res.Cache = CacheMiss
	}
	if err := identify(res, im); err != nil {
		return nil, err
	}
	if !req.Rescan && res.Cache == CacheMiss {
		switch g.Policy.On.Miss {
		case policy.MissBlock:
			g.decideMiss(res, req, policy.Block, "image has not been scanned yet and the "+
				"policy blocks images that were not prewarmed")
			return nil, nil
		case policy.MissAllowAndScan:
			res.Background = g.startBackground(req.Image)
			g.decideMiss(res, req, policy.Allow, "image has not been scanned yet; the "+
				"policy lets it start and scans it in the background")
			return nil, nil
		}
	}
	return g.scanOnce(ctx, res, req, im, key, ident)
}

// decideMiss records a verdict made without findings, under the miss rules.
func (g *Gate) decideMiss(res *Result, req Request, action policy.Action, reason string) {
	who := req.Who
	who.Image = res.Image
	v := g.Policy.NoDecision(who, false, reason)
	v.Action = action
	v.NoDecision = false
	v.Reasons = []string{reason}
	res.Verdict = v
	res.Action = action
	res.Message = fmt.Sprintf("image %s %s: %s", req.Image, map[bool]string{true: "allowed",
		false: "blocked"}[action.Proceeds()], reason)
	if !action.Proceeds() {
		res.Message += "; next step: ask your admins to prewarm it (scan-gate prewarm)"
	}
}

// lookup finds a usable entry in the caches, node cache first, then the shared tier when
// the own caches have none or only a stale one.
func (g *Gate) lookup(key cache.Key, ident scanner.Identity) (*cache.Entry, *cache.Store) {
	var own *cache.Entry
	var from *cache.Store
	for _, store := range g.stores() {
		if entry, err := store.Get(key); err == nil {
			own, from = entry, store
			break
		}
	}
	if own != nil && g.staleness(own, ident) == "" {
		return own, from
	}
	if shared := g.sharedEntry(key); shared != nil &&
		(own == nil || g.staleness(shared, ident) == "") {
		return shared, g.adopt(key, shared)
	}
	return own, from
}

// staleness says why an entry is stale, or "" when it is fresh. A stale entry is not a miss:
// the stale rule decides whether it may still be used.
func (g *Gate) staleness(e *cache.Entry, ident scanner.Identity) string {
	switch {
	case e.Scan.ScannerVersion != ident.Version:
		return fmt.Sprintf("scanned by %s %s, now %s", ident.Name, e.Scan.ScannerVersion,
			ident.Version)
	case ident.DBUpdatedAt.After(e.Scan.DBUpdatedAt):
		return fmt.Sprintf("vulnerability DB of %s, now %s",
			e.Scan.DBUpdatedAt.Format(time.DateOnly), ident.DBUpdatedAt.Format(time.DateOnly))
	case g.now().Sub(e.Scan.ScannedAt) > g.Policy.Timeouts.MaxAge:
		return fmt.Sprintf("scanned %s ago, more than the maximum age %s",
			g.now().Sub(e.Scan.ScannedAt).Round(time.Minute), g.Policy.Timeouts.MaxAge)
	}
	return ""
}

func (g *Gate) startBackground(image string) bool {
	if g.Background == nil {
		return false
	}
	return g.Background(image) == nil
}

// scanOnce scans the image unless another process is already doing so, in which case it
// waits for that process's result. One scan per image per node. A launch waits at most the
// policy's wait timeout in all; when the scan needs longer, the launch gets no decision and
// the scan is started again in the background, so that a later launch finds its result.
func (g *Gate) scanOnce(ctx context.Context, res *Result, req Request, im *image.Image,
	key cache.Key, ident scanner.Identity) (*finding.Scan, error) {
	waitCtx := ctx
	if !req.Rescan {
		var cancel context.CancelFunc
		waitCtx, cancel = context.WithTimeout(ctx, g.Policy.Timeouts.Wait)
		defer cancel()
	}
	scan, err := g.lockAndScan(waitCtx, res, req, im, key, ident)
	if err != nil && !req.Rescan && ctx.Err() == nil &&
		errors.Is(waitCtx.Err(), context.DeadlineExceeded) {
		res.Background = g.startBackground(req.Image)
		return nil, fmt.Errorf("no result within the launch's wait limit of %s "+
			"(timeouts.wait); the scan continues in the background: %w",
			g.Policy.Timeouts.Wait, err)
	}
	return scan, err
}

func (g *Gate) lockAndScan(ctx context.Context, res *Result, req Request, im *image.Image,
	key cache.Key, ident scanner.Identity) (*finding.Scan, error) {
	store := g.writable()
	if store == nil {
		// Nowhere to record the result, so nothing to coordinate with either.
		return g.scan(ctx, res, im, ident)
	}

	waitStart := time.Now()
	unlock, err := store.Lock(ctx, key)
	res.Durations.Wait = millis(time.Since(waitStart))
	if err != nil {
		return nil, fmt.Errorf("waiting for another check's scan of %s: %w", im.Path, err)
	}
	defer unlock()

	// Whoever held the lock before us may have stored the result meanwhile.
	if entry, err := store.Get(key); err == nil && g.staleness(entry, ident) == "" &&
		(!req.Rescan || !req.NotBefore.IsZero() && !entry.StoredAt.Before(req.NotBefore)) {
		res.Cache = CacheHit
		return &entry.Scan, nil
	}

	scan, err := g.scan(ctx, res, im, ident)
	if err != nil {
		return nil, err
	}
	entry := &cache.Entry{Key: key, Image: im.Resolved, Scan: *scan}
	if err := store.Put(key, entry); err != nil {
		// The findings are known: decide from them, and say the cache failed.
		res.CacheError = fmt.Sprintf("storing the scan of %s: %v", im.Path, err)
	}
	return scan, nil
}

// scan extracts the image (or uses a sandbox in place) and runs the scanner, within the scan
// timeout. The scratch space is removed on every way out.
func (g *Gate) scan(ctx context.Context, res *Result, im *image.Image,
	ident scanner.Identity) (*finding.Scan, error) {
	start := time.Now()
	defer func() { res.Durations.Scan = millis(time.Since(start)) }()
	ctx, cancel := context.WithTimeout(ctx, g.Policy.Timeouts.Scan)
	defer cancel()

	target := scanner.Target{Credential: g.Extract.Credential}
	if im.Kind == image.Sandbox {
		run, err := extract.NewRunDir(g.Extract.ScratchDir, g.Extract.Credential)
		if err != nil {
			return nil, fmt.Errorf("scanning %s: %w", im.Path, err)
		}
		defer run.Remove()
		if err := run.Mkdir("scan"); err != nil {
			return nil, fmt.Errorf("scanning %s: %w", im.Path, err)
		}
		target.Root, target.ScratchDir = im.Resolved, run.Path+"/scan"
	} else {
		tree, err := extract.Extract(ctx, im, g.Extract)
		if err != nil {
			return nil, timeoutHint(ctx, err)
		}
		defer tree.Remove()
		target.Root, target.ScratchDir = tree.Root, tree.Scratch
	}

	scan, err := g.Backend.Scan(ctx, target)
	if err != nil {
		return nil, timeoutHint(ctx, fmt.Errorf("scanning %s: %w", im.Path, err))
	}
	if err := im.Unchanged(); err != nil {
		return nil, err
	}
	if scan.ScannerVersion == "" {
		scan.ScannerVersion = ident.Version
	}
	if scan.DBUpdatedAt.IsZero() {
		scan.DBUpdatedAt = ident.DBUpdatedAt
	}
	if scan.ScannedAt.IsZero() {
		scan.ScannedAt = g.now()
	}
	return scan, nil
}

func timeoutHint(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("scan timed out: %w", err)
	}
	return err
}
