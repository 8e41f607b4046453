package policy

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/scan-gate/scan-gate/gate/finding"
)

// Scanner names, the values of [scanner] name.
const (
	ScannerTrivy    = "trivy"
	ScannerGrype    = "grype"
	ScannerQScanner = "qscanner"
)

// Grype configures the grype scanner backend ([scanner.grype]).
type Grype struct {
	// Path is the grype binary, absolute or looked up in PATH.
	Path string
	// DBDir is grype's DB cache dir, holding 6/vulnerability.db.
	DBDir string
	// MaxDBAge is the oldest DB, by build time, grype may scan with; 0 turns the check off.
	MaxDBAge time.Duration
	// ExtraArgs are appended to every grype command line.
	ExtraArgs []string
}

// QScannerMode is how QScanner runs: what it uploads and what it gives back.
type QScannerMode string

// QScanner modes.
const (
	// QScannerEvaluatePolicy uploads the inventory, gets the vulnerability report and the
	// Qualys platform's policy verdict (ALLOW, DENY, AUDIT).
	QScannerEvaluatePolicy QScannerMode = "evaluate-policy"
	// QScannerGetReport uploads the inventory and gets the vulnerability report; the
	// gate's policy decides alone.
	QScannerGetReport QScannerMode = "get-report"
	// QScannerInventoryOnly makes an inventory (SBOM) locally, uploading nothing; findings
	// come from matching the SBOM with trivy or grype, when one is configured.
	QScannerInventoryOnly QScannerMode = "inventory-only"
	// QScannerScanOnly uploads the inventory and gets nothing back: no decision.
	QScannerScanOnly QScannerMode = "scan-only"
)

// Uploads reports whether the mode talks to the Qualys platform (and needs a pod and token).
func (m QScannerMode) Uploads() bool { return m != QScannerInventoryOnly }

// QScannerPods are the Qualys platforms QScanner knows (--pod).
var QScannerPods = []string{"US1", "US2", "US3", "US4", "EU1", "EU2", "EU3", "IN1", "CA1",
	"AE1", "UK1", "AU1", "KSA1"}

// QScannerScanTypes are the values --scan-types takes.
var QScannerScanTypes = []string{"pkg", "fileinsight", "secret", "malware", "compliance"}

// QScannerExitCodes map QScanner's exit status onto its outcome. A status in none of the
// lists is no decision.
type QScannerExitCodes struct {
	// Allow are the statuses of a successful run (in evaluate-policy mode: ALLOW).
	Allow []int
	// Deny are the statuses of a platform DENY (evaluate-policy mode only).
	Deny []int
	// Audit are the statuses of a platform AUDIT (evaluate-policy mode only).
	Audit []int
}

// QScanner configures the Qualys QScanner backend ([scanner.qscanner]).
type QScanner struct {
	// Path is the qscanner binary, absolute or looked up in PATH.
	Path string
	Mode QScannerMode
	// Pod is the Qualys platform (--pod); needed by every mode that uploads.
	Pod string
	// TokenFile holds the Qualys access token; it must be a regular file of mode 0600 (or
	// stricter) owned by the user running the gate. Empty: QUALYS_ACCESS_TOKEN from the
	// gate's environment.
	TokenFile   string
	ScanTypes   []string
	PolicyTags  []string
	ExcludeDirs []string
	// CacheDir is qscanner's own cache (--cache-dir); empty gives each run a fresh one.
	CacheDir    string
	OfflineScan bool
	// SBOMMatcher is the scanner that matches the inventory-only SBOM: "trivy", "grype",
	// or "" for none (no decision).
	SBOMMatcher string
	ExtraArgs   []string
	// OnDeny and OnAudit are what a platform DENY and AUDIT do; Allow ignores them.
	OnDeny  Action
	OnAudit Action
	// LocalThresholds applies [thresholds] to QScanner's findings as well, the stricter
	// outcome winning. Off, a platform verdict alone decides in evaluate-policy mode.
	LocalThresholds bool
	ExitCodes       QScannerExitCodes
	// Severities map Qualys levels 1 (minimal) to 5 (urgent), in order, onto the gate's.
	Severities [5]finding.Severity
}

// MapSeverity maps a Qualys level (1-5) onto the gate's scale; other levels are unknown.
func (q QScanner) MapSeverity(level int) finding.Severity {
	if level < 1 || level > len(q.Severities) {
		return finding.Unknown
	}
	return q.Severities[level-1]
}

// Defaults of the grype and qscanner tables.
const (
	DefaultGrypeDBDir    = "/var/lib/scan-gate/grype"
	DefaultGrypeMaxDBAge = 120 * time.Hour
)

func defaultGrype() Grype {
	return Grype{Path: "grype", DBDir: DefaultGrypeDBDir, MaxDBAge: DefaultGrypeMaxDBAge}
}

