// Package policy decodes the administrator's TOML policy strictly, validates it, and
// evaluates normalized scan findings against it.
//
// A policy file is read once per gate call, so decoding favours clear errors over speed: an
// unknown key, a key under the wrong table or a bad value is reported with the file, the
// dotted key and its line. Evaluation is cheap and is done on every launch, so a policy edit
// or an expired exception takes effect at once.
package policy

import (
	"fmt"
	"time"

	"github.com/scan-gate/scan-gate/gate/finding"
)

// Mode says how strictly a policy (or one scope of it) is enforced.
type Mode string

// Modes. In ModeWarn, what would block only warns; in ModeAudit, what would block or warn is
// only recorded and the job proceeds.
const (
	ModeEnforce Mode = "enforce"
	ModeWarn    Mode = "warn"
	ModeAudit   Mode = "audit"
)

// Action is what the gate does with a launch.
type Action string

// Actions, in increasing strictness: Allow < Audit < Warn < Block.
const (
	Allow Action = "allow"
	Audit Action = "audit"
	Warn  Action = "warn"
	Block Action = "block"
)

// strictness ranks actions for Stricter. An action not listed ranks as Block, so that a
// corrupt value fails closed.
var strictness = map[Action]int{Allow: 0, Audit: 1, Warn: 2, Block: 3}

func rank(a Action) int {
	if r, ok := strictness[a]; ok {
		return r
	}
	return strictness[Block]
}

// Proceeds reports whether the job may start: true for allow, audit and warn. Block and any
// value that is not a known action do not proceed.
func (a Action) Proceeds() bool {
	r, ok := strictness[a]
	return ok && r < strictness[Block]
}

// Stricter returns the stricter of two actions, for combining the verdicts of several images
// (allow < audit < warn < block).
func Stricter(a, b Action) Action {
	if rank(b) > rank(a) {
		return b
	}
	return a
}

// MissRule says what a cache miss does at launch.
type MissRule string

// Miss rules.
const (
	// MissScan scans now, within the wait deadline.
	MissScan MissRule = "scan"
	// MissAllowAndScan lets the job start and scans in the background.
	MissAllowAndScan MissRule = "allow-and-scan"
	// MissBlock blocks until the image has been prewarmed.
	MissBlock MissRule = "block"
)

// StaleRule says what a stale cache entry (older scanner or vulnerability DB) does.
type StaleRule string

// Stale rules.
const (
	// StaleUseAndRescan decides from the stale entry and rescans in the background.
	StaleUseAndRescan StaleRule = "use-and-rescan"
	// StaleRescan treats a stale entry like a miss.
	StaleRescan StaleRule = "rescan"
)

// Thresholds say which findings block and which warn.
type Thresholds struct {
	// Block is the lowest severity that blocks (in enforce mode).
	Block finding.Severity
	// Warn is the lowest severity that warns. Warn is never above Block.
	Warn finding.Severity
	// FixableOnly counts only findings with a known fixed version.
	FixableOnly bool
}

// Date is a calendar day without a time zone, as a TOML local date is.
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

// DateOf returns the calendar day of t in t's own location.
func DateOf(t time.Time) Date {
	y, m, d := t.Date()
	return Date{Year: y, Month: m, Day: d}
}

// String formats the date as 2006-01-02.
func (d Date) String() string {
	return fmt.Sprintf("%04d-%02d-%02d", d.Year, int(d.Month), d.Day)
}

// Before reports whether d is an earlier day than e.
func (d Date) Before(e Date) bool {
	return d.ordinal() < e.ordinal()
}

func (d Date) ordinal() int { return d.Year*10000 + int(d.Month)*100 + d.Day }

// MarshalText implements encoding.TextMarshaler, so that JSON shows "2027-01-31".
func (d Date) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Exception lets findings of one vulnerability through, on some images, until a date.
type Exception struct {
	// ID is the vulnerability id; it also matches a finding's aliases.
	ID string `json:"id"`
	// Images are glob patterns; empty means every image.
	Images []string `json:"images,omitempty"`
	// Expires is the last day on which the exception applies.
	Expires Date `json:"expires"`
	// Reason says why the exception was granted.
	Reason string `json:"reason"`
}

// Match selects the launches a scope applies to. Every non-empty list must match; an empty
// Match matches every launch. All entries are glob patterns (path.Match syntax; in images,
// "**" also matches any number of directories).
type Match struct {
	Images     []string
	Users      []string
	Groups     []string
	Partitions []string
	Accounts   []string
}

// Scope overrides the mode and thresholds for the launches it matches. Its Mode and
// Thresholds are effective values: what the scope did not set is inherited from the top
// level when the policy is decoded.
type Scope struct {
	Name       string
	Match      Match
	Mode       Mode
	Thresholds Thresholds
}

