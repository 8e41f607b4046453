package slurm

import (
	"fmt"
	"strings"

	"github.com/scan-gate/scan-gate/gate"
	"github.com/scan-gate/scan-gate/policy"
)

// Option is the user's --scan-gate=MODE[,report] option. It can make the gate stricter
// than the policy for the user's own job, or ask for a report; it never makes it weaker.
type Option struct {
	// Mode is the mode the user asks for; empty for the policy's.
	Mode policy.Mode
	// Report asks for the verdict of every image on the job's stderr, allowed ones too.
	Report bool
}

// OptionUsage describes the option's values, for the plugin's --help.
const OptionUsage = "enforce|warn|audit[,report] or report: make the image check " +
	"stricter than the site policy for this job, or report every verdict; it never " +
	"makes the check weaker"

// ParseOption reads the value of --scan-gate.
func ParseOption(value string) (Option, error) {
	var o Option
	if value == "" {
		return o, nil
	}
	for _, word := range strings.Split(value, ",") {
		switch m := policy.Mode(strings.TrimSpace(word)); m {
		case "report":
			o.Report = true
		case policy.ModeEnforce, policy.ModeWarn, policy.ModeAudit:
			if o.Mode != "" {
				return Option{}, fmt.Errorf("--scan-gate=%s: give one mode", value)
			}
			o.Mode = m
		default:
			return Option{}, fmt.Errorf("--scan-gate=%s: unknown mode %q (want enforce, "+
				"warn, audit or report)", value, m)
		}
	}
	return o, nil
}

// strictness ranks modes: audit < warn < enforce.
var strictness = map[policy.Mode]int{policy.ModeAudit: 0, policy.ModeWarn: 1,
	policy.ModeEnforce: 2}

// apply makes res at least as strict as the option's mode asks. It returns a note for the
// user when the option asked for less than the policy gives, which it cannot.
func (o Option) apply(res *gate.Result, p *policy.Policy) string {
	v := &res.Verdict
	asked, ok := strictness[o.Mode]
	if !ok {
		return ""
	}
	if current, known := strictness[v.Mode]; known && asked < current {
		return fmt.Sprintf("--scan-gate=%s cannot make the check weaker than the site "+
			"policy (mode %q for this job); the policy applies", o.Mode, v.Mode)
	}
	if asked == strictness[v.Mode] {
		return ""
	}

	// What enforce mode would do, softened by the mode the user asked for.
	enforced := policy.Allow
	switch {
	case v.NoDecision && v.Unscannable:
		enforced = p.On.Unscannable
	case v.NoDecision:
		enforced = p.On.NoDecision
	case len(v.Blocking) > 0:
		enforced = policy.Block
	case len(v.Warning) > 0:
		enforced = policy.Warn
	}
	switch {
	case o.Mode == policy.ModeWarn && enforced == policy.Block:
		enforced = policy.Warn
	case o.Mode == policy.ModeAudit && (enforced == policy.Block || enforced == policy.Warn):
		enforced = policy.Audit
	}
	v.Mode = o.Mode
	if policy.Stricter(v.Action, enforced) == v.Action {
		return ""
	}
	v.Reasons = append(v.Reasons, fmt.Sprintf("--scan-gate=%s: %s instead of %s", o.Mode,
		enforced, v.Action))
	v.Action, res.Action = enforced, enforced
	if v.NoDecision {
		v.NextStep = p.Message.NoDecisionStep
	} else {
		v.NextStep = p.Message.NextStep
	}
	res.Message = v.Message(res.Image)
	return ""
}
