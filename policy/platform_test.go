package policy

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/scan-gate/scan-gate/gate/finding"
)

// qualysFinding is a QScanner finding of Qualys level 3 (serious), which the default table
// maps to medium.
var qualysFinding = finding.Finding{ID: "CVE-2023-5363", Aliases: []string{"QID-9001"},
	Package: "libssl3", Installed: "3.0.9-1", FixedVersions: []string{"3.0.11-1~deb12u2"},
	FixState: finding.Fixed, Severity: finding.Medium, QualysSeverity: 3}

func TestPlatformVerdict(t *testing.T) {
	tests := []struct {
		name     string
		policy   string
		verdict  string
		findings []finding.Finding
		want     Action
		decides  bool
		message  string
	}{
		{"deny blocks", "", "deny", nil, Block, true,
			"blocked: the Qualys platform's policy evaluation denied it (DENY); next step: "},
		{"deny lists the worst findings", "", "deny", []finding.Finding{highFixed}, Block, true,
			`denied it (DENY); its report lists 1 high vulnerability at or above the "high" ` +
				`warn threshold: CVE-2024-1000 in openssl 3.0.11-1 (fixed in 3.0.13-1); next`},
		{"deny in audit mode", `mode = "audit"`, "deny", nil, Audit, true,
			"allowed (audit only): the Qualys platform's policy evaluation denied it"},
		{"deny in warn mode", `mode = "warn"`, "deny", nil, Warn, true,
			"allowed with a warning: the Qualys platform's policy evaluation denied it"},
		{"deny ignored", "[scanner.qscanner]\non_deny = \"allow\"", "deny", nil, Allow, false,
			"allowed"},
		{"deny only warns", "[scanner.qscanner]\non_deny = \"warn\"", "deny", nil, Warn, true,
			"allowed with a warning: the Qualys"},
		{"audit", "", "audit", nil, Audit, true, "allowed (audit only): the Qualys " +
			"platform's policy evaluation returned AUDIT"},
		{"allow", "", "allow", nil, Allow, false, "allowed"},
		{"allow, but local thresholds block", "", "allow",
			[]finding.Finding{criticalFixed}, Block, false,
			"blocked: 1 critical vulnerability at or above"},
		{"allow, local thresholds off", "[scanner.qscanner]\nlocal_thresholds = false",
			"allow", []finding.Finding{criticalFixed}, Allow, true,
			"allowed: the Qualys platform's policy evaluation allowed it (ALLOW)"},
		{"deny stricter than a local warning", "", "deny", []finding.Finding{highFixed},
			Block, true, "denied it"},
		{"unknown verdict blocks", "", "maybe", nil, Block, true,
			`returned an unknown verdict "maybe", taken as a block`},
		{"no platform verdict", "", "", []finding.Finding{highFixed}, Warn, false,
			"allowed with a warning: 1 high vulnerability"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustParse(t, tt.policy)
			scan := &finding.Scan{Findings: tt.findings, PlatformVerdict: tt.verdict}
			v := p.Evaluate(scan, alice, today)
			if v.Action != tt.want || v.PlatformDecides != tt.decides {
				t.Errorf("action %s, platform decides %v; want %s, %v (reasons %q)",
					v.Action, v.PlatformDecides, tt.want, tt.decides, v.Reasons)
			}
			if v.Platform != tt.verdict {
				t.Errorf("platform verdict %q, want %q", v.Platform, tt.verdict)
			}
			if msg := v.Message(alice.Image); !strings.Contains(msg, tt.message) {
				t.Errorf("message %q\nwant it to contain %q", msg, tt.message)
			}
		})
	}
}

// The Qualys severity table applies at every evaluation: editing it changes the verdict of
// a cached scan without a rescan.
func TestQualysSeverityTable(t *testing.T) {
	scan := &finding.Scan{Findings: []finding.Finding{qualysFinding}}
	if v := mustParse(t, "").Evaluate(scan, alice, today); v.Action != Allow {
		t.Errorf("level 3 by default: %s, want allow (level 3 is medium)", v.Action)
	}
	p := mustParse(t, "[scanner.qscanner.severity]\nlevel3 = \"critical\"\n")
	v := p.Evaluate(scan, alice, today)
	if v.Action != Block || len(v.Blocking) != 1 || v.Blocking[0].Severity != finding.Critical {
		t.Errorf("level3 = critical: %s %v, want a block on a critical finding", v.Action,
			v.Blocking)
	}
}