func defaultQScanner() QScanner {
	return QScanner{
		Path:            "qscanner",
		Mode:            QScannerEvaluatePolicy,
		ScanTypes:       []string{"pkg", "fileinsight"},
		OfflineScan:     true,
		OnDeny:          Block,
		OnAudit:         Audit,
		LocalThresholds: true,
		ExitCodes:       QScannerExitCodes{Allow: []int{0}, Deny: []int{42}, Audit: []int{43}},
		Severities: [5]finding.Severity{finding.Low, finding.Low, finding.Medium,
			finding.High, finding.Critical},
	}
}

type (
	rawGrype struct {
		Path      rawValue `toml:"path"`
		DBDir     rawValue `toml:"db_dir"`
		MaxDBAge  rawValue `toml:"max_db_age"`
		ExtraArgs rawValue `toml:"extra_args"`
	}
	rawQScanner struct {
		Path            rawValue `toml:"path"`
		Mode            rawValue `toml:"mode"`
		Pod             rawValue `toml:"pod"`
		TokenFile       rawValue `toml:"token_file"`
		ScanTypes       rawValue `toml:"scan_types"`
		PolicyTags      rawValue `toml:"policy_tags"`
		ExcludeDirs     rawValue `toml:"exclude_dirs"`
		CacheDir        rawValue `toml:"cache_dir"`
		OfflineScan     rawValue `toml:"offline_scan"`
		SBOMMatcher     rawValue `toml:"sbom_matcher"`
		ExtraArgs       rawValue `toml:"extra_args"`
		OnDeny          rawValue `toml:"on_deny"`
		OnAudit         rawValue `toml:"on_audit"`
		LocalThresholds rawValue `toml:"local_thresholds"`
		ExitCodes       struct {
			Allow rawValue `toml:"allow"`
			Deny  rawValue `toml:"deny"`
			Audit rawValue `toml:"audit"`
		} `toml:"exit_codes"`
		Severity struct {
			Level1 rawValue `toml:"level1"`
			Level2 rawValue `toml:"level2"`
			Level3 rawValue `toml:"level3"`
			Level4 rawValue `toml:"level4"`
			Level5 rawValue `toml:"level5"`
		} `toml:"severity"`
	}
)

// scannerKeys decodes [scanner.grype] and [scanner.qscanner].
func (d *decoder) scannerKeys(raw *rawScanner, p *Policy) {
	g, rg := &p.Scanner.Grype, raw.Grype
	d.name("scanner.grype.path", rg.Path, &g.Path)
	d.absPath("scanner.grype.db_dir", rg.DBDir, &g.DBDir)
	d.optionalDuration("scanner.grype.max_db_age", rg.MaxDBAge, &g.MaxDBAge)
	d.stringList("scanner.grype.extra_args", rg.ExtraArgs, &g.ExtraArgs)

	q, rq := &p.Scanner.QScanner, raw.QScanner
	const at = "scanner.qscanner."
	d.name(at+"path", rq.Path, &q.Path)
	oneOf(d, at+"mode", rq.Mode, "QScanner mode", &q.Mode, QScannerEvaluatePolicy,
		QScannerGetReport, QScannerInventoryOnly, QScannerScanOnly)
	optionalOneOf(d, at+"pod", rq.Pod, "Qualys pod", &q.Pod, QScannerPods...)
	d.optionalAbsPath(at+"token_file", rq.TokenFile, &q.TokenFile)
	if d.stringList(at+"scan_types", rq.ScanTypes, &q.ScanTypes) && rq.ScanTypes.set {
		if len(q.ScanTypes) == 0 {
			d.fail(at+"scan_types", "want at least one scan type, such as \"pkg\"")
		}
		for _, st := range q.ScanTypes {
			if !slices.Contains(QScannerScanTypes, st) {
				d.fail(at+"scan_types", "unknown scan type %q (want some of %s)", st,
					strings.Join(QScannerScanTypes, ", "))
			}
		}
	}
	d.commaFree(at+"policy_tags", rq.PolicyTags, &q.PolicyTags)
	d.commaFree(at+"exclude_dirs", rq.ExcludeDirs, &q.ExcludeDirs)
	d.optionalAbsPath(at+"cache_dir", rq.CacheDir, &q.CacheDir)
	d.bool(at+"offline_scan", rq.OfflineScan, &q.OfflineScan)
	optionalOneOf(d, at+"sbom_matcher", rq.SBOMMatcher, "SBOM matcher", &q.SBOMMatcher,
		ScannerTrivy, ScannerGrype)
	d.stringList(at+"extra_args", rq.ExtraArgs, &q.ExtraArgs)
	oneOf(d, at+"on_deny", rq.OnDeny, "action", &q.OnDeny, Block, Warn, Audit, Allow)
	oneOf(d, at+"on_audit", rq.OnAudit, "action", &q.OnAudit, Block, Warn, Audit, Allow)
	d.bool(at+"local_thresholds", rq.LocalThresholds, &q.LocalThresholds)

	d.exitCodes(at+"exit_codes.allow", rq.ExitCodes.Allow, &q.ExitCodes.Allow, true)
	d.exitCodes(at+"exit_codes.deny", rq.ExitCodes.Deny, &q.ExitCodes.Deny, false)
	d.exitCodes(at+"exit_codes.audit", rq.ExitCodes.Audit, &q.ExitCodes.Audit, false)
	seen := map[int]string{}
	for _, list := range []struct {
		name  string
		codes []int
	}{{"allow", q.ExitCodes.Allow}, {"deny", q.ExitCodes.Deny}, {"audit", q.ExitCodes.Audit}} {
		for _, code := range list.codes {
			if other, ok := seen[code]; ok && other != list.name {
				d.fail(at+"exit_codes."+list.name, "exit status %d is also in %s", code,
					other)
			}
			seen[code] = list.name
		}
	}

	levels := []rawValue{rq.Severity.Level1, rq.Severity.Level2, rq.Severity.Level3,
		rq.Severity.Level4, rq.Severity.Level5}
	for i, raw := range levels {
		d.severity(fmt.Sprintf("%sseverity.level%d", at, i+1), raw, &q.Severities[i])
	}

	if p.Scanner.Name == ScannerQScanner && q.Mode.Uploads() && q.Pod == "" {
		d.fail(at+"pod", "QScanner mode %q uploads to the Qualys platform and needs its "+
			"pod (one of %s)", q.Mode, strings.Join(QScannerPods, ", "))
	}
}

