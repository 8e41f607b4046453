package report

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/scan-gate/scan-gate/gate"
	"github.com/scan-gate/scan-gate/gate/finding"
	"github.com/scan-gate/scan-gate/policy"
)

// The SARIF 2.1.0 log the gate writes, the subset of the schema it fills.
type (
	sarifLog struct {
		Version string     `json:"version"`
		Schema  string     `json:"$schema"`
		Runs    []sarifRun `json:"runs"`
	}
	sarifRun struct {
		Tool        sarifTool         `json:"tool"`
		Invocations []sarifInvocation `json:"invocations"`
		Results     []sarifResult     `json:"results"`
		Properties  map[string]any    `json:"properties"`
	}
	sarifTool struct {
		Driver struct {
			Name           string      `json:"name"`
			Version        string      `json:"version,omitempty"`
			InformationURI string      `json:"informationUri"`
			Rules          []sarifRule `json:"rules"`
		} `json:"driver"`
	}
	sarifInvocation struct {
		ExecutionSuccessful bool   `json:"executionSuccessful"`
		Notifications       []note `json:"toolExecutionNotifications,omitempty"`
	}
	note struct {
		Level   string  `json:"level"`
		Message message `json:"message"`
	}
	message struct {
		Text string `json:"text"`
	}
	sarifRule struct {
		ID               string         `json:"id"`
		ShortDescription message        `json:"shortDescription"`
		HelpURI          string         `json:"helpUri,omitempty"`
		Properties       map[string]any `json:"properties"`
	}
	sarifResult struct {
		RuleID       string         `json:"ruleId"`
		Level        string         `json:"level"`
		Message      message        `json:"message"`
		Locations    []location     `json:"locations"`
		Suppressions []suppression  `json:"suppressions,omitempty"`
		Properties   map[string]any `json:"properties"`
	}
	location struct {
		PhysicalLocation struct {
			ArtifactLocation struct {
				URI string `json:"uri"`
			} `json:"artifactLocation"`
		} `json:"physicalLocation"`
		LogicalLocations []logicalLocation `json:"logicalLocations,omitempty"`
	}
	logicalLocation struct {
		Name string `json:"name"`
		Kind string `json:"kind"`
	}
	suppression struct {
		Kind          string `json:"kind"`
		Justification string `json:"justification"`
	}
)

// securitySeverity is the score code-scanning tools read from a rule's
// "security-severity" property, one per gate severity.
var securitySeverity = map[finding.Severity]string{finding.Critical: "9.5",
	finding.High: "8.0", finding.Medium: "5.5", finding.Low: "2.0", finding.Unknown: "0.0"}

// SARIF is the gate's SARIF log of res: one result per normalized finding (as the policy
// evaluates it), "error" for those at or above the block threshold, "warning" at or above
// the warn threshold, "note" below; excepted findings are suppressed with the exception's
// reason. A no-decision result has no findings and an unsuccessful invocation.
func SARIF(res gate.Result, p *policy.Policy, digest, version string) any {
	run := sarifRun{Results: []sarifResult{}, Properties: map[string]any{
		"image":        res.Image,
		"contentKey":   res.Key,
		"action":       res.Verdict.Action,
		"policyDigest": digest,
		"scanner":      res.Scanner.Name,
		"cache":        res.Cache,
	}}
	run.Tool.Driver.Name = "scan-gate"
	run.Tool.Driver.Version = version
	run.Tool.Driver.InformationURI = "https://github.com/scan-gate/scan-gate"
	run.Tool.Driver.Rules = []sarifRule{}
	inv := sarifInvocation{ExecutionSuccessful: res.Scan != nil}
	if res.Error != "" {
		inv.Notifications = []note{{Level: "error", Message: message{res.Error}}}
	}
	run.Invocations = []sarifInvocation{inv}
	if res.Scan == nil {
		return sarifLog{Version: "2.1.0", Schema: "https://json.schemastore.org/sarif-2.1.0.json",
			Runs: []sarifRun{run}}
	}

	scan := res.Scan
	run.Properties["scannerVersion"] = scan.ScannerVersion
	if !scan.DBUpdatedAt.IsZero() {
		run.Properties["dbUpdatedAt"] = scan.DBUpdatedAt
	}
	if scan.OS != "" {
		run.Properties["os"] = scan.OS
	}
	if scan.PlatformVerdict != "" {
		run.Properties["platformVerdict"] = scan.PlatformVerdict
	}

	excepted := map[string]string{}
	for _, e := range res.Verdict.Excepted {
		excepted[key(e.Finding)] = e.Exception.Reason
	}
	rules := map[string]bool{}
	findings := make([]finding.Finding, len(scan.Findings))
	for i, f := range scan.Findings {
		findings[i] = p.Effective(f)
	}
	finding.Sort(findings)
	for _, f := range findings {
		if !rules[f.ID] {
			rules[f.ID] = true
			run.Tool.Driver.Rules = append(run.Tool.Driver.Rules, rule(f))
		}
		run.Results = append(run.Results, result(f, res, excepted))
	}
	return sarifLog{Version: "2.1.0", Schema: "https://json.schemastore.org/sarif-2.1.0.json",
		Runs: []sarifRun{run}}
}

func key(f finding.Finding) string { return f.ID + "\x00" + f.Package + "\x00" + f.Installed }

func rule(f finding.Finding) sarifRule {
	title := f.Title
	if title == "" {
		title = f.ID
	}
	r := sarifRule{ID: f.ID, ShortDescription: message{title}, Properties: map[string]any{
		"security-severity": securitySeverity[f.Severity],
		"tags":              []string{"security", "vulnerability"},
	}}
	if strings.HasPrefix(f.ID, "CVE-") {
		r.HelpURI = "https://nvd.nist.gov/vuln/detail/" + f.ID
	}
	return r
}

func result(f finding.Finding, res gate.Result, excepted map[string]string) sarifResult {
	v := res.Verdict
	level := "note"
	switch {
	case f.Severity >= v.BlockAt:
		level = "error"
	case f.Severity >= v.WarnAt:
		level = "warning"
	}
	text := fmt.Sprintf("%s %s in %s %s", f.Severity, f.ID, f.Package, f.Installed)
	switch {
	case len(f.FixedVersions) > 0:
		text += " (fixed in " + strings.Join(f.FixedVersions, " or ") + ")"
	case f.FixState == finding.NotFixed:
		text += " (no fix yet)"
	case f.FixState == finding.WontFix:
		text += " (no fix planned)"
	}

	var loc location
	loc.PhysicalLocation.ArtifactLocation.URI = filepath.ToSlash(res.Image)
	if f.Package != "" {
		loc.LogicalLocations = []logicalLocation{{Name: f.Package, Kind: "package"}}
	}
	r := sarifResult{RuleID: f.ID, Level: level, Message: message{text},
		Locations: []location{loc}, Properties: map[string]any{
			"package":          f.Package,
			"installedVersion": f.Installed,
			"fixState":         f.FixState,
			"severity":         f.Severity,
		}}
	if len(f.FixedVersions) > 0 {
		r.Properties["fixedVersions"] = f.FixedVersions
	}
	if len(f.Aliases) > 0 {
		r.Properties["aliases"] = f.Aliases
	}
	if f.Location != "" {
		r.Properties["foundIn"] = f.Location
	}
	if f.QualysSeverity != 0 {
		r.Properties["qualysSeverity"] = f.QualysSeverity
	}
	if reason, ok := excepted[key(f)]; ok {
		r.Suppressions = []suppression{{Kind: "external", Justification: reason}}
	}
	return r
}
