// Package qscanner is the scan-gate backend driving Qualys QScanner (`qscanner rootfs TREE`).
//
// QScanner is closed source and needs the Qualys cloud for everything but an inventory; its
// CLI is known from Qualys' pages and from code that drives it (../shared/qscanner.md in the
// project notes). What is only "seen" there is configurable here and fails safe:
//
//   - Modes: evaluate-policy (default: the Qualys platform's ALLOW, DENY or AUDIT plus the
//     findings of its SARIF report), get-report (findings only; the gate's policy decides),
//     inventory-only (no upload: QScanner's CycloneDX SBOM is matched locally by trivy or
//     grype when a Matcher is configured, else no decision) and scan-only (upload only: no
//     decision).
//   - Exit statuses map onto outcomes by Config.ExitCodes; any other status is an error, so
//     no decision.
//   - Report files have an undocumented prefix: each run gets a fresh empty --output-dir and
//     they are found by glob. A missing or empty report after a successful exit is an error.
//   - The access token reaches qscanner only as QUALYS_ACCESS_TOKEN in its environment: never
//     in its arguments, and it is redacted from every log line and report the gate keeps.
//   - QScanner cannot run `uname` in a bare tree to learn the kernel; it is told the host's
//     (--shell-commands "uname -a=..."), which the container shares. Nothing of the image is
//     ever run.
//
// What QScanner writes when it could not read part of the tree is not known. The gate refuses
// a tree with entries the scanning user may not read before QScanner starts, and a tree
// with a package database whose packages QScanner's CycloneDX SBOM does not list after.
package qscanner

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/scan-gate/scan-gate/gate/finding"
	"github.com/scan-gate/scan-gate/gate/scanner"
	"github.com/scan-gate/scan-gate/gate/scanner/internal/scanutil"
	"github.com/scan-gate/scan-gate/internal/proc"
)

// Name is the backend's name in cache keys and audit lines.
const Name = "qscanner"

// Modes, as --mode takes them.
const (
	ModeEvaluatePolicy = "evaluate-policy"
	ModeGetReport      = "get-report"
	ModeInventoryOnly  = "inventory-only"
	ModeScanOnly       = "scan-only"
)

// TokenEnv is the environment variable the access token reaches qscanner in.
const TokenEnv = "QUALYS_ACCESS_TOKEN"

const (
	defaultTimeout = 10 * time.Minute
	// killGrace is how long after its own --scan-timeout qscanner has to give up before its
	// process group is killed.
	killGrace = 10 * time.Second
)

// ownedFlags are the flags the backend sets itself, or that must never be used (the token on
// the command line); ExtraArgs may not hold them.
var ownedFlags = []string{"--mode", "--pod", "--access-token", "--output-dir", "--format",
	"--report-format", "--shell-commands", "--scan-timeout", "--scan-types", "--policy-tags",
	"--exclude-dirs", "--cache-dir", "--offline-scan"}

// ExitCodes map qscanner's exit status onto its outcome; any other status is an error.
type ExitCodes struct {
	// Allow are the statuses of a run that worked (evaluate-policy: ALLOW).
	Allow []int
	// Deny and Audit are the platform's DENY and AUDIT (evaluate-policy mode only).
	Deny  []int
	Audit []int
}

// DefaultExitCodes are the statuses seen in use: 0 ALLOW, 42 DENY, 43 AUDIT.
var DefaultExitCodes = ExitCodes{Allow: []int{0}, Deny: []int{42}, Audit: []int{43}}

// Matcher matches an SBOM against a vulnerability DB: the trivy and grype backends.
type Matcher interface {
	Name() string
	Settings() string
	Identify(ctx context.Context) (scanner.Identity, error)
	ScanSBOM(ctx context.Context, sbom string, target scanner.Target) (*finding.Scan, error)
}

