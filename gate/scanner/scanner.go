// Package scanner defines the small interface every vulnerability scanner backend implements.
// Backends live in sub-packages (trivy, and later qscanner and grype).
package scanner

import (
	"context"
	"errors"
	"time"

	"github.com/scan-gate/scan-gate/gate/finding"
	"github.com/scan-gate/scan-gate/internal/proc"
)

// Identity names the scanner and vulnerability database a scan would use now. It is cheap to
// get (no scanner process is started on the hot path) and is compared with a cached
// result's to tell whether that result is stale.
type Identity struct {
	Name        string    `json:"name"`
	Version     string    `json:"version"`
	DBUpdatedAt time.Time `json:"db_updated_at,omitzero"`
}

// Target is the tree a backend scans.
type Target struct {
	// Root is the directory to scan: an extracted image, or a sandbox directory in place.
	Root string
	// ScratchDir is a private directory the backend may use for its own per-run files
	// (scan cache, reports). It is removed by the caller.
	ScratchDir string
	// Credential, when non-nil, is the unprivileged user the scanner process must run as.
	Credential *Credential
}

// Credential is a user and group id to run a child process as.
type Credential = proc.Credential

// Backend scans a directory tree and returns normalized findings.
type Backend interface {
	// Name is the short scanner name used in cache keys and audit lines ("trivy").
	Name() string
	// Settings is a stable string of every setting that changes what a scan finds; it is
	// part of the cache key.
	Settings() string
	// Identify returns the scanner version and DB date without running a scan. When the
	// version is known but the DB cannot be read, the error comes with the name and version.
	Identify(ctx context.Context) (Identity, error)
	// Scan runs the scanner over target. It returns an error, never a partial result, when
	// the scanner failed, timed out, or could not read all of the tree.
	Scan(ctx context.Context, target Target) (*finding.Scan, error)
}

// ErrIncomplete marks a scan that could not see the whole image. Such a result must never be
// treated as clean or cached.
var ErrIncomplete = errors.New("scan incomplete")

// ErrNothingAssessed marks a scan that found nothing it knows how to assess: a source tree
// without a lockfile or package manifest (an OS tree given to a repo scan, say). No findings
// then mean nothing, and the result must never be reported as clean.
var ErrNothingAssessed = errors.New("nothing assessed")
