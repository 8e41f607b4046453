package policy

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scan-gate/scan-gate/gate/finding"
)

// Findings used across the evaluation tests.
var (
	criticalFixed = finding.Finding{ID: "CVE-2023-38545", Package: "curl",
		Installed: "7.88.1-10+deb12u1", FixedVersions: []string{"7.88.1-10+deb12u4"},
		FixState: finding.Fixed, Severity: finding.Critical}
	criticalUnfixed = finding.Finding{ID: "CVE-2024-0001", Package: "glibc",
		Installed: "2.36-9", FixState: finding.NotFixed, Severity: finding.Critical}
	highFixed = finding.Finding{ID: "CVE-2024-1000", Aliases: []string{"GHSA-aaaa-bbbb-cccc"},
		Package: "openssl", Installed: "3.0.11-1", FixedVersions: []string{"3.0.13-1"},
		FixState: finding.Fixed, Severity: finding.High}
	mediumFixed = finding.Finding{ID: "CVE-2024-2000", Package: "zlib", Installed: "1.2.13",
		FixedVersions: []string{"1.3"}, FixState: finding.Fixed, Severity: finding.Medium}
)

var (
	today = time.Date(2026, time.December, 1, 9, 30, 0, 0, time.UTC)
	alice = Subject{Image: "/shared/climate/wrf.sif", User: "alice",
		Groups: []string{"users", "climate"}, Partition: "gpu", Account: "proj1", JobID: "42"}
)

func mustParse(t *testing.T, text string) *Policy {
	t.Helper()
	p, err := Parse("test.toml", []byte(text))
	if err != nil {
		t.Fatalf("Parse:\n%v", err)
	}
	return p
}

func ids(fs []finding.Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.ID)
	}
	return out
}

const exceptionCurl = `
[[exception]]
id = "CVE-2023-38545"
images = ["/shared/climate/**"]
expires = 2026-12-01
reason = "SOCKS5 not used"
`