// Config configures a Backend.
type Config struct {
	// Path is the qscanner binary; a bare name (default "qscanner") is looked up in PATH,
	// then in the usual system dirs.
	Path string
	// Mode is one of the Mode constants; default evaluate-policy.
	Mode string
	// Pod is the Qualys platform (US1, EU2, ...); needed by every mode but inventory-only.
	Pod string
	// TokenFile holds the access token (see LoadToken); empty means the gate's own
	// QUALYS_ACCESS_TOKEN.
	TokenFile string
	// ScanTypes, PolicyTags and ExcludeDirs are passed comma-joined; empty ones are left out
	// (qscanner's defaults).
	ScanTypes   []string
	PolicyTags  []string
	ExcludeDirs []string
	// CacheDir is qscanner's own cache; empty gives each run a fresh one in its work dir.
	CacheDir    string
	OfflineScan bool
	// ExtraArgs are added to every command line; the flags the backend sets are refused.
	ExtraArgs []string
	// Timeout bounds one scan (--scan-timeout, then the process group is killed a little
	// later). Zero means 10 minutes.
	Timeout time.Duration
	// ExitCodes; zero means DefaultExitCodes.
	ExitCodes ExitCodes
	// Severity maps a Qualys level (1-5) onto the gate's scale; nil maps 1-2 low, 3
	// medium, 4 high, 5 critical. The policy maps the level again at every evaluation.
	Severity func(level int) finding.Severity
	// Matcher matches the SBOM in inventory-only mode; nil means no findings (no decision).
	Matcher Matcher
	// StateDir, if set, is where the binary's version is remembered across processes.
	StateDir string
	// Uname is what `uname -a` prints on this host; empty means it is made from uname(2).
	// Tests set it.
	Uname string
}

// Backend scans directory trees with QScanner. It is safe for concurrent use.
type Backend struct {
	cfg     Config
	path    string
	version *scanutil.Memo
}

var _ scanner.Backend = (*Backend)(nil)

// New checks cfg and finds the qscanner binary. It starts no process and reads no token.
func New(cfg Config) (*Backend, error) {
	if cfg.Mode == "" {
		cfg.Mode = ModeEvaluatePolicy
	}
	switch cfg.Mode {
	case ModeEvaluatePolicy, ModeGetReport, ModeScanOnly:
		if cfg.Pod == "" {
			return nil, fmt.Errorf("qscanner: mode %s uploads to the Qualys platform and "+
				"needs a pod", cfg.Mode)
		}
	case ModeInventoryOnly:
	default:
		return nil, fmt.Errorf("qscanner: unknown mode %q", cfg.Mode)
	}
	switch {
	case cfg.Timeout < 0:
		return nil, fmt.Errorf("qscanner: negative timeout %s", cfg.Timeout)
	case cfg.Timeout == 0:
		cfg.Timeout = defaultTimeout
	}
	for _, arg := range cfg.ExtraArgs {
		name, _, _ := strings.Cut(arg, "=")
		if slices.Contains(ownedFlags, name) {
			return nil, fmt.Errorf("qscanner: extra argument %q changes a flag the gate "+
				"sets", name)
		}
	}
	if len(cfg.ExitCodes.Allow) == 0 {
		cfg.ExitCodes = DefaultExitCodes
	}
	if cfg.Severity == nil {
		cfg.Severity = defaultSeverity
	}
	if cfg.Path == "" {
		cfg.Path = "qscanner"
	}
	path, err := proc.LookPath(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("qscanner: %w", err)
	}
	return &Backend{cfg: cfg, path: path,
		version: &scanutil.Memo{StateDir: cfg.StateDir, Name: "qscanner-version"}}, nil
}

func defaultSeverity(level int) finding.Severity {
	switch level {
	case 1, 2:
		return finding.Low
	case 3:
		return finding.Medium
	case 4:
		return finding.High
	case 5:
		return finding.Critical
	}
	return finding.Unknown
}

// Name returns "qscanner".
func (b *Backend) Name() string { return Name }