func TestScannerKeys(t *testing.T) {
	p := mustParse(t, `
[scanner]
name = "qscanner"

[scanner.grype]
path = "/opt/grype/bin/grype"
db_dir = "/srv/grype-db"
max_db_age = "0s"
extra_args = ["--only-fixed"]

[scanner.qscanner]
path = "/opt/qualys/qscanner"
mode = "get-report"
pod = "EU2"
token_file = "/etc/scan-gate/qualys.token"
scan_types = ["pkg", "secret"]
policy_tags = ["hpc", "prod"]
exclude_dirs = ["/opt/data"]
cache_dir = "/var/cache/qscanner"
offline_scan = false
sbom_matcher = "grype"
extra_args = ["--log-level", "debug"]
on_deny = "warn"
on_audit = "allow"
local_thresholds = false

[scanner.qscanner.exit_codes]
allow = [0, 3]
deny = [42]
audit = []

[scanner.qscanner.severity]
level1 = "unknown"
level5 = "CRITICAL"
`)
	wantGrype := Grype{Path: "/opt/grype/bin/grype", DBDir: "/srv/grype-db",
		ExtraArgs: []string{"--only-fixed"}}
	if !reflect.DeepEqual(p.Scanner.Grype, wantGrype) {
		t.Errorf("grype %+v, want %+v", p.Scanner.Grype, wantGrype)
	}
	q := p.Scanner.QScanner
	wantQ := QScanner{Path: "/opt/qualys/qscanner", Mode: QScannerGetReport, Pod: "EU2",
		TokenFile: "/etc/scan-gate/qualys.token", ScanTypes: []string{"pkg", "secret"},
		PolicyTags: []string{"hpc", "prod"}, ExcludeDirs: []string{"/opt/data"},
		CacheDir: "/var/cache/qscanner", SBOMMatcher: "grype",
		ExtraArgs: []string{"--log-level", "debug"}, OnDeny: Warn, OnAudit: Allow,
		ExitCodes: QScannerExitCodes{Allow: []int{0, 3}, Deny: []int{42}},
		Severities: [5]finding.Severity{finding.Unknown, finding.Low, finding.Medium,
			finding.High, finding.Critical}}
	if !reflect.DeepEqual(q, wantQ) {
		t.Errorf("qscanner\n got %+v\nwant %+v", q, wantQ)
	}

	var out bytes.Buffer
	if err := p.WriteEffective(&out); err != nil {
		t.Fatal(err)
	}
	again := mustParse(t, out.String())
	if !reflect.DeepEqual(again.Scanner, p.Scanner) || again.Digest() != p.Digest() {
		t.Errorf("effective policy does not parse back the same:\n%s", &out)
	}
}

func TestScannerKeyErrors(t *testing.T) {
	tests := []struct{ name, text, want string }{
		{"qscanner without pod", "[scanner]\nname = \"qscanner\"\n",
			`scanner.qscanner.pod: QScanner mode "evaluate-policy" uploads to the Qualys ` +
				"platform and needs its pod"},
		{"unknown pod", "[scanner.qscanner]\npod = \"MARS1\"\n", `unknown Qualys pod "MARS1"`},
		{"unknown mode", "[scanner.qscanner]\nmode = \"upload\"\n",
			`unknown QScanner mode "upload"`},
		{"unknown scan type", "[scanner.qscanner]\nscan_types = [\"pkg\", \"virus\"]\n",
			`unknown scan type "virus"`},
		{"no scan type", "[scanner.qscanner]\nscan_types = []\n", "want at least one"},
		{"comma in a tag", "[scanner.qscanner]\npolicy_tags = [\"a,b\"]\n",
			"without commas"},
		{"unknown matcher", "[scanner.qscanner]\nsbom_matcher = \"clair\"\n",
			`unknown SBOM matcher "clair" (want one of trivy, grype)`},
		{"relative token file", "[scanner.qscanner]\ntoken_file = \"token\"\n",
			"want an absolute path"},
		{"exit code twice", "[scanner.qscanner.exit_codes]\ndeny = [0]\n",
			"exit status 0 is also in allow"},
		{"exit code out of range", "[scanner.qscanner.exit_codes]\naudit = [300]\n",
			"want an exit status from 0 to 255"},
		{"no allow code", "[scanner.qscanner.exit_codes]\nallow = []\n",
			"want at least one exit status"},
		{"bad severity", "[scanner.qscanner.severity]\nlevel4 = \"severe\"\n",
			`scanner.qscanner.severity.level4: unknown severity "severe"`},
		{"bad on_deny", "[scanner.qscanner]\non_deny = \"ignore\"\n",
			`unknown action "ignore"`},
		{"unknown key", "[scanner.qscanner]\ntoken = \"x\"\n", "scanner.qscanner.token: " +
			"unknown key"},
		{"negative age", "[scanner.grype]\nmax_db_age = \"-1h\"\n", "scanner.grype.max_db_age"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("test.toml", []byte(tt.text))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v\nwant it to contain %q", err, tt.want)
			}
		})
	}
}