func TestEvaluate(t *testing.T) {
	tests := []struct {
		name     string
		policy   string
		findings []finding.Finding
		who      Subject
		now      time.Time

		action   Action
		scope    string
		blocking []string
		warning  []string
		excepted []string
		expired  []string
		counts   map[string]int
		reason   string // one of the reasons contains this
	}{
		{name: "no findings", action: Allow, counts: map[string]int{},
			reason: `no findings at or above the warn threshold "high"`},
		{name: "critical blocks by default",
			findings: []finding.Finding{criticalFixed, mediumFixed},
			action:   Block, blocking: []string{"CVE-2023-38545"},
			counts: map[string]int{"critical": 1, "medium": 1}},
		{name: "high warns by default", findings: []finding.Finding{highFixed},
			action: Warn, warning: []string{"CVE-2024-1000"}, counts: map[string]int{"high": 1}},
		{name: "medium is allowed by default", findings: []finding.Finding{mediumFixed},
			action: Allow, counts: map[string]int{"medium": 1}},
		{name: "lower thresholds", policy: "[thresholds]\nblock = \"high\"\nwarn = \"medium\"",
			findings: []finding.Finding{mediumFixed, highFixed}, action: Block,
			blocking: []string{"CVE-2024-1000"}, warning: []string{"CVE-2024-2000"},
			counts: map[string]int{"high": 1, "medium": 1}},
		{name: "fixable_only drops unfixed findings", policy: "[thresholds]\nfixable_only = true",
			findings: []finding.Finding{criticalUnfixed, mediumFixed}, action: Allow,
			counts: map[string]int{"medium": 1}},
		{name: "fixable_only keeps fixed findings", policy: "[thresholds]\nfixable_only = true",
			findings: []finding.Finding{criticalUnfixed, criticalFixed}, action: Block,
			blocking: []string{"CVE-2023-38545"}, counts: map[string]int{"critical": 1}},
		{name: "exception applies", policy: exceptionCurl, who: alice,
			findings: []finding.Finding{criticalFixed}, action: Allow,
			excepted: []string{"CVE-2023-38545"}, counts: map[string]int{},
			reason: "exception for CVE-2023-38545 applies until 2026-12-01: SOCKS5 not used"},
		{name: "exception applies through its last day", policy: exceptionCurl, who: alice,
			now:      time.Date(2026, time.December, 1, 23, 59, 0, 0, time.UTC),
			findings: []finding.Finding{criticalFixed}, action: Allow,
			excepted: []string{"CVE-2023-38545"}, counts: map[string]int{}},
		{name: "exception glob does not match", policy: exceptionCurl,
			who:      Subject{Image: "/shared/bio/blast.sif"},
			findings: []finding.Finding{criticalFixed}, action: Block,
			blocking: []string{"CVE-2023-38545"}, counts: map[string]int{"critical": 1}},
		{name: "exception expired", policy: exceptionCurl, who: alice,
			now:      time.Date(2026, time.December, 2, 0, 0, 1, 0, time.UTC),
			findings: []finding.Finding{criticalFixed}, action: Block,
			blocking: []string{"CVE-2023-38545"}, expired: []string{"CVE-2023-38545"},
			counts: map[string]int{"critical": 1},
			reason: "exception for CVE-2023-38545 expired on 2026-12-01"},
		{name: "exception by alias, every image", policy: "[[exception]]\n" +
			"id = \"ghsa-aaaa-bbbb-cccc\"\nexpires = 2027-01-01\nreason = \"r\"",
			findings: []finding.Finding{highFixed}, action: Allow,
			excepted: []string{"CVE-2024-1000"}, counts: map[string]int{}},
		{name: "mode warn turns block into warn", policy: `mode = "warn"`,
			findings: []finding.Finding{criticalFixed}, action: Warn,
			blocking: []string{"CVE-2023-38545"}, counts: map[string]int{"critical": 1},
			reason: `mode "warn": warn instead of block`},
		{name: "mode audit turns block into audit", policy: `mode = "audit"`,
			findings: []finding.Finding{criticalFixed}, action: Audit,
			blocking: []string{"CVE-2023-38545"}, counts: map[string]int{"critical": 1}},
		{name: "mode audit turns warn into audit", policy: `mode = "audit"`,
			findings: []finding.Finding{highFixed}, action: Audit,
			warning: []string{"CVE-2024-1000"}, counts: map[string]int{"high": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustParse(t, tt.policy)
			now := tt.now
			if now.IsZero() {
				now = today
			}
			v := p.Evaluate(&finding.Scan{Findings: tt.findings}, tt.who, now)

			if v.Action != tt.action || v.Scope != tt.scope {
				t.Errorf("action, scope = %s, %q; want %s, %q", v.Action, v.Scope, tt.action,
					tt.scope)
			}
			check := func(what string, got, want []string) {
				if !slices.Equal(got, want) {
					t.Errorf("%s = %q, want %q", what, got, want)
				}
			}
			check("blocking", ids(v.Blocking), tt.blocking)
			check("warning", ids(v.Warning), tt.warning)
			var excepted, expired []string
			for _, e := range v.Excepted {
				excepted = append(excepted, e.Finding.ID)
			}
			for _, e := range v.Expired {
				expired = append(expired, e.Finding.ID)
			}
			check("excepted", excepted, tt.excepted)
			check("expired", expired, tt.expired)
			if !reflect.DeepEqual(v.Counts, tt.counts) {
				t.Errorf("counts = %v, want %v", v.Counts, tt.counts)
			}
			if tt.reason != "" && !slices.ContainsFunc(v.Reasons, func(r string) bool {
				return strings.Contains(r, tt.reason)
			}) {
				t.Errorf("reasons %q lack %q", v.Reasons, tt.reason)
			}
			if (v.NextStep != "") != (v.Action != Allow) {
				t.Errorf("next step %q with action %s", v.NextStep, v.Action)
			}
		})
	}
}

const scopes = `
[[scope]]
name = "staff-audit"
groups = ["hpc-*"]
mode = "audit"

[[scope]]
name = "gpu-strict"
partitions = ["gpu"]
accounts = ["proj*"]
[scope.thresholds]
block = "high"

[[scope]]
name = "bob"
users = ["bob"]
mode = "warn"

[[scope]]
name = "sandbox-images"
images = ["/scratch/**/*.sif"]
mode = "audit"
`