// Settings is a stable string of what changes the findings: mode, platform, what is scanned
// and skipped, extra arguments, the exit status mapping, and the matcher's own settings.
func (b *Backend) Settings() string {
	c := b.cfg
	s := fmt.Sprintf("v1 mode=%s pod=%s types=%q tags=%q exclude=%q extra=%q codes=%v",
		c.Mode, c.Pod, c.ScanTypes, c.PolicyTags, c.ExcludeDirs, c.ExtraArgs, c.ExitCodes)
	if c.Mode == ModeInventoryOnly && c.Matcher != nil {
		s += fmt.Sprintf(" matcher=%s{%s}", c.Matcher.Name(), c.Matcher.Settings())
	}
	return s
}

// Identify returns the binary's version, named by its content since QScanner has no
// documented version flag ("sha256:..."), remembered per binary. In inventory-only mode
// with a matcher, the matcher's version is added and its DB date is the DB date.
func (b *Backend) Identify(ctx context.Context) (scanner.Identity, error) {
	version, err := b.binaryVersion(ctx)
	if err != nil {
		return scanner.Identity{}, err
	}
	id := scanner.Identity{Name: Name, Version: version}
	if b.cfg.Mode == ModeInventoryOnly && b.cfg.Matcher != nil {
		m, err := b.cfg.Matcher.Identify(ctx)
		if err != nil {
			return scanner.Identity{}, fmt.Errorf("identifying the SBOM matcher: %w", err)
		}
		id.Version += "+" + m.Name + "-" + m.Version
		id.DBUpdatedAt = m.DBUpdatedAt
	}
	return id, nil
}

func (b *Backend) binaryVersion(ctx context.Context) (string, error) {
	return b.version.Get(ctx, b.path, func(context.Context) (string, error) {
		return scanutil.ContentVersion(b.path)
	})
}

// Scan runs QScanner over target.Root as target.Credential. It returns an error, never a
// partial result: for a failed run, an exit status that is no outcome, a missing or bad
// report, a tree the scanning user cannot fully read (scanner.ErrIncomplete), and for modes
// that give no findings (scanner.ErrNoFindings).
func (b *Backend) Scan(ctx context.Context, target scanner.Target) (*finding.Scan, error) {
	if target.Root == "" || target.ScratchDir == "" {
		return nil, errors.New("qscanner: scan target needs a root and a scratch dir")
	}
	root, err := filepath.Abs(target.Root)
	if err != nil {
		return nil, fmt.Errorf("qscanner: resolving %s: %w", target.Root, err)
	}
	scannedAt := time.Now().UTC()
	scan, err := b.scan(ctx, root, target)
	if err != nil {
		return nil, fmt.Errorf("qscanner: scanning %s: %w", root, err)
	}
	scan.ScannedAt = scannedAt
	return scan, nil
}

func (b *Backend) scan(ctx context.Context, root string, target scanner.Target) (
	*finding.Scan, error) {
	token := ""
	if b.cfg.Mode != ModeInventoryOnly {
		var err error
		if token, err = LoadToken(b.cfg.TokenFile); err != nil {
			return nil, err
		}
	}
	closed, err := scanutil.FirstClosed(root, scanutil.ReaderFor(target.Credential))
	if err != nil {
		return nil, err
	}
	if closed != "" {
		return nil, fmt.Errorf("the scanning user may not read %s: %w", closed,
			scanner.ErrIncomplete)
	}
	version, err := b.binaryVersion(ctx)
	if err != nil {
		return nil, err
	}

	out, err := b.run(ctx, root, target, token)
	if err != nil {
		return nil, err
	}
	if err := checkInventory(out.dir, root); err != nil {
		return nil, err
	}

	switch b.cfg.Mode {
	case ModeScanOnly:
		return nil, fmt.Errorf("mode scan-only uploaded the inventory to Qualys; it gives "+
			"no findings to decide from: %w", scanner.ErrNoFindings)
	case ModeInventoryOnly:
		return b.matchInventory(ctx, out, target, version)
	}

	findings, err := b.readSARIF(out.dir)
	if err != nil {
		return nil, err
	}
	scan := &finding.Scan{Scanner: Name, ScannerVersion: version, Findings: findings}
	if b.cfg.Mode == ModeEvaluatePolicy {
		scan.PlatformVerdict = out.verdict
	}
	return scan, nil
}
