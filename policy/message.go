package policy

import (
	"fmt"
	"strings"

	"github.com/scan-gate/scan-gate/gate/finding"
)

// worstShown is how many findings a message lists by name.
const worstShown = 5

// Message is the one message a researcher reads about an image: what happened, the worst
// findings with their fixed versions, the threshold, and what to do next.
func (v Verdict) Message(image string) string {
	subject := "the image"
	if image != "" {
		subject = "image " + image
	}
	if v.NoDecision {
		return v.noDecisionMessage(subject)
	}
	if v.PlatformDecides {
		return v.platformMessage(subject)
	}

	var b strings.Builder
	b.WriteString(subject)
	switch v.Action {
	case Allow:
		b.WriteString(" allowed")
		if n := len(v.Excepted); n > 0 {
			fmt.Fprintf(&b, " (%s covered by exceptions)", plural(n, "finding", "findings"))
		}
	case Block:
		b.WriteString(" blocked: ")
		b.WriteString(v.findingsPhrase(v.Blocking, v.BlockAt, ""))
	case Warn:
		if len(v.Blocking) > 0 {
			fmt.Fprintf(&b, " allowed with a warning (policy mode %q; enforce mode would "+
				"block): %s", v.Mode, v.findingsPhrase(v.Blocking, v.BlockAt, ""))
			break
		}
		b.WriteString(" allowed with a warning: ")
		b.WriteString(v.findingsPhrase(v.Warning, v.WarnAt, "warn "))
	case Audit:
		if len(v.Blocking) > 0 {
			b.WriteString(" allowed (audit only; enforce mode would block): ")
			b.WriteString(v.findingsPhrase(v.Blocking, v.BlockAt, ""))
			break
		}
		b.WriteString(" allowed (audit only; enforce mode would warn): ")
		b.WriteString(v.findingsPhrase(v.Warning, v.WarnAt, "warn "))
	default:
		fmt.Fprintf(&b, ": unknown action %q", v.Action)
	}

	for _, note := range v.expiredNotes() {
		b.WriteString("; ")
		b.WriteString(note)
	}
	if note := v.platformNote(); note != "" {
		b.WriteString("; ")
		b.WriteString(note)
	}
	if v.NextStep != "" && v.Action != Allow {
		b.WriteString("; next step: ")
		b.WriteString(v.NextStep)
	}
	return b.String()
}

func (v Verdict) noDecisionMessage(subject string) string {
	what := "no decision could be made"
	if v.Unscannable {
		what = "the image could not be scanned"
	}
	if len(v.Reasons) > 0 && v.Reasons[0] != "" {
		what += " (" + v.Reasons[0] + ")"
	}

	var outcome string
	switch v.Action {
	case Allow:
		outcome = "allowed"
	case Warn:
		outcome = "allowed with a warning"
	case Audit:
		outcome = "allowed (audit only)"
	case Block:
		outcome = "blocked"
	default:
		outcome = fmt.Sprintf("given unknown action %q", v.Action)
	}
	message := subject + " " + outcome + ": " + what
	if v.NextStep != "" && v.Action != Allow {
		message += "; next step: " + v.NextStep
	}
	return message
}

// findingsPhrase reads "2 critical vulnerabilities at or above the "critical" threshold:
// CVE-… in curl 7.88.1 (fixed in 7.88.2), …". Kind is "" or "warn ".
func (v Verdict) findingsPhrase(fs []finding.Finding, threshold finding.Severity,
	kind string) string {
	var b strings.Builder
	b.WriteString(countPhrase(fs))
	if v.FixableOnly {
		b.WriteString(" with fixes")
	}
	fmt.Fprintf(&b, " at or above the %q %sthreshold: ", threshold.String(), kind)
	for i, f := range fs {
		if i == worstShown {
			fmt.Fprintf(&b, ", and %d more", len(fs)-worstShown)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(describe(f))
	}
	return b.String()
}

// countPhrase reads "2 critical vulnerabilities" or "4 vulnerabilities (1 critical, 3 high)".
func countPhrase(fs []finding.Finding) string {
	var order []finding.Severity
	counts := map[finding.Severity]int{}
	for _, f := range fs {
		if counts[f.Severity] == 0 {
			order = append(order, f.Severity)
		}
		counts[f.Severity]++
	}
	noun := plural(len(fs), "vulnerability", "vulnerabilities")
	if len(order) == 1 {
		n, rest, _ := strings.Cut(noun, " ")
		return n + " " + order[0].String() + " " + rest
	}
	parts := make([]string, len(order))
	for i, severity := range order {
		parts[i] = fmt.Sprintf("%d %s", counts[severity], severity)
	}
	return noun + " (" + strings.Join(parts, ", ") + ")"
}

// describe reads "CVE-2023-38545 in curl 7.88.1-10+deb12u1 (fixed in 7.88.1-10+deb12u4)".
func describe(f finding.Finding) string {
	s := f.ID
	if f.Package != "" {
		s += " in " + f.Package
		if f.Installed != "" {
			s += " " + f.Installed
		}
	}
	switch {
	case len(f.FixedVersions) > 0:
		s += " (fixed in " + strings.Join(f.FixedVersions, " or ") + ")"
	case f.FixState == finding.NotFixed:
		s += " (no fix yet)"
	case f.FixState == finding.WontFix:
		s += " (no fix planned)"
	}
	return s
}

// expiredNotes names each expired exception once.
func (v Verdict) expiredNotes() []string {
	var notes []string
	seen := map[string]bool{}
	for _, e := range v.Expired {
		note := expiredNote(e.Exception)
		if !seen[note] {
			seen[note] = true
			notes = append(notes, note)
		}
	}
	return notes
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}
