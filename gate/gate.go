// Package gate decides whether a launch may use an image: it identifies the image by
// content, recalls a cached scan (or scans, once per image per node), evaluates the policy
// on every call, and reports one Result for the audit line.
package gate

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/scan-gate/scan-gate/cache"
	"github.com/scan-gate/scan-gate/gate/extract"
	"github.com/scan-gate/scan-gate/gate/finding"
	"github.com/scan-gate/scan-gate/gate/image"
	"github.com/scan-gate/scan-gate/gate/scanner"
	"github.com/scan-gate/scan-gate/policy"
)

// Gate holds what every check needs. It is cheap to build: nothing is read or started until
// Check runs.
type Gate struct {
	Policy *policy.Policy
	// Node is the node-local cache: read-write for root, read-only for other users.
	Node *cache.Store
	// User, when set, is a non-root user's own cache, where that user's scans go. It is
	// consulted after Node.
	User *cache.Store
	// Shared, when set, is the shared tier on the parallel filesystem, filled by prewarm
	// jobs and read-only here. It is consulted after Node and User, and what is found
	// there is copied into the writable cache (see shared.go).
	Shared  *cache.Store
	Backend scanner.Backend
	Extract extract.Options
	// KeySecret seeds the content key, so that no one without it can make two images share
	// a key (see image.KeyWith). Every cache a gate shares results with must use the same.
	KeySecret []byte
	// Now returns the time; tests set it.
	Now func() time.Time
	// Background, when set, starts a rescan of an image without waiting for it. It is used
	// for stale entries and for misses under the allow-and-scan rule.
	Background func(image string) error
}

// Request is one image to check and who is launching it.
type Request struct {
	Image string
	Who   policy.Subject
	// Rescan ignores cached results and scans now (the background rescan uses it).
	Rescan bool
	// NotBefore, with Rescan, accepts a fresh result stored at or after this time instead of
	// scanning again: launches that each started a background rescan of one image while
	// another scan ran are then served by that one scan.
	NotBefore time.Time
}

// Cache outcomes recorded in a Result.
const (
	CacheHit   = "hit"
	CacheStale = "stale"
	CacheMiss  = "miss"
	CacheNone  = "none" // no lookup happened (the image could not be read)
)

// Result is the outcome of one check: the verdict and everything the audit line records.
type Result struct {
	Image   string           `json:"image"`
	Kind    image.Kind       `json:"kind,omitempty"` // empty on a stat-index hit: not read
	Key     string           `json:"key,omitempty"`
	Action  policy.Action    `json:"action"`
	Verdict policy.Verdict   `json:"verdict"`
	Message string           `json:"message"`
	Cache   string           `json:"cache"`
	Scanner scanner.Identity `json:"scanner"`
	// Scan is the scan the verdict was made from, when there was one.
	Scan *finding.Scan `json:"scan,omitempty"`
	// Error is why no decision could be made; empty otherwise.
	Error string `json:"error,omitempty"`
	// HashedBytes counts the image bytes read to compute the key (0 on a stat-index hit).
	HashedBytes int64     `json:"hashed_bytes"`
	Durations   Durations `json:"durations_ms"`
	// CacheError says why a finished scan could not be stored; the verdict stands.
	CacheError string `json:"cache_error,omitempty"`
	// Background says a rescan was started in the background.
	Background bool `json:"background_rescan,omitempty"`
}

// Durations in milliseconds, per step.
type Durations struct {
	Identify float64 `json:"identify"`
	Wait     float64 `json:"wait,omitempty"`
	Scan     float64 `json:"scan,omitempty"`
	Total    float64 `json:"total"`
}

