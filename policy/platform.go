package policy

import (
	"fmt"
	"strings"

	"github.com/scan-gate/scan-gate/gate/finding"
)

// Platform verdicts, the values of finding.Scan.PlatformVerdict (QScanner in
// evaluate-policy mode).
const (
	PlatformAllow = "allow"
	PlatformDeny  = "deny"
	PlatformAudit = "audit"
)

// remapSeverity maps a Qualys finding's level with the current [scanner.qscanner.severity]
// table, so that a change of the table applies to cached scans too.
func (p *Policy) remapSeverity(f finding.Finding) finding.Finding {
	if f.QualysSeverity != 0 {
		f.Severity = p.Scanner.QScanner.MapSeverity(f.QualysSeverity)
	}
	return f
}

// applyPlatformVerdict combines the scanner platform's own verdict (Scan.PlatformVerdict)
// with the verdict from the findings. DENY and AUDIT act as [scanner.qscanner] on_deny and
// on_audit say, softened by the mode like a block from findings; ALLOW adds nothing. The
// stricter of the two wins, unless local_thresholds is off: then the platform's verdict
// alone decides. An unknown platform verdict blocks.
func (p *Policy) applyPlatformVerdict(scan *finding.Scan, v *Verdict) {
	verdict := strings.ToLower(strings.TrimSpace(scan.PlatformVerdict))
	if verdict == "" {
		return
	}
	v.Platform = verdict
	q := p.Scanner.QScanner

	enforced, setting := Block, ""
	switch verdict {
	case PlatformAllow:
		enforced = Allow
	case PlatformDeny:
		enforced, setting = q.OnDeny, "scanner.qscanner.on_deny"
	case PlatformAudit:
		enforced, setting = q.OnAudit, "scanner.qscanner.on_audit"
	}
	action := soften(v.Mode, enforced)

	reason := "the Qualys platform's policy evaluation " + platformPhrase(verdict)
	if setting != "" {
		reason += fmt.Sprintf(", which %s = %q makes %s", setting, enforced, enforced)
	}
	if action != enforced {
		reason += fmt.Sprintf(" (mode %q: %s instead)", v.Mode, action)
	}
	v.Reasons = append(v.Reasons, reason)

	switch {
	case !q.LocalThresholds:
		v.Action, v.PlatformDecides = action, true
		v.Reasons = append(v.Reasons, "scanner.qscanner.local_thresholds is off: the "+
			"platform's verdict alone decides")
	case rank(action) > rank(v.Action):
		v.Action, v.PlatformDecides = action, true
	}
	v.NextStep = ""
	if v.Action != Allow {
		v.NextStep = p.Message.NextStep
	}
}

// soften is what an action enforce mode would take becomes in mode.
func soften(mode Mode, enforced Action) Action {
	switch {
	case mode == ModeWarn && enforced == Block:
		return Warn
	case mode == ModeAudit && (enforced == Block || enforced == Warn):
		return Audit
	}
	return enforced
}

func platformPhrase(verdict string) string {
	switch verdict {
	case PlatformAllow:
		return "allowed it (ALLOW)"
	case PlatformDeny:
		return "denied it (DENY)"
	case PlatformAudit:
		return "returned AUDIT"
	}
	return fmt.Sprintf("returned an unknown verdict %q, taken as a block", verdict)
}

// platformNote names a platform DENY or AUDIT when the findings decided, so that the
// message shows both; "" otherwise.
func (v Verdict) platformNote() string {
	if v.PlatformDecides || v.Platform == "" || v.Platform == PlatformAllow {
		return ""
	}
	return "the Qualys platform's policy evaluation also " + platformPhrase(v.Platform)
}

// platformMessage is the message when the platform's verdict decided.
func (v Verdict) platformMessage(subject string) string {
	var b strings.Builder
	b.WriteString(subject)
	switch v.Action {
	case Allow:
		b.WriteString(" allowed: ")
	case Block:
		b.WriteString(" blocked: ")
	case Warn:
		b.WriteString(" allowed with a warning: ")
	case Audit:
		b.WriteString(" allowed (audit only): ")
	default:
		fmt.Fprintf(&b, ": unknown action %q: ", v.Action)
	}
	b.WriteString("the Qualys platform's policy evaluation ")
	b.WriteString(platformPhrase(v.Platform))

	worst := append(append([]finding.Finding{}, v.Blocking...), v.Warning...)
	if len(worst) > 0 {
		fmt.Fprintf(&b, "; its report lists %s at or above the %q warn threshold: ",
			countPhrase(worst), v.WarnAt.String())
		for i, f := range worst {
			if i == worstShown {
				fmt.Fprintf(&b, ", and %d more", len(worst)-worstShown)
				break
			}
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(describe(f))
		}
	}
	for _, note := range v.expiredNotes() {
		b.WriteString("; ")
		b.WriteString(note)
	}
	if v.NextStep != "" && v.Action != Allow {
		b.WriteString("; next step: ")
		b.WriteString(v.NextStep)
	}
	return b.String()
}

// Effective returns f as this policy evaluates it: a Qualys finding's severity mapped by
// the current [scanner.qscanner.severity] table; other findings unchanged.
func (p *Policy) Effective(f finding.Finding) finding.Finding { return p.remapSeverity(f) }
