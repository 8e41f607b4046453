package trivy

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/scan-gate/scan-gate/gate/finding"
)

// sampleReport is shaped like trivy 0.74's JSON report for a Debian rootfs at /scan/root.
const sampleReport = `{
  "SchemaVersion": 2,
  "Trivy": {"Version": "0.74.0"},
  "ArtifactName": "/scan/root",
  "ArtifactType": "filesystem",
  "Metadata": {"OS": {"Family": "debian", "Name": "12.5"}},
  "Results": [
    {
      "Target": "/scan/root (debian 12.5)",
      "Class": "os-pkgs",
      "Type": "debian",
      "Vulnerabilities": [
        {
          "VulnerabilityID": "CVE-2023-38546",
          "VendorIDs": ["DSA-0000-1"],
          "PkgName": "libcurl4",
          "InstalledVersion": "7.88.1-10+deb12u1",
          "FixedVersion": "7.88.1-10+deb12u4",
          "Status": "fixed",
          "Severity": "LOW",
          "Title": "curl: cookie injection with none file"
        },
        {
          "VulnerabilityID": "CVE-2023-38545",
          "PkgName": "libcurl4",
          "InstalledVersion": "7.88.1-10+deb12u1",
          "FixedVersion": "7.88.1-10+deb12u4, 8.4.0-1",
          "Status": "fixed",
          "Severity": "CRITICAL"
        },
        {
          "VulnerabilityID": "CVE-2000-0001",
          "PkgName": "libc6",
          "InstalledVersion": "2.36-9",
          "Status": "will_not_fix",
          "Severity": "MEDIUM"
        },
        {
          "VulnerabilityID": "CVE-2000-0002",
          "PkgName": "libc6",
          "InstalledVersion": "2.36-9",
          "Status": "not_affected",
          "Severity": "HIGH"
        }
      ]
    },
    {
      "Target": "usr/lib/app/app.jar",
      "Class": "lang-pkgs",
      "Type": "jar",
      "Vulnerabilities": [
        {
          "VulnerabilityID": "GHSA-xxxx",
          "PkgName": "org.example:lib",
          "InstalledVersion": "1.0",
          "Status": "affected",
          "Severity": "SEVERE"
        }
      ]
    }
  ]
}`

func TestParseReport(t *testing.T) {
	rep, err := parseReport([]byte(sampleReport))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rep.osName(), "debian 12.5"; got != want {
		t.Errorf("osName() = %q, want %q", got, want)
	}
	if !rep.hasOSPackages() {
		t.Error("hasOSPackages() = false, want true")
	}

	got := rep.findings("/scan/root/")
	want := []finding.Finding{
		{
			ID: "CVE-2023-38545", Package: "libcurl4", Installed: "7.88.1-10+deb12u1",
			FixedVersions: []string{"7.88.1-10+deb12u4", "8.4.0-1"}, FixState: finding.Fixed,
			Severity: finding.Critical, Location: "debian 12.5",
		},
		{
			ID: "CVE-2000-0001", Package: "libc6", Installed: "2.36-9",
			FixState: finding.WontFix, Severity: finding.Medium, Location: "debian 12.5",
		},
		{
			ID: "CVE-2023-38546", Aliases: []string{"DSA-0000-1"},
			Title:   "curl: cookie injection with none file",
			Package: "libcurl4", Installed: "7.88.1-10+deb12u1",
			FixedVersions: []string{"7.88.1-10+deb12u4"}, FixState: finding.Fixed,
			Severity: finding.Low, Location: "debian 12.5",
		},
		{
			ID: "GHSA-xxxx", Package: "org.example:lib", Installed: "1.0",
			FixState: finding.NotFixed, Severity: finding.Unknown,
			Location: "usr/lib/app/app.jar",
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("findings:\ngot  %+v\nwant %+v", got, want)
	}
}

// TestParseRealReport reads a report trivy 0.74.0 wrote for the vulnerable test tree, kept
// in testdata (the tree lay at /tmp/scan-gate-seed/root).
func TestParseRealReport(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "debian12-vulnerable.json"))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := parseReport(data)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range rep.findings("/tmp/scan-gate-seed/root") {
		got = append(got, fmt.Sprintf("%s %s %s %s->%v %s", f.Severity, f.ID, f.Package,
			f.Installed, f.FixedVersions, f.Location))
	}
	want := []string{
		"critical CVE-2023-38545 libcurl4 7.88.1-10+deb12u1->[7.88.1-10+deb12u4] debian 12.5",
		"critical CVE-2024-45491 libexpat1 2.5.0-1->[2.5.0-1+deb12u1] debian 12.5",
		"critical CVE-2024-45492 libexpat1 2.5.0-1->[2.5.0-1+deb12u1] debian 12.5",
		"high CVE-2023-4863 libwebp7 1.2.4-0.2->[1.2.4-0.2+deb12u1] debian 12.5",
		"high CVE-2023-4911 libc6 2.36-9+deb12u1->[2.36-9+deb12u3] debian 12.5",
		"high CVE-2023-5363 libssl3 3.0.9-1->[3.0.11-1~deb12u2] debian 12.5",
		"low CVE-2023-38546 libcurl4 7.88.1-10+deb12u1->[7.88.1-10+deb12u4] debian 12.5",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("findings:\ngot  %q\nwant %q", got, want)
	}
}

