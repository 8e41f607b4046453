package finding

import (
	"reflect"
	"testing"
)

func TestNormalize(t *testing.T) {
	in := []Finding{
		// grype: a GHSA id with its CVE among the related vulnerabilities.
		{ID: "GHSA-xxxx-yyyy-zzzz", Aliases: []string{"CVE-2024-1000"}, Package: "requests",
			Installed: "2.31.0", FixedVersions: []string{"2.32.0"}, FixState: Fixed,
			Severity: Medium, Location: "usr/lib/python3/dist-packages"},
		// trivy: the CVE itself, rated higher by another source, with a vendor advisory.
		{ID: "CVE-2024-1000", Aliases: []string{"DSA-5000-1", "CVE-2024-1000"},
			Package: "requests", Installed: "2.31.0", FixedVersions: []string{"2.32.0",
				"2.31.0+deb12u1"}, FixState: Fixed, Severity: High, Title: "requests leak"},
		// The same vulnerability reported twice for one package (direct and via its
		// source package): one finding.
		{ID: "CVE-2023-38545", Package: "curl", Installed: "7.88.1", FixState: FixUnknown,
			Severity: Critical},
		{ID: "CVE-2023-38545", Aliases: []string{"cve-2023-38545"}, Package: "curl",
			Installed: "7.88.1", FixedVersions: []string{"7.88.2"}, FixState: Fixed,
			Severity: Critical},
		// Another package: kept apart.
		{ID: "CVE-2023-38545", Package: "libcurl4", Installed: "7.88.1", FixState: NotFixed,
			Severity: Critical},
		// No CVE alias: the id stays.
		{ID: "QID-38170", Package: "", Severity: Low, QualysSeverity: 2},
	}
	want := []Finding{
		{ID: "CVE-2023-38545", Package: "curl", Installed: "7.88.1",
			FixedVersions: []string{"7.88.2"}, FixState: Fixed, Severity: Critical},
		{ID: "CVE-2023-38545", Package: "libcurl4", Installed: "7.88.1", FixState: NotFixed,
			Severity: Critical},
		{ID: "CVE-2024-1000", Aliases: []string{"DSA-5000-1", "GHSA-xxxx-yyyy-zzzz"},
			Package: "requests", Installed: "2.31.0",
			FixedVersions: []string{"2.32.0", "2.31.0+deb12u1"}, FixState: Fixed,
			Severity: High, Title: "requests leak", Location: "usr/lib/python3/dist-packages"},
		{ID: "QID-38170", Severity: Low, QualysSeverity: 2},
	}
	got := Normalize(in)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Normalize:\n got %+v\nwant %+v", got, want)
	}
	if in[0].ID != "GHSA-xxxx-yyyy-zzzz" || len(in[1].FixedVersions) != 2 {
		t.Error("Normalize changed its input")
	}
}
