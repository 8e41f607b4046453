package grype

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/scan-gate/scan-gate/gate/finding"
)

// report is the part of Grype's JSON report (grype/presenter/models.Document) the gate uses.
type report struct {
	// Matches is a pointer so that a report without the key is told from an empty one.
	Matches *[]match `json:"matches"`
	Distro  struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	} `json:"distro"`
	Descriptor struct {
		Name    string `json:"name"`
		Version string `json:"version"`
		DB      *struct {
			Status *struct {
				Built time.Time `json:"built"`
			} `json:"status"`
		} `json:"db"`
	} `json:"descriptor"`
}

type match struct {
	Vulnerability struct {
		ID          string `json:"id"`
		Severity    string `json:"severity"`
		Description string `json:"description"`
		Fix         struct {
			Versions []string `json:"versions"`
			State    string   `json:"state"`
		} `json:"fix"`
	} `json:"vulnerability"`
	RelatedVulnerabilities []struct {
		ID string `json:"id"`
	} `json:"relatedVulnerabilities"`
	Artifact struct {
		Name      string `json:"name"`
		Version   string `json:"version"`
		Type      string `json:"type"`
		Locations []struct {
			Path string `json:"path"`
		} `json:"locations"`
	} `json:"artifact"`
}

// parseReport decodes a report file's contents. An empty or unparsable report, or one that
// is not Grype's, is an error: the scan is then not known to be complete.
func parseReport(data []byte) (*report, error) {
	if len(strings.TrimSpace(string(data))) == 0 {
		return nil, errors.New("empty report")
	}
	var rep report
	if err := json.Unmarshal(data, &rep); err != nil {
		return nil, fmt.Errorf("decoding report: %w", err)
	}
	if rep.Descriptor.Name != "grype" || rep.Matches == nil {
		return nil, errors.New("not a grype JSON report (no grype descriptor or matches)")
	}
	for _, m := range *rep.Matches {
		if m.Vulnerability.ID == "" || m.Artifact.Name == "" {
			return nil, errors.New("report lists a match without a vulnerability id or " +
				"package name")
		}
	}
	return &rep, nil
}

// osName is "name version" of the detected distribution ("debian 12.5"), or "".
func (r *report) osName() string {
	return strings.TrimSpace(r.Distro.Name + " " + r.Distro.Version)
}

// dbBuilt is the build time of the DB the report was made with, or zero when not given.
func (r *report) dbBuilt() time.Time {
	if r.Descriptor.DB == nil || r.Descriptor.DB.Status == nil {
		return time.Time{}
	}
	return r.Descriptor.DB.Status.Built.UTC()
}

// osPackageTypes are the artifact types of distribution packages. Their location is given as
// the distribution, as the trivy backend does, so that findings read alike.
var osPackageTypes = map[string]bool{"deb": true, "rpm": true, "apk": true}

// findings maps the matches onto the gate's findings, normalized: one finding per
// vulnerability and installed package, CVE ids first.
func (r *report) findings() []finding.Finding {
	out := []finding.Finding{}
	for _, m := range *r.Matches {
		v := m.Vulnerability
		state := fixState(v.Fix.State, v.Fix.Versions)
		if state == "" {
			continue // not affected
		}
		var aliases []string
		for _, rel := range m.RelatedVulnerabilities {
			aliases = append(aliases, rel.ID)
		}
		out = append(out, finding.Finding{
			ID:            v.ID,
			Aliases:       aliases,
			Title:         firstLine(v.Description),
			Package:       m.Artifact.Name,
			Installed:     m.Artifact.Version,
			FixedVersions: nonEmpty(v.Fix.Versions),
			FixState:      state,
			Severity:      severity(v.Severity),
			Location:      r.location(m),
		})
	}
	return finding.Normalize(out)
}

func (r *report) location(m match) string {
	if osPackageTypes[m.Artifact.Type] && r.osName() != "" {
		return r.osName()
	}
	if len(m.Artifact.Locations) > 0 {
		return strings.TrimPrefix(m.Artifact.Locations[0].Path, "/")
	}
	return ""
}

// fixState maps Grype's fix states; "" means the package is not affected.
func fixState(state string, versions []string) finding.FixState {
	switch state {
	case "not-affected":
		return ""
	case "fixed":
		return finding.Fixed
	case "not-fixed":
		return finding.NotFixed
	case "wont-fix":
		return finding.WontFix
	}
	if len(nonEmpty(versions)) > 0 {
		return finding.Fixed
	}
	return finding.FixUnknown
}

// severity maps Critical, High, Medium, Low, Negligible and Unknown; Negligible is the
// gate's low, anything else unknown.
func severity(name string) finding.Severity {
	if strings.EqualFold(name, "negligible") {
		return finding.Low
	}
	s, err := finding.ParseSeverity(name)
	if err != nil {
		return finding.Unknown
	}
	return s
}

func nonEmpty(values []string) []string {
	var out []string
	for _, v := range values {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}