func TestParseReportRefuses(t *testing.T) {
	tests := []struct {
		name, report, wantErr string
	}{
		{"empty", "", "empty report"},
		{"blank", " \n\t", "empty report"},
		{"garbage", "not json at all", "decoding report"},
		{"truncated", sampleReport[:200], "decoding report"},
		{"null", "null", "schema version 0"},
		{"array", "[]", "decoding report"},
		{"other schema", `{"SchemaVersion": 3}`, "schema version 3"},
		{"no id", `{"SchemaVersion": 2, "Results": [{"Target": "x",
			"Vulnerabilities": [{"PkgName": "p"}]}]}`, "without an id"},
		{"no package", `{"SchemaVersion": 2, "Results": [{"Target": "x",
			"Vulnerabilities": [{"VulnerabilityID": "CVE-1"}]}]}`, "without an id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseReport([]byte(tt.report))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseReport() error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestParseReportNothingFound(t *testing.T) {
	tests := []struct {
		name, report string
		wantOS       string
		wantOSPkgs   bool
	}{
		{"no results", `{"SchemaVersion": 2, "ArtifactName": "/r"}`, "", false},
		{"os none", `{"SchemaVersion": 2, "Metadata": {"OS": {"Family": "none"}}}`, "", false},
		{"clean debian", `{"SchemaVersion": 2,
			"Metadata": {"OS": {"Family": "debian", "Name": "12.11"}},
			"Results": [{"Target": "/r (debian 12.11)", "Class": "os-pkgs",
				"Packages": [{"Name": "libc6", "Version": "2.36-9+deb12u14"}]}]}`,
			"debian 12.11", true},
		// The OS was detected but no package listed: none was read from its database.
		{"debian without packages", `{"SchemaVersion": 2,
			"Metadata": {"OS": {"Family": "debian", "Name": "12.11"}},
			"Results": [{"Target": "/r (debian 12.11)", "Class": "os-pkgs"}]}`,
			"debian 12.11", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := parseReport([]byte(tt.report))
			if err != nil {
				t.Fatal(err)
			}
			if got := rep.findings("/r"); len(got) != 0 {
				t.Errorf("findings = %v, want none", got)
			}
			if got := rep.osName(); got != tt.wantOS {
				t.Errorf("osName() = %q, want %q", got, tt.wantOS)
			}
			if got := rep.hasOSPackages(); got != tt.wantOSPkgs {
				t.Errorf("hasOSPackages() = %v, want %v", got, tt.wantOSPkgs)
			}
		})
	}
}

func TestRelativeTarget(t *testing.T) {
	tests := []struct{ target, root, want string }{
		{"/s/root (debian 12.5)", "/s/root", "debian 12.5"},
		{"/s/root (alpine 3.20.1)", "/s/root/", "alpine 3.20.1"},
		{"/s/root/usr/lib/x.jar", "/s/root", "usr/lib/x.jar"},
		{"usr/lib/python3/dist-packages/x.dist-info/METADATA", "/s/root",
			"usr/lib/python3/dist-packages/x.dist-info/METADATA"},
		{"/s/rootother/x", "/s/root", "/s/rootother/x"},
		{"/s/root", "/s/root", ""},
		{"anything", "", "anything"},
	}
	for _, tt := range tests {
		if got := relativeTarget(tt.target, tt.root); got != tt.want {
			t.Errorf("relativeTarget(%q, %q) = %q, want %q", tt.target, tt.root, got, tt.want)
		}
	}
}

func TestFixState(t *testing.T) {
	tests := []struct {
		status, fixed string
		want          finding.FixState
		wantAffected  bool
	}{
		{"fixed", "1.2", finding.Fixed, true},
		{"", "1.2", finding.Fixed, true},
		{"fixed", "", finding.Fixed, true},
		{"affected", "", finding.NotFixed, true},
		{"under_investigation", "", finding.NotFixed, true},
		{"fix_deferred", "", finding.NotFixed, true},
		{"will_not_fix", "", finding.WontFix, true},
		{"end_of_life", "", finding.WontFix, true},
		{"unknown", "", finding.FixUnknown, true},
		{"", "", finding.FixUnknown, true},
		{"not_affected", "", finding.FixUnknown, false},
	}
	for _, tt := range tests {
		got, affected := fixState(tt.status, tt.fixed)
		if got != tt.want || affected != tt.wantAffected {
			t.Errorf("fixState(%q, %q) = %q, %v; want %q, %v",
				tt.status, tt.fixed, got, affected, tt.want, tt.wantAffected)
		}
	}
}

func FuzzParseReport(f *testing.F) {
	f.Add([]byte(sampleReport))
	f.Add([]byte(`{"SchemaVersion": 2}`))
	f.Add([]byte(`{"SchemaVersion": 2, "Results": null}`))
	f.Add([]byte(`{"SchemaVersion": 2, "Metadata": {"OS": null}, "Results": [{}]}`))
	f.Add([]byte(""))
	f.Add([]byte("{"))
	if seeds, err := filepath.Glob(filepath.Join("testdata", "*.json")); err == nil {
		for _, name := range seeds {
			if data, err := os.ReadFile(name); err == nil {
				f.Add(data)
			}
		}
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := parseReport(data)
		if err != nil {
			return
		}
		_ = rep.osName()
		_ = rep.hasOSPackages()
		for _, fd := range rep.findings("/scan/root") {
			if fd.ID == "" || fd.Package == "" {
				t.Fatalf("finding without id or package: %+v", fd)
			}
			if fd.Severity < finding.Unknown || fd.Severity > finding.Critical {
				t.Fatalf("finding with severity %d", fd.Severity)
			}
			for _, v := range fd.FixedVersions {
				if v == "" || strings.TrimSpace(v) != v {
					t.Fatalf("fixed version %q not trimmed", v)
				}
			}
		}
	})
}
