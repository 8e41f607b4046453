package policy

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/scan-gate/scan-gate/gate/finding"
)

// TestExamplePolicy keeps example.toml honest: it parses, every key of the schema appears
// in it, and its values are the defaults its comments claim.
func TestExamplePolicy(t *testing.T) {
	p, err := Load("example.toml")
	if err != nil {
		t.Fatal(err)
	}

	want := Default()
	want.Exceptions = []Exception{{
		ID:      "CVE-2023-38545",
		Images:  []string{"/shared/containers/climate/**", "/shared/containers/wrf-*.sif"},
		Expires: Date{2027, time.January, 31},
		Reason:  "curl SOCKS5 proxy is not used by these images; ticket HPC-1234 (J. Admin)",
	}}
	want.Scopes = []Scope{{
		Name: "pilot-partition",
		Match: Match{
			Images:     []string{"/shared/**"},
			Groups:     []string{"hpc-staff", "research-*"},
			Partitions: []string{"pilot"},
		},
		Mode: ModeAudit,
		Thresholds: Thresholds{
			Block: finding.High, Warn: finding.Medium, FixableOnly: true,
		},
	}}
	if !reflect.DeepEqual(p, want) {
		var got, wanted bytes.Buffer
		_ = p.WriteEffective(&got)
		_ = want.WriteEffective(&wanted)
		t.Errorf("example.toml:\n%s\nwant (defaults plus the examples):\n%s", &got, &wanted)
	}

	lines := indexKeys(string(mustRead(t, "example.toml")))
	for key := range knownKeys {
		if _, ok := lines[key]; !ok {
			t.Errorf("example.toml lacks key %s", key)
		}
	}
}

// TestExampleExceptionAndScope checks that the examples do what their comments say.
func TestExampleExceptionAndScope(t *testing.T) {
	p, err := Load("example.toml")
	if err != nil {
		t.Fatal(err)
	}
	scan := &finding.Scan{Findings: []finding.Finding{criticalFixed}}

	climate := Subject{Image: "/shared/containers/climate/v2/wrf.sif", User: "alice"}
	if v := p.Evaluate(scan, climate, today); v.Action != Allow || len(v.Excepted) != 1 {
		t.Errorf("climate image: %s with %d excepted, want allow by exception",
			v.Action, len(v.Excepted))
	}
	after := time.Date(2027, time.February, 1, 0, 0, 0, 0, time.UTC)
	v := p.Evaluate(scan, climate, after)
	if v.Action != Block || !strings.Contains(v.Message(climate.Image), "expired on 2027-01-31") {
		t.Errorf("after expiry: %s", v.Message(climate.Image))
	}

	pilot := Subject{Image: "/shared/bio/blast.sif", User: "bob", Partition: "pilot",
		Groups: []string{"research-bio"}}
	if v := p.Evaluate(scan, pilot, today); v.Scope != "pilot-partition" || v.Action != Audit {
		t.Errorf("pilot job: scope %q, action %s; want pilot-partition, audit", v.Scope,
			v.Action)
	}
}
