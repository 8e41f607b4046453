package policy

import (
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/scan-gate/scan-gate/gate/finding"
)

// Subject is who launches what: the image and the job's identity as the launcher knows it.
type Subject struct {
	Image     string   `json:"image"`
	User      string   `json:"user,omitempty"`
	Groups    []string `json:"groups,omitempty"`
	Partition string   `json:"partition,omitempty"`
	Account   string   `json:"account,omitempty"`
	JobID     string   `json:"job_id,omitempty"`
}

// AppliedException is an exception that let a finding through.
type AppliedException struct {
	Exception Exception       `json:"exception"`
	Finding   finding.Finding `json:"finding"`
}

// ExpiredException is an exception that would have let a finding through had it not expired.
type ExpiredException struct {
	Exception Exception       `json:"exception"`
	Finding   finding.Finding `json:"finding"`
}

// Verdict is the policy's decision on one image for one subject, with what it rests on.
type Verdict struct {
	Action Action `json:"action"`
	Mode   Mode   `json:"mode"`
	// Scope is the name of the scope that applied; empty for the top-level settings.
	Scope string `json:"scope,omitempty"`
	// NoDecision is set when the action comes from [on] rather than from findings.
	NoDecision bool `json:"no_decision,omitempty"`
	// Unscannable is set, with NoDecision, when the image itself could not be scanned.
	Unscannable bool             `json:"unscannable,omitempty"`
	BlockAt     finding.Severity `json:"block_at"`
	WarnAt      finding.Severity `json:"warn_at"`
	FixableOnly bool             `json:"fixable_only,omitempty"`
	// Blocking are the counted findings at or above BlockAt, worst first. They block only
	// in enforce mode.
	Blocking []finding.Finding `json:"blocking,omitempty"`
	// Warning are the counted findings at or above WarnAt and below BlockAt, worst first.
	Warning  []finding.Finding  `json:"warning,omitempty"`
	Excepted []AppliedException `json:"excepted,omitempty"`
	Expired  []ExpiredException `json:"expired,omitempty"`
	// Counts are the counted findings by severity name: those not filtered out by
	// fixable_only and not excepted.
	Counts   map[string]int `json:"counts"`
	Reasons  []string       `json:"reasons,omitempty"`
	NextStep string         `json:"next_step,omitempty"`
	// Platform is the scanner platform's own verdict, when it gave one (QScanner in
	// evaluate-policy mode: "allow", "deny" or "audit"). PlatformDecides is set when the
	// action comes from it rather than from the findings (see platform.go).
	Platform        string `json:"platform_verdict,omitempty"`
	PlatformDecides bool   `json:"platform_decides,omitempty"`
}

// Evaluate decides on a scan for a subject. Now decides which exceptions have expired: an
// exception applies through its expiry day, in now's location. A nil scan is no decision.
func (p *Policy) Evaluate(scan *finding.Scan, who Subject, now time.Time) Verdict {
	if scan == nil {
		return p.NoDecision(who, false, "no scan result was available")
	}
	v := p.newVerdict(who)
	today := DateOf(now)
	var notes []string
	noted := map[int]bool{}

	for _, f := range scan.Findings {
		f = p.remapSeverity(f)
		if v.FixableOnly && !f.Fixable() {
			continue
		}
		applied, expired := p.exceptionsFor(f, who.Image, today)
		if applied >= 0 {
			v.Excepted = append(v.Excepted, AppliedException{p.Exceptions[applied], f})
			if !noted[applied] {
				noted[applied] = true
				notes = append(notes, exceptedNote(p.Exceptions[applied]))
			}
			continue
		}
		for _, i := range expired {
			v.Expired = append(v.Expired, ExpiredException{p.Exceptions[i], f})
			if !noted[i] {
				noted[i] = true
				notes = append(notes, expiredNote(p.Exceptions[i]))
			}
		}

		v.Counts[f.Severity.String()]++
		switch {
		case f.Severity >= v.BlockAt:
			v.Blocking = append(v.Blocking, f)
		case f.Severity >= v.WarnAt:
			v.Warning = append(v.Warning, f)
		}
	}
	finding.Sort(v.Blocking)
	finding.Sort(v.Warning)

	base := Allow
	switch {
	case len(v.Blocking) > 0:
		base = Block
		v.Reasons = append(v.Reasons, fmt.Sprintf("%d findings at or above the block threshold %q",
			len(v.Blocking), v.BlockAt))
	case len(v.Warning) > 0:
		base = Warn
	default:
		v.Reasons = append(v.Reasons, fmt.Sprintf("no findings at or above the warn threshold %q",
			v.WarnAt))
	}
	if len(v.Warning) > 0 {
		v.Reasons = append(v.Reasons, fmt.Sprintf("%d findings at or above the warn threshold %q",
			len(v.Warning), v.WarnAt))
	}
	p.decide(&v, base)
	v.Reasons = append(v.Reasons, notes...)

	p.applyPlatformVerdict(scan, &v)
	return v
}