func TestEvaluateScopes(t *testing.T) {
	tests := []struct {
		name   string
		who    Subject
		scope  string
		action Action
	}{
		{"no scope matches", Subject{Image: "/shared/x.sif", User: "carol"}, "", Warn},
		{"partition and account", alice, "gpu-strict", Block},
		{"account must match too", Subject{Partition: "gpu", Account: "other"}, "", Warn},
		{"group glob, first match wins", Subject{User: "bob", Partition: "gpu",
			Account: "proj1", Groups: []string{"users", "hpc-admin"}}, "staff-audit", Audit},
		{"user", Subject{User: "bob", Partition: "cpu"}, "bob", Warn},
		{"image with ** glob", Subject{Image: "/scratch/u/carol/a/b/x.sif"}, "sandbox-images",
			Audit},
		{"unknown values match no list", Subject{}, "", Warn},
	}
	p := mustParse(t, scopes)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := p.Evaluate(&finding.Scan{Findings: []finding.Finding{highFixed}}, tt.who, today)
			if v.Scope != tt.scope || v.Action != tt.action {
				t.Errorf("scope, action = %q, %s; want %q, %s", v.Scope, v.Action, tt.scope,
					tt.action)
			}
		})
	}
}

func TestNoDecision(t *testing.T) {
	tests := []struct {
		name        string
		policy      string
		who         Subject
		unscannable bool
		action      Action
	}{
		{"default blocks", "", alice, false, Block},
		{"unscannable default blocks", "", alice, true, Block},
		{"no_decision allow", "[on]\nno_decision = \"allow\"", alice, false, Allow},
		{"unscannable warn", "[on]\nunscannable = \"warn\"", alice, true, Warn},
		{"unscannable is its own rule", "[on]\nno_decision = \"allow\"", alice, true, Block},
		{"audit scope softens", scopes, Subject{Groups: []string{"hpc-x"}}, false, Audit},
		{"warn mode softens", `mode = "warn"`, alice, false, Warn},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustParse(t, tt.policy)
			v := p.NoDecision(tt.who, tt.unscannable, "scan timed out after 2m")
			if v.Action != tt.action || !v.NoDecision || v.Unscannable != tt.unscannable {
				t.Errorf("got action %s, no decision %t, unscannable %t; want %s, true, %t",
					v.Action, v.NoDecision, v.Unscannable, tt.action, tt.unscannable)
			}
			if v.Reasons[0] != "scan timed out after 2m" {
				t.Errorf("reasons = %q, want the reason first", v.Reasons)
			}
			// Trying again helps with a timeout, not with an image that cannot be scanned.
			want := p.Message.NoDecisionStep
			if tt.unscannable {
				want = p.Message.NextStep
			}
			if tt.action != Allow && v.NextStep != want {
				t.Errorf("next step = %q, want %q", v.NextStep, want)
			}
		})
	}
	if v := Default().Evaluate(nil, alice, today); !v.NoDecision || v.Action != Block {
		t.Errorf("Evaluate(nil scan) = %+v, want a no-decision block", v)
	}
}

func TestStricter(t *testing.T) {
	order := []Action{Allow, Audit, Warn, Block}
	for i, a := range order {
		for j, b := range order {
			want := order[max(i, j)]
			if got := Stricter(a, b); got != want {
				t.Errorf("Stricter(%s, %s) = %s, want %s", a, b, got, want)
			}
		}
	}
	if got := Stricter(Warn, "bogus"); got != "bogus" {
		t.Errorf("Stricter(warn, bogus) = %s; an unknown action must rank as block", got)
	}
}

func TestProceeds(t *testing.T) {
	for action, want := range map[Action]bool{
		Allow: true, Audit: true, Warn: true, Block: false, "": false, "deny": false,
	} {
		if got := action.Proceeds(); got != want {
			t.Errorf("%q.Proceeds() = %t, want %t", action, got, want)
		}
	}
}

func TestMatchImage(t *testing.T) {
	tests := []struct {
		pattern, image string
		want           bool
	}{
		{"/shared/*.sif", "/shared/x.sif", true},
		{"/shared/*.sif", "/shared/a/x.sif", false},
		{"/shared/**", "/shared/a/b/x.sif", true},
		{"/shared/**/x.sif", "/shared/x.sif", true},
		{"/shared/**/x.sif", "/shared/a/b/x.sif", true},
		{"/shared/**/x.sif", "/shared/a/b/y.sif", false},
		{"**/*.sif", "/any/where/x.sif", true},
		{"/a/**/**/b", "/a/b", true},
		{"/shared/wrf-[0-9]*.sif", "/shared/wrf-4.5.sif", true},
	}
	for _, tt := range tests {
		if got := matchImage(tt.pattern, tt.image); got != tt.want {
			t.Errorf("matchImage(%q, %q) = %t, want %t", tt.pattern, tt.image, got, tt.want)
		}
	}
}
