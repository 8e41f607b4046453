// Package finding holds the normalized vulnerability findings that every scanner backend
// produces, the cache stores and the policy evaluates.
package finding

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Severity is the gate's own severity scale. Scanner-specific scales are mapped onto it by
// the backends (and, for Qualys levels, by policy).
type Severity int

// Severities, weakest first, so that comparisons read naturally: s >= High.
const (
	Unknown Severity = iota
	Low
	Medium
	High
	Critical
)

var severityNames = [...]string{"unknown", "low", "medium", "high", "critical"}

// String returns the lower-case name used in policy files, JSON and messages.
func (s Severity) String() string {
	if s < Unknown || s > Critical {
		return fmt.Sprintf("severity(%d)", int(s))
	}
	return severityNames[s]
}

// ParseSeverity accepts a severity name in any case ("CRITICAL", "High", "low").
func ParseSeverity(name string) (Severity, error) {
	lower := strings.ToLower(strings.TrimSpace(name))
	for i, n := range severityNames {
		if n == lower {
			return Severity(i), nil
		}
	}
	return Unknown, fmt.Errorf("unknown severity %q (want one of %s)",
		name, strings.Join(severityNames[:], ", "))
}

// MarshalText implements encoding.TextMarshaler.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Severity) UnmarshalText(text []byte) error {
	parsed, err := ParseSeverity(string(text))
	if err != nil {
		return err
	}
	*s = parsed
	return nil
}

// FixState says whether a fixed version of the vulnerable package exists.
type FixState string

// Fix states, following the vocabulary the scanners share.
const (
	Fixed      FixState = "fixed"
	NotFixed   FixState = "not-fixed"
	WontFix    FixState = "wont-fix"
	FixUnknown FixState = "unknown"
)

// Finding is one vulnerability in one installed package.
type Finding struct {
	ID            string   `json:"id"`
	Aliases       []string `json:"aliases,omitempty"`
	Title         string   `json:"title,omitempty"`
	Package       string   `json:"package"`
	Installed     string   `json:"installed"`
	FixedVersions []string `json:"fixed_versions,omitempty"`
	FixState      FixState `json:"fix_state"`
	Severity      Severity `json:"severity"`
	// Location is where the scanner found the package: a file in the tree or a package
	// database such as "debian 12.5 (var/lib/dpkg/status)".
	Location string `json:"location,omitempty"`
	// QualysSeverity is the Qualys level (1 minimal to 5 urgent) of a QScanner finding, 0
	// for other scanners. Severity holds it mapped onto the gate's scale when it was
	// scanned; the policy maps it again at every evaluation, so that a change of the
	// mapping takes effect without a rescan.
	QualysSeverity int `json:"qualys_severity,omitempty"`
}

// Fixable reports whether a fixed version is known.
func (f Finding) Fixable() bool { return f.FixState == Fixed || len(f.FixedVersions) > 0 }

// Scan is what one scanner run over one image produced. Only complete scans are ever built:
// a backend that could not see the whole tree returns an error instead.
type Scan struct {
	Scanner        string    `json:"scanner"`
	ScannerVersion string    `json:"scanner_version"`
	DBUpdatedAt    time.Time `json:"db_updated_at,omitzero"`
	ScannedAt      time.Time `json:"scanned_at"`
	OS             string    `json:"os,omitempty"`
	Findings       []Finding `json:"findings"`
	// PlatformVerdict is the scanner platform's own decision where it gives one (QScanner
	// evaluate-policy: "allow", "deny", "audit"); empty otherwise.
	PlatformVerdict string `json:"platform_verdict,omitempty"`
}

// Sort orders findings worst first, then by id and package, so that messages and reports
// are stable.
func Sort(fs []Finding) {
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if a.Severity != b.Severity {
			return a.Severity > b.Severity
		}
		if a.ID != b.ID {
			return a.ID < b.ID
		}
		return a.Package < b.Package
	})
}

// Worst returns the highest severity among fs, or Unknown for none.
func Worst(fs []Finding) Severity {
	worst := Unknown
	for _, f := range fs {
		worst = max(worst, f.Severity)
	}
	return worst
}
