package policy

import (
	"fmt"
	"testing"
	"time"

	"github.com/scan-gate/scan-gate/gate/finding"
)

func TestMessage(t *testing.T) {
	second := criticalFixed
	second.ID, second.Package, second.Installed = "CVE-2023-38546", "libcurl4", "7.88.1-10+deb12u1"
	var many []finding.Finding
	for i := range 7 {
		f := highFixed
		f.ID = fmt.Sprintf("CVE-2024-100%d", i)
		many = append(many, f)
	}
	const next = "; next step: " + DefaultNextStep

	tests := []struct {
		name     string
		policy   string
		findings []finding.Finding
		now      time.Time
		want     string
	}{
		{"block", "", []finding.Finding{second, criticalFixed, mediumFixed}, today,
			`image /shared/climate/wrf.sif blocked: 2 critical vulnerabilities at or above ` +
				`the "critical" threshold: CVE-2023-38545 in curl 7.88.1-10+deb12u1 ` +
				`(fixed in 7.88.1-10+deb12u4), CVE-2023-38546 in libcurl4 7.88.1-10+deb12u1 ` +
				`(fixed in 7.88.1-10+deb12u4)` + next},
		{"block, mixed severities, fixable only",
			"[thresholds]\nblock = \"high\"\nwarn = \"high\"\nfixable_only = true",
			[]finding.Finding{highFixed, criticalFixed}, today,
			`image /shared/climate/wrf.sif blocked: 2 vulnerabilities (1 critical, 1 high) ` +
				`with fixes at or above the "high" threshold: CVE-2023-38545 in curl ` +
				`7.88.1-10+deb12u1 (fixed in 7.88.1-10+deb12u4), CVE-2024-1000 in openssl ` +
				`3.0.11-1 (fixed in 3.0.13-1)` + next},
		{"block, at most five named", "", append([]finding.Finding{criticalUnfixed}, many...),
			today,
			`image /shared/climate/wrf.sif blocked: 1 critical vulnerability at or above the ` +
				`"critical" threshold: CVE-2024-0001 in glibc 2.36-9 (no fix yet)` + next},
		{"warn", "[thresholds]\nwarn = \"high\"", many, today,
			`image /shared/climate/wrf.sif allowed with a warning: 7 high vulnerabilities ` +
				`at or above the "high" warn threshold: CVE-2024-1000 in openssl 3.0.11-1 ` +
				`(fixed in 3.0.13-1), CVE-2024-1001 in openssl 3.0.11-1 (fixed in 3.0.13-1), ` +
				`CVE-2024-1002 in openssl 3.0.11-1 (fixed in 3.0.13-1), CVE-2024-1003 in ` +
				`openssl 3.0.11-1 (fixed in 3.0.13-1), CVE-2024-1004 in openssl 3.0.11-1 ` +
				`(fixed in 3.0.13-1), and 2 more` + next},
		{"warn mode", `mode = "warn"`, []finding.Finding{criticalUnfixed}, today,
			`image /shared/climate/wrf.sif allowed with a warning (policy mode "warn"; ` +
				`enforce mode would block): 1 critical vulnerability at or above the ` +
				`"critical" threshold: CVE-2024-0001 in glibc 2.36-9 (no fix yet)` + next},
		{"audit mode", `mode = "audit"`, []finding.Finding{highFixed}, today,
			`image /shared/climate/wrf.sif allowed (audit only; enforce mode would warn): ` +
				`1 high vulnerability at or above the "high" warn threshold: CVE-2024-1000 ` +
				`in openssl 3.0.11-1 (fixed in 3.0.13-1)` + next},
		{"allow with exception", exceptionCurl, []finding.Finding{criticalFixed}, today,
			`image /shared/climate/wrf.sif allowed (1 finding covered by exceptions)`},
		{"expired exception", exceptionCurl, []finding.Finding{criticalFixed},
			today.AddDate(0, 0, 1),
			`image /shared/climate/wrf.sif blocked: 1 critical vulnerability at or above ` +
				`the "critical" threshold: CVE-2023-38545 in curl 7.88.1-10+deb12u1 ` +
				`(fixed in 7.88.1-10+deb12u4); exception for CVE-2023-38545 expired on ` +
				`2026-12-01` + next},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustParse(t, tt.policy)
			v := p.Evaluate(&finding.Scan{Findings: tt.findings}, alice, tt.now)
			if got := v.Message(alice.Image); got != tt.want {
				t.Errorf("Message:\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestNoDecisionMessage(t *testing.T) {
	tests := []struct {
		name        string
		policy      string
		unscannable bool
		want        string
	}{
		{"timeout blocks", "", false, "image /shared/x.sif blocked: no decision could be " +
			"made (scan timed out after 2m); next step: " + DefaultNoDecisionStep},
		{"unscannable allowed", "[on]\nunscannable = \"allow\"", true,
			"image /shared/x.sif allowed: the image could not be scanned " +
				"(scan timed out after 2m)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := mustParse(t, tt.policy).NoDecision(alice, tt.unscannable,
				"scan timed out after 2m")
			if got := v.Message("/shared/x.sif"); got != tt.want {
				t.Errorf("Message:\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}