// NoDecision is the verdict when findings could not be had: an error or timeout, or, when
// unscannable is set, an image the scanner cannot read. The action comes from [on], then
// the applicable mode softens it as it would a block from findings. Reason says what
// happened, for the message and the audit log.
func (p *Policy) NoDecision(who Subject, unscannable bool, reason string) Verdict {
	v := p.newVerdict(who)
	v.NoDecision, v.Unscannable = true, unscannable
	base := p.On.NoDecision
	if unscannable {
		base = p.On.Unscannable
	}
	v.Reasons = []string{reason}
	p.decide(&v, base)
	if v.Action != Allow {
		// Trying again does not help with an image that cannot be scanned.
		v.NextStep = p.Message.NoDecisionStep
		if unscannable {
			v.NextStep = p.Message.NextStep
		}
	}
	return v
}

// newVerdict starts a verdict with the settings of the first scope matching who.
func (p *Policy) newVerdict(who Subject) Verdict {
	mode, thresholds, scope := p.Mode, p.Thresholds, ""
	for _, s := range p.Scopes {
		if s.Match.matches(who) {
			mode, thresholds, scope = s.Mode, s.Thresholds, s.Name
			break
		}
	}
	return Verdict{
		Mode:        mode,
		Scope:       scope,
		BlockAt:     thresholds.Block,
		WarnAt:      thresholds.Warn,
		FixableOnly: thresholds.FixableOnly,
		Counts:      map[string]int{},
	}
}

// decide sets the action from what enforce mode would do, softened by the mode.
func (p *Policy) decide(v *Verdict, enforced Action) {
	v.Action = enforced
	switch {
	case v.Mode == ModeWarn && enforced == Block:
		v.Action = Warn
	case v.Mode == ModeAudit && (enforced == Block || enforced == Warn):
		v.Action = Audit
	}
	if v.Action != enforced {
		v.Reasons = append(v.Reasons, fmt.Sprintf("mode %q: %s instead of %s",
			v.Mode, v.Action, enforced))
	}
	if v.Action != Allow && !v.NoDecision {
		v.NextStep = p.Message.NextStep
	}
}

func exceptedNote(e Exception) string {
	return fmt.Sprintf("exception for %s applies until %s: %s", e.ID, e.Expires, e.Reason)
}

func expiredNote(e Exception) string {
	return fmt.Sprintf("exception for %s expired on %s", e.ID, e.Expires)
}

// exceptionsFor returns the index of the first unexpired exception covering f on image, or
// -1 and the indices of the expired exceptions that would have covered it.
func (p *Policy) exceptionsFor(f finding.Finding, image string, today Date) (int, []int) {
	var expired []int
	for i, e := range p.Exceptions {
		if !e.covers(f) || len(e.Images) > 0 && !matchAny(e.Images, image, matchImage) {
			continue
		}
		if e.Expires.Before(today) {
			expired = append(expired, i)
			continue
		}
		return i, nil
	}
	return -1, expired
}

// covers reports whether the exception names the finding's id or one of its aliases.
func (e Exception) covers(f finding.Finding) bool {
	if strings.EqualFold(e.ID, f.ID) {
		return true
	}
	for _, alias := range f.Aliases {
		if strings.EqualFold(e.ID, alias) {
			return true
		}
	}
	return false
}

// matches reports whether every non-empty list of the match accepts who. A list never
// accepts an empty value: a scope for some users does not apply when the user is unknown.
func (m Match) matches(who Subject) bool {
	switch {
	case len(m.Images) > 0 && !matchAny(m.Images, who.Image, matchImage),
		len(m.Users) > 0 && !matchAny(m.Users, who.User, matchName),
		len(m.Partitions) > 0 && !matchAny(m.Partitions, who.Partition, matchName),
		len(m.Accounts) > 0 && !matchAny(m.Accounts, who.Account, matchName):
		return false
	}
	if len(m.Groups) == 0 {
		return true
	}
	for _, group := range who.Groups {
		if matchAny(m.Groups, group, matchName) {
			return true
		}
	}
	return false
}

func matchAny(patterns []string, value string, match func(pattern, value string) bool) bool {
	if value == "" {
		return false
	}
	for _, pattern := range patterns {
		if match(pattern, value) {
			return true
		}
	}
	return false
}

// matchName matches a name against a path.Match pattern.
func matchName(pattern, name string) bool {
	ok, _ := path.Match(pattern, name)
	return ok
}

// matchImage matches an image path against a pattern in which "**" as a whole path element
// matches any number of elements, none included; other elements follow path.Match.
func matchImage(pattern, image string) bool {
	if !strings.Contains(pattern, "**") {
		return matchName(pattern, image)
	}
	return matchElements(strings.Split(pattern, "/"), strings.Split(image, "/"))
}

func matchElements(pattern, name []string) bool {
	for len(pattern) > 0 {
		if pattern[0] == "**" {
			for len(pattern) > 1 && pattern[1] == "**" {
				pattern = pattern[1:]
			}
			for skip := 0; skip <= len(name); skip++ {
				if matchElements(pattern[1:], name[skip:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 || !matchName(pattern[0], name[0]) {
			return false
		}
		pattern, name = pattern[1:], name[1:]
	}
	return len(name) == 0
}