// optionalOneOf is oneOf for a key whose empty string means "none".
func optionalOneOf(d *decoder, at string, raw rawValue, what string, dst *string,
	allowed ...string) {
	if s, ok := raw.value.(string); raw.set && ok && s == "" {
		*dst = ""
		return
	}
	oneOf(d, at, raw, what, dst, allowed...)
}

// commaFree decodes a list of strings that QScanner receives joined by commas: an item
// may hold no comma and must not be blank.
func (d *decoder) commaFree(at string, raw rawValue, dst *[]string) {
	if !d.stringList(at, raw, dst) {
		return
	}
	for _, item := range *dst {
		if strings.TrimSpace(item) == "" || strings.Contains(item, ",") {
			d.fail(at, "want items without commas, not empty, found %q", item)
		}
	}
}

// exitCodes decodes an array of exit statuses (0-255).
func (d *decoder) exitCodes(at string, raw rawValue, dst *[]int, needOne bool) {
	if !raw.set {
		return
	}
	list, ok := raw.value.([]any)
	if !ok {
		d.fail(at, "want an array of exit statuses, found %s", typeName(raw.value))
		return
	}
	var codes []int
	for i, item := range list {
		n, ok := item.(int64)
		if !ok || n < 0 || n > 255 {
			d.fail(at, "item %d: want an exit status from 0 to 255, found %v", i+1, item)
			return
		}
		codes = append(codes, int(n))
	}
	if needOne && len(codes) == 0 {
		d.fail(at, "want at least one exit status")
		return
	}
	*dst = codes
}

// writeScanners writes [scanner.grype] and [scanner.qscanner] into the canonical policy.
func (w *tomlWriter) writeScanners(p *Policy) {
	g := p.Scanner.Grype
	w.table("scanner.grype")
	w.str("path", g.Path)
	w.str("db_dir", g.DBDir)
	w.str("max_db_age", formatDuration(g.MaxDBAge))
	w.list("extra_args", g.ExtraArgs)

	q := p.Scanner.QScanner
	w.table("scanner.qscanner")
	w.str("path", q.Path)
	w.str("mode", string(q.Mode))
	w.str("pod", q.Pod)
	w.str("token_file", q.TokenFile)
	w.list("scan_types", q.ScanTypes)
	w.list("policy_tags", q.PolicyTags)
	w.list("exclude_dirs", q.ExcludeDirs)
	w.str("cache_dir", q.CacheDir)
	w.raw("offline_scan", strconv.FormatBool(q.OfflineScan))
	w.str("sbom_matcher", q.SBOMMatcher)
	w.list("extra_args", q.ExtraArgs)
	w.str("on_deny", string(q.OnDeny))
	w.str("on_audit", string(q.OnAudit))
	w.raw("local_thresholds", strconv.FormatBool(q.LocalThresholds))
	w.table("scanner.qscanner.exit_codes")
	w.ints("allow", q.ExitCodes.Allow)
	w.ints("deny", q.ExitCodes.Deny)
	w.ints("audit", q.ExitCodes.Audit)
	w.table("scanner.qscanner.severity")
	for i, s := range q.Severities {
		w.str(fmt.Sprintf("level%d", i+1), s.String())
	}
}

func (w *tomlWriter) ints(key string, values []int) {
	parts := make([]string, len(values))
	for i, v := range values {
		parts[i] = strconv.Itoa(v)
	}
	w.raw(key, "["+strings.Join(parts, ", ")+"]")
}
