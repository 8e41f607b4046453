package trivy

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/scan-gate/scan-gate/gate/finding"
)

// reportSchema is the only JSON report schema version this backend reads. A Trivy that writes
// another one is refused rather than half understood.
const reportSchema = 2

// report is the part of Trivy's JSON report (pkg/types.Report) the gate uses.
type report struct {
	SchemaVersion int
	Metadata      struct {
		OS *struct {
			Family string
			Name   string
		}
	}
	// Results is absent when nothing at all was found; a detected OS still gives an
	// "os-pkgs" result, with no Vulnerabilities when none apply.
	Results []struct {
		Target string
		Class  string
		Type   string
		// Packages lists every package found (--list-all-pkgs); only their number is read.
		Packages        []struct{}
		Vulnerabilities []vulnerability
	}
}

// vulnerability is one entry of a result's Vulnerabilities (pkg/types.DetectedVulnerability).
type vulnerability struct {
	VulnerabilityID  string
	VendorIDs        []string
	PkgName          string
	InstalledVersion string
	// FixedVersion joins several fixed versions with ", ".
	FixedVersion string
	Status       string
	Severity     string
	Title        string
}

// Result classes Trivy gives (pkg/types.ResultClass).
const classOSPkgs = "os-pkgs"

// parseReport decodes a report file's contents. An empty or unparsable report, or one of an
// unknown schema, is an error: the scan is then not known to be complete.
func parseReport(data []byte) (*report, error) {
	if len(strings.TrimSpace(string(data))) == 0 {
		return nil, errors.New("empty report")
	}

	var rep report
	if err := json.Unmarshal(data, &rep); err != nil {
		return nil, fmt.Errorf("decoding report: %w", err)
	}
	if rep.SchemaVersion != reportSchema {
		return nil, fmt.Errorf("report has schema version %d, want %d",
			rep.SchemaVersion, reportSchema)
	}

	for _, res := range rep.Results {
		for _, v := range res.Vulnerabilities {
			if v.VulnerabilityID == "" || v.PkgName == "" {
				return nil, fmt.Errorf("report target %q lists a vulnerability without "+
					"an id or package", res.Target)
			}
		}
	}
	return &rep, nil
}

// osName is "family name" of the detected OS ("debian 12.5"), or "" when none was detected.
func (r *report) osName() string {
	if r.Metadata.OS == nil || r.Metadata.OS.Family == "" || r.Metadata.OS.Family == "none" {
		return ""
	}
	return strings.TrimSpace(r.Metadata.OS.Family + " " + r.Metadata.OS.Name)
}

// hasOSPackages reports whether Trivy found any OS package. A detected OS gives an
// "os-pkgs" result even when no package could be read from its database, so the result must
// list packages to count.
func (r *report) hasOSPackages() bool {
	for _, res := range r.Results {
		if res.Class == classOSPkgs && (len(res.Packages) > 0 || len(res.Vulnerabilities) > 0) {
			return true
		}
	}
	return false
}

// findings maps every vulnerability of every result onto the gate's findings. root is the
// scanned directory, which Trivy puts into targets and which is cut off here so that the
// findings of the same image are the same wherever it was extracted.
func (r *report) findings(root string) []finding.Finding {
	var out []finding.Finding
	for _, res := range r.Results {
		location := relativeTarget(res.Target, root)
		for _, v := range res.Vulnerabilities {
			state, affected := fixState(v.Status, v.FixedVersion)
			if !affected {
				continue
			}
			out = append(out, finding.Finding{
				ID:            v.VulnerabilityID,
				Aliases:       aliases(v),
				Title:         v.Title,
				Package:       v.PkgName,
				Installed:     v.InstalledVersion,
				FixedVersions: splitVersions(v.FixedVersion),
				FixState:      state,
				Severity:      severity(v.Severity),
				Location:      location,
			})
		}
	}
	finding.Sort(out)
	return out
}

// relativeTarget turns "/scratch/rootfs (debian 12.5)" into "debian 12.5" and
// "/scratch/rootfs/usr/lib/x.jar" into "usr/lib/x.jar"; other targets are kept.
func relativeTarget(target, root string) string {
	root = strings.TrimSuffix(root, "/")
	if root == "" || !strings.HasPrefix(target, root) {
		return target
	}
	rest := target[len(root):]
	switch {
	case rest == "":
		return ""
	case strings.HasPrefix(rest, " (") && strings.HasSuffix(rest, ")"):
		return rest[2 : len(rest)-1]
	case strings.HasPrefix(rest, "/"):
		return rest[1:]
	}
	return target
}

// fixState maps Trivy's status (trivy-db types.Statuses) onto the gate's fix states. A
// vendor's "not_affected" is not a finding at all: affected is false.
func fixState(status, fixedVersion string) (state finding.FixState, affected bool) {
	if fixedVersion != "" {
		return finding.Fixed, true
	}
	switch status {
	case "fixed":
		return finding.Fixed, true
	case "affected", "under_investigation", "fix_deferred":
		return finding.NotFixed, true
	case "will_not_fix", "end_of_life":
		return finding.WontFix, true
	case "not_affected":
		return finding.FixUnknown, false
	}
	return finding.FixUnknown, true
}

// severity maps Trivy's UNKNOWN, LOW, MEDIUM, HIGH, CRITICAL; anything else is unknown, which
// policy treats as it is told to.
func severity(name string) finding.Severity {
	s, err := finding.ParseSeverity(name)
	if err != nil {
		return finding.Unknown
	}
	return s
}

// splitVersions splits Trivy's "1.2-3, 1.3-1" into its versions.
func splitVersions(joined string) []string {
	var out []string
	for v := range strings.SplitSeq(joined, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// aliases are the vendor advisory ids (DSA-..., RHSA-...) other than the finding's own id.
func aliases(v vulnerability) []string {
	var out []string
	for _, id := range v.VendorIDs {
		if id != "" && id != v.VulnerabilityID {
			out = append(out, id)
		}
	}
	return out
}
