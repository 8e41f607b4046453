package qscanner

import (
	"reflect"
	"strings"
	"testing"

	"github.com/scan-gate/scan-gate/gate/finding"
)

// The SARIF shape is known from one parser only: other spellings are read too.
func TestParseSARIFDefensively(t *testing.T) {
	report := `{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"qscanner","rules":[
	  {"id":"qid-376835","shortDescription":{"text":"OpenSSL update"},
	   "properties":{"severity":"4","cve-ids":"CVE-2023-5678, CVE-2023-5363"}},
	  {"id":"38170","properties":{"customerSeverity":2}},
	  {"id":"1001","properties":{"severity":9,"cve-ids":[]}}
	 ]}},
	 "results":[
	  {"ruleId":"qid-376835","message":{"text":"m"},
	   "properties":{"vulnerableSoftware":[
	     {"name":"libssl3","installedVersion":"3.0.9-1","fixedVersion":"3.0.11-1~deb12u2"},
	     {"name":"openssl","installedVersion":"3.0.9-1","fixedVersion":"None"}]}},
	  {"ruleId":"38170","message":{"text":"SSL certificate expired"},
	   "properties":{"QID":"38170"}},
	  {"ruleId":"1001","message":{"text":"odd"},"properties":{"QID":1001,
	   "vulnerableSoftware":[{"name":"x","installedVersion":"1"}]}}
	 ]}]}`
	got, err := parseSARIF([]byte(report), defaultSeverity)
	if err != nil {
		t.Fatal(err)
	}
	want := []finding.Finding{
		{ID: "CVE-2023-5363", Aliases: []string{"QID-376835"},
			Title: "OpenSSL update", Package: "libssl3", Installed: "3.0.9-1",
			FixedVersions: []string{"3.0.11-1~deb12u2"}, FixState: finding.Fixed,
			Severity: finding.High, QualysSeverity: 4},
		{ID: "CVE-2023-5363", Aliases: []string{"QID-376835"},
			Title: "OpenSSL update", Package: "openssl", Installed: "3.0.9-1",
			FixState: finding.FixUnknown, Severity: finding.High, QualysSeverity: 4},
		{ID: "CVE-2023-5678", Aliases: []string{"QID-376835"},
			Title: "OpenSSL update", Package: "libssl3", Installed: "3.0.9-1",
			FixedVersions: []string{"3.0.11-1~deb12u2"}, FixState: finding.Fixed,
			Severity: finding.High, QualysSeverity: 4},
		{ID: "CVE-2023-5678", Aliases: []string{"QID-376835"},
			Title: "OpenSSL update", Package: "openssl", Installed: "3.0.9-1",
			FixState: finding.FixUnknown, Severity: finding.High, QualysSeverity: 4},
		{ID: "QID-38170", Title: "SSL certificate expired", FixState: finding.FixUnknown,
			Severity: finding.Low, QualysSeverity: 2},
		{ID: "QID-1001", Title: "odd", Package: "x", Installed: "1",
			FixState: finding.FixUnknown, Severity: finding.Unknown},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("findings\n got %+v\nwant %+v", got, want)
	}
}

func TestParseSARIFRefuses(t *testing.T) {
	tests := []struct{ name, report, want string }{
		{"empty", " \n", "empty report"},
		{"garbage", "<html>", "decoding SARIF report"},
		{"no runs", `{"version":"2.1.0"}`, "no runs"},
		{"no QID", `{"runs":[{"results":[{"ruleId":"abc"}]}]}`, "no QID"},
		{"bad packages", `{"runs":[{"results":[{"ruleId":"1",` +
			`"properties":{"vulnerableSoftware":"curl"}}]}]}`, "vulnerableSoftware"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseSARIF([]byte(tt.report), defaultSeverity)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one saying %q", err, tt.want)
			}
		})
	}
}

func TestUpstream(t *testing.T) {
	tests := map[string][2]string{
		"pkg:deb/debian/libc6@2.36-9?arch=amd64&upstream=glibc":          {"glibc", ""},
		"pkg:deb/debian/libc6@2.36-9?upstream=glibc%402.36-9&arch=amd64": {"glibc", "2.36-9"},
		"pkg:deb/debian/curl@7.88.1?arch=amd64":                          {"", ""},
		"pkg:npm/left-pad@1.0.0?upstream=x":                              {"", ""},
		"pkg:rpm/redhat/openssl-libs@3.0.7?upstream=openssl-3.0.7.src.rpm": {
			"openssl-3.0.7.src.rpm", ""},
	}
	for purl, want := range tests {
		if name, version := upstream(purl); name != want[0] || version != want[1] {
			t.Errorf("upstream(%s) = %q, %q; want %q, %q", purl, name, version, want[0],
				want[1])
		}
	}
}