// OnRules say what the gate does when it cannot decide from findings.
type OnRules struct {
	// NoDecision applies to errors and timeouts: Block, Warn or Allow.
	NoDecision Action
	// Unscannable applies to images the scanner cannot read: Block, Warn or Allow.
	Unscannable Action
	// Miss applies when no cached scan exists.
	Miss MissRule
	// Stale applies when the cached scan is from an older scanner or vulnerability DB.
	Stale StaleRule
}

// Timeouts bound the gate's work.
type Timeouts struct {
	// Scan bounds one scanner run.
	Scan time.Duration
	// Wait bounds how long a launch waits for a scan or for another caller's scan.
	Wait time.Duration
	// MaxAge is how old a cached scan may be before it counts as stale.
	MaxAge time.Duration
}

// Messages hold the text shown to researchers.
type Messages struct {
	// NextStep ends every warn, audit and block message from findings.
	NextStep string
	// NoDecisionStep ends every message when no decision could be made.
	NoDecisionStep string
}

// Trivy configures the trivy scanner backend.
type Trivy struct {
	// Path is the trivy binary, absolute or looked up in PATH.
	Path string
	// DBDir is the directory holding db/trivy.db.
	DBDir string
	// ExtraArgs are appended to every trivy command line.
	ExtraArgs []string
}

// Scanner selects and configures the scanner backend.
type Scanner struct {
	// Name is the backend in use: "trivy", "grype" or "qscanner".
	Name     string
	Trivy    Trivy
	Grype    Grype
	QScanner QScanner
}

// Extract configures how images are unpacked for scanning.
type Extract struct {
	// ScratchDir holds per-scan private directories on disk.
	ScratchDir string
	// TmpfsDir is used instead of ScratchDir for images that fit in MemoryBudget.
	TmpfsDir string
	// MemoryBudget is the most bytes an extraction may place in TmpfsDir.
	MemoryBudget int64
	// User is the unprivileged user that extracts and scans.
	User string
}

// Policy is a decoded, validated policy with every default filled in.
type Policy struct {
	// Mode and Thresholds apply to launches no scope matches.
	Mode       Mode
	Thresholds Thresholds
	// Exceptions apply whichever scope matches, in file order.
	Exceptions []Exception
	// Scopes are tried in file order; the first that matches applies.
	Scopes   []Scope
	On       OnRules
	Timeouts Timeouts
	Message  Messages
	Scanner  Scanner
	Extract  Extract
	// CacheDir is [cache] dir: where scan results are kept on node-local disk.
	CacheDir string
	// AuditLog is [audit] log: the file that gets one JSON line per decision.
	AuditLog string
	// Prewarm is [prewarm]: how `scan-gate prewarm` works.
	Prewarm Prewarm
	// SharedCacheDir is [cache] shared_dir: a shared tier of scan results on a parallel
	// filesystem, filled by prewarm jobs and read after the node cache; empty for none.
	SharedCacheDir string
	// SharedCacheOwner is [cache] shared_owner: the account prewarm jobs run as, whose files
	// in the shared tier are trusted besides root's; empty for root only.
	SharedCacheOwner string
	// MetricsTextfile is [metrics] textfile: where metrics for node_exporter's textfile
	// collector are written; empty for none.
	MetricsTextfile string
	// Watch is [watch]: what `scan-gate watch` does about running containers.
	Watch Watch
}

// Default values, used for keys a policy file leaves out.
const (
	DefaultNextStep = "ask your admins for an exception, " +
		"or rebuild the image on a patched base"
	DefaultNoDecisionStep = "try again in a few minutes; " +
		"if it keeps failing, tell your admins"
	DefaultMemoryBudget = 256 << 20
)

// Default returns the policy an empty file means.
func Default() *Policy {
	return &Policy{
		Mode:       ModeEnforce,
		Thresholds: Thresholds{Block: finding.Critical, Warn: finding.High},
		On: OnRules{
			NoDecision:  Block,
			Unscannable: Block,
			Miss:        MissScan,
			Stale:       StaleUseAndRescan,
		},
		Timeouts: Timeouts{
			Scan:   10 * time.Minute,
			Wait:   2 * time.Minute,
			MaxAge: 7 * 24 * time.Hour,
		},
		Message: Messages{NextStep: DefaultNextStep, NoDecisionStep: DefaultNoDecisionStep},
		Scanner: Scanner{
			Name:     "trivy",
			Trivy:    Trivy{Path: "trivy", DBDir: "/var/lib/scan-gate/trivy"},
			Grype:    defaultGrype(),
			QScanner: defaultQScanner(),
		},
		Extract: Extract{
			ScratchDir:   "/var/tmp/scan-gate",
			TmpfsDir:     "/dev/shm",
			MemoryBudget: DefaultMemoryBudget,
			User:         "nobody",
		},
		CacheDir: "/var/cache/scan-gate",
		AuditLog: "/var/log/scan-gate/audit.jsonl",
		Prewarm:  defaultPrewarm(),
		Watch:    defaultWatch(),
	}
}