func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Check decides one launch. It never returns without a verdict: every failure becomes a
// "no decision" verdict whose action the policy sets.
func (g *Gate) Check(ctx context.Context, req Request) (res Result) {
	start := time.Now()
	res = Result{Image: absolute(req.Image), Cache: CacheNone}
	who := req.Who
	who.Image = res.Image

	defer func() { res.Durations.Total = millis(time.Since(start)) }()

	// Nothing is read from the file yet: on a stat-index hit nothing ever is.
	im, err := image.OpenUnread(req.Image)
	if err != nil {
		g.noDecision(&res, who, unscannable(err), err)
		return res
	}
	defer im.Close()
	// Policy globs and the audit log see the real path, whatever links or ".." it was
	// named through.
	res.Image, who.Image = im.Resolved, im.Resolved

	key, hashed, err := g.contentKey(ctx, im)
	res.Kind = im.Kind // empty for a file the stat index knew: it was not read
	res.HashedBytes = hashed
	res.Durations.Identify = millis(time.Since(start))
	if err != nil {
		g.noDecision(&res, who, unscannable(err), err)
		return res
	}
	res.Key = key

	ident, err := g.Backend.Identify(ctx)
	if err != nil {
		g.noDecision(&res, who, false, fmt.Errorf("identifying scanner: %w", err))
		return res
	}
	res.Scanner = ident
	ckey := cache.Key{Content: key, Scanner: g.Backend.Name(), Settings: g.Backend.Settings()}

	scan, err := g.recall(ctx, &res, req, im, ckey, ident)
	if err != nil {
		g.noDecision(&res, who, unscannable(err), err)
		return res
	}
	if scan == nil { // decided without a scan (miss rules)
		return res
	}
	res.Scan = scan
	res.Verdict = g.Policy.Evaluate(scan, who, g.now())
	res.Action = res.Verdict.Action
	res.Message = res.Verdict.Message(res.Image)
	return res
}

// unscannable tells errors about the image itself (not an image, malformed, or content the
// scanner could not fully read) from errors of the gate or the scanner.
func unscannable(err error) bool {
	return errors.Is(err, image.ErrMalformed) || errors.Is(err, image.ErrNotImage) ||
		errors.Is(err, scanner.ErrIncomplete) || errors.Is(err, errUnscannable)
}

// errUnscannable marks an image whose partitions cannot be extracted (encrypted, ext3).
var errUnscannable = errors.New("unscannable")

// identify reads the image's format, unless hashing did already, and refuses an image that
// cannot be scanned. It runs only when a scan may follow: a cached result is the result of
// a scan, so a hit needs neither.
func identify(res *Result, im *image.Image) error {
	if err := im.Identify(); err != nil {
		return err
	}
	res.Kind = im.Kind
	if im.Unscannable != "" {
		return fmt.Errorf("image %s is %w: %s", im.Path, errUnscannable, im.Unscannable)
	}
	return nil
}

// absolute cleans path and makes it absolute, for images that could not be opened.
func absolute(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		return abs
	}
	return path
}

func (g *Gate) now() time.Time {
	if g.Now != nil {
		return g.Now()
	}
	return time.Now()
}

func (g *Gate) noDecision(res *Result, who policy.Subject, unscannable bool, err error) {
	res.Error = err.Error()
	res.Verdict = g.Policy.NoDecision(who, unscannable, err.Error())
	res.Action = res.Verdict.Action
	res.Message = res.Verdict.Message(res.Image)
}

// contentKey returns the image's content key, from the stat index when the file is unchanged
// (reading no image data), else by hashing it.
func (g *Gate) contentKey(ctx context.Context, im *image.Image) (string, int64, error) {
	statID := cache.FileID(im.ID)
	if im.Kind != image.Sandbox {
		for _, store := range g.stores() {
			if key, ok := store.LookupStat(im.Resolved, statID); ok {
				return key, 0, nil
			}
		}
		if key, ok := g.sharedStat(im.Resolved, statID); ok {
			return key, 0, nil
		}
	}
	key, n, err := im.KeyWith(ctx, g.KeySecret)
	if err != nil {
		return "", n, err
	}
	if im.Kind != image.Sandbox {
		if store := g.writable(); store != nil {
			store.RecordStat(im.Resolved, statID, key) // a failure only costs a rehash
		}
	}
	return key, n, nil
}

// stores lists the caches to consult, in order.
func (g *Gate) stores() []*cache.Store {
	var out []*cache.Store
	for _, s := range []*cache.Store{g.Node, g.User} {
		if s != nil {
			out = append(out, s)
		}
	}
	return out
}

// writable is the cache this caller's scans go to: the node cache for root, else the user's.
func (g *Gate) writable() *cache.Store {
	for _, s := range g.stores() {
		if !s.ReadOnly() {
			return s
		}
	}
	return nil
}
