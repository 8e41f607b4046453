package qscanner

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/scan-gate/scan-gate/gate/finding"
	"github.com/scan-gate/scan-gate/gate/scanner"
)

// The SARIF report of QScanner is known from one parser that reads it, not from a vendor
// sample (see the package doc): rules carry the Qualys severity (properties.severity, else
// properties.customerSeverity, an integer 1-5) and CVE ids (properties["cve-ids"]); results
// carry the QID (properties.QID) and the vulnerable packages (properties.vulnerableSoftware,
// {name, installedVersion, fixedVersion}, several per result). Every field is read
// defensively: a number may come as a string, a list as a comma-separated string. A result
// whose severity cannot be read is kept, at "unknown".

type sarifLog struct {
	Runs *[]struct {
		Tool struct {
			Driver struct {
				Name  string      `json:"name"`
				Rules []sarifRule `json:"rules"`
			} `json:"driver"`
		} `json:"tool"`
		Results []sarifResult `json:"results"`
	} `json:"runs"`
}

type sarifRule struct {
	ID               string `json:"id"`
	ShortDescription *struct {
		Text string `json:"text"`
	} `json:"shortDescription"`
	Properties map[string]json.RawMessage `json:"properties"`
}

type sarifResult struct {
	RuleID     string                     `json:"ruleId"`
	Message    struct{ Text string }      `json:"message"`
	Properties map[string]json.RawMessage `json:"properties"`
}

type software struct {
	Name             string `json:"name"`
	InstalledVersion string `json:"installedVersion"`
	FixedVersion     string `json:"fixedVersion"`
}

// readSARIF finds the one *-Report.sarif.json in the output dir and reads its findings.
func (b *Backend) readSARIF(dir string) ([]finding.Finding, error) {
	matches, err := glob(dir, "*-Report.sarif.json")
	if err != nil {
		return nil, err
	}
	switch len(matches) {
	case 0:
		return nil, errors.New("qscanner exited without writing a vulnerability report " +
			"(*-Report.sarif.json)")
	case 1:
	default:
		return nil, fmt.Errorf("qscanner wrote %d vulnerability reports, want one",
			len(matches))
	}
	data, err := scanner.ReadReport(matches[0])
	if err != nil {
		return nil, fmt.Errorf("reading qscanner's report: %w", err)
	}
	findings, err := parseSARIF(data, b.cfg.Severity)
	if err != nil {
		return nil, fmt.Errorf("reading qscanner's report %s: %w", filepath.Base(matches[0]),
			err)
	}
	return findings, nil
}

// parseSARIF turns a QScanner SARIF report into normalized findings: one per CVE of a QID
// and vulnerable package, with "QID-<n>" as alias (one per QID and package, its id
// "QID-<n>", for a QID without CVEs).
func parseSARIF(data []byte, severity func(int) finding.Severity) ([]finding.Finding, error) {
	if strings.TrimSpace(string(data)) == "" {
		return nil, errors.New("empty report")
	}
	var log sarifLog
	if err := json.Unmarshal(data, &log); err != nil {
		return nil, fmt.Errorf("decoding SARIF report: %w", err)
	}
	if log.Runs == nil {
		return nil, errors.New("not a SARIF report: no runs")
	}

	out := []finding.Finding{}
	for _, run := range *log.Runs {
		rules := map[string]sarifRule{}
		for _, r := range run.Tool.Driver.Rules {
			rules[r.ID] = r
		}
		for i, res := range run.Results {
			fs, err := resultFindings(res, rules[res.RuleID], severity)
			if err != nil {
				return nil, fmt.Errorf("result %d (rule %q): %w", i+1, res.RuleID, err)
			}
			out = append(out, fs...)
		}
	}
	return finding.Normalize(out), nil
}

func resultFindings(res sarifResult, rule sarifRule,
	severity func(int) finding.Severity) ([]finding.Finding, error) {
	qid, ok := intProperty(res.Properties, "QID")
	if !ok {
		qid, ok = qidFromRule(res.RuleID)
	}
	if !ok {
		return nil, errors.New("no QID")
	}

	level, ok := intProperty(rule.Properties, "severity")
	if !ok {
		level, _ = intProperty(rule.Properties, "customerSeverity")
	}
	if level < 1 || level > 5 {
		level = 0
	}
	cves := stringsProperty(rule.Properties, "cve-ids")
	if len(cves) == 0 {
		cves = stringsProperty(res.Properties, "cve-ids")
	}
	// One finding per CVE, as the other scanners report them, with the QID as alias (an
	// exception may name either); a QID without CVEs is its own id.
	qidName := "QID-" + strconv.Itoa(qid)
	ids, aliases := []string{qidName}, []string(nil)
	if len(cves) > 0 {
		ids, aliases = cves, []string{qidName}
	}
	title := res.Message.Text
	if rule.ShortDescription != nil && rule.ShortDescription.Text != "" {
		title = rule.ShortDescription.Text
	}

	var packages []software
	if raw, ok := res.Properties["vulnerableSoftware"]; ok {
		if err := json.Unmarshal(raw, &packages); err != nil {
			return nil, fmt.Errorf("decoding vulnerableSoftware: %w", err)
		}
	}
	if len(packages) == 0 {
		packages = []software{{}} // a finding about the image, with no package named
	}

	var out []finding.Finding
	for _, p := range packages {
		for _, id := range ids {
			out = append(out, packageFinding(id, aliases, title, p, level, severity))
		}
	}
	return out, nil
}

func packageFinding(id string, aliases []string, title string, p software, level int,
	severity func(int) finding.Severity) finding.Finding {
	f := finding.Finding{
		ID:             id,
		Aliases:        aliases,
		Title:          title,
		Package:        p.Name,
		Installed:      p.InstalledVersion,
		FixState:       finding.FixUnknown,
		Severity:       finding.Unknown,
		QualysSeverity: level,
	}
	if level > 0 {
		f.Severity = severity(level)
	}
	if fixed := strings.TrimSpace(p.FixedVersion); fixed != "" &&
		!strings.EqualFold(fixed, "none") && !strings.EqualFold(fixed, "n/a") {
		f.FixedVersions, f.FixState = []string{fixed}, finding.Fixed
	}
	return f
}

// intProperty reads a property holding an integer, or a string of one.
func intProperty(props map[string]json.RawMessage, key string) (int, bool) {
	raw, ok := props[key]
	if !ok {
		return 0, false
	}
	var n int
	if json.Unmarshal(raw, &n) == nil {
		return n, true
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil {
			return n, true
		}
	}
	return 0, false
}

// stringsProperty reads a property holding a list of strings, or one comma-separated
// string, trimmed, without empty items.
func stringsProperty(props map[string]json.RawMessage, key string) []string {
	raw, ok := props[key]
	if !ok {
		return nil
	}
	var list []string
	if json.Unmarshal(raw, &list) != nil {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return nil
		}
		list = strings.Split(s, ",")
	}
	var out []string
	for _, item := range list {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// qidFromRule reads a QID from a rule id such as "376835" or "qid-376835".
func qidFromRule(id string) (int, bool) {
	id = strings.TrimPrefix(strings.ToLower(strings.TrimSpace(id)), "qid-")
	n, err := strconv.Atoi(id)
	return n, err == nil && n > 0
}
