package report

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/scan-gate/scan-gate/gate"
	"github.com/scan-gate/scan-gate/gate/finding"
	"github.com/scan-gate/scan-gate/policy"
)

func TestNewDir(t *testing.T) {
	out := t.TempDir()
	var got []string
	for _, img := range []string{"/shared/a/app.sif", "/shared/b/app.sif", "/", ".hidden"} {
		dir, err := NewDir(out, img)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(dir, ScannerDir)); err != nil {
			t.Error(err)
		}
		got = append(got, filepath.Base(dir))
	}
	want := []string{"app.sif", "app.sif-2", "image", "image.hidden"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("dirs %q, want %q", got, want)
	}
}

func TestWrite(t *testing.T) {
	p, err := policy.Parse("p.toml", []byte(`
[thresholds]
block = "critical"
warn = "medium"
[scanner.qscanner.severity]
level3 = "high"
[[exception]]
id = "CVE-2023-38546"
expires = 2099-01-01
reason = "cookies unused"
`))
	if err != nil {
		t.Fatal(err)
	}
	scan := &finding.Scan{Scanner: "qscanner", ScannerVersion: "sha256:abc",
		ScannedAt: time.Now(), PlatformVerdict: "allow", Findings: []finding.Finding{
			{ID: "CVE-2023-38545", Package: "curl", Installed: "1", FixedVersions: []string{"2"},
				FixState: finding.Fixed, Severity: finding.Critical, QualysSeverity: 5},
			{ID: "CVE-2023-5363", Package: "libssl3", Installed: "3", FixState: finding.NotFixed,
				Severity: finding.Medium, QualysSeverity: 3},
			{ID: "CVE-2023-38546", Package: "curl", Installed: "1", Severity: finding.Low,
				QualysSeverity: 2},
		}}
	who := policy.Subject{Image: "/shared/app.sif"}
	v := p.Evaluate(scan, who, time.Now())
	res := gate.Result{Image: who.Image, Action: v.Action, Verdict: v, Scan: scan, Cache: "miss"}

	dir, err := NewDir(t.TempDir(), who.Image)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, ScannerDir, "qscanner-x-Report.sarif.json"), []byte("{}"),
		0o644)
	if err := Write(dir, res, p, "sha256:digest", "1.2.3"); err != nil {
		t.Fatal(err)
	}

	var verdict struct {
		Image        string
		Policy       string `json:"policy_digest"`
		Scanned      bool
		ScannerFiles []string `json:"scanner_files"`
		Result       struct {
			Action  string
			Verdict struct {
				Platform string `json:"platform_verdict"`
			}
		}
	}
	readJSON(t, filepath.Join(dir, VerdictFile), &verdict)
	if !verdict.Scanned || verdict.Policy != "sha256:digest" || verdict.Result.Action !=
		"block" || verdict.Result.Verdict.Platform != "allow" ||
		!reflect.DeepEqual(verdict.ScannerFiles,
			[]string{"scanner/qscanner-x-Report.sarif.json"}) {
		t.Errorf("verdict.json: %+v", verdict)
	}

	var log struct {
		Version string
		Runs    []struct {
			Tool struct {
				Driver struct{ Name, Version string }
			}
			Results []struct {
				RuleID       string
				Level        string
				Suppressions []struct{ Justification string }
				Properties   map[string]any
			}
			Invocations []struct{ ExecutionSuccessful bool }
		}
	}
	readJSON(t, filepath.Join(dir, SARIFFile), &log)
	run := log.Runs[0]
	if log.Version != "2.1.0" || run.Tool.Driver.Name != "scan-gate" ||
		run.Tool.Driver.Version != "1.2.3" || !run.Invocations[0].ExecutionSuccessful {
		t.Errorf("SARIF header: %+v", log)
	}
	type res3 struct{ ID, Level, Severity, Suppressed string }
	var got []res3
	for _, r := range run.Results {
		s := ""
		if len(r.Suppressions) > 0 {
			s = r.Suppressions[0].Justification
		}
		got = append(got, res3{r.RuleID, r.Level, r.Properties["severity"].(string), s})
	}
	// The level-3 finding is high by this policy's table, so it warns.
	want := []res3{{"CVE-2023-38545", "error", "critical", ""},
		{"CVE-2023-5363", "warning", "high", ""},
		{"CVE-2023-38546", "note", "low", "cookies unused"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("results %+v\nwant %+v", got, want)
	}
}

func TestWriteNoDecision(t *testing.T) {
	p := policy.Default()
	v := p.NoDecision(policy.Subject{Image: "x.sif"}, false, "scanner crashed")
	res := gate.Result{Image: "x.sif", Action: v.Action, Verdict: v, Error: "scanner crashed"}
	dir, err := NewDir(t.TempDir(), "x.sif")
	if err != nil {
		t.Fatal(err)
	}
	if err := Write(dir, res, p, "d", "v"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, ScannerDir)); !os.IsNotExist(err) {
		t.Errorf("empty scanner dir kept: %v", err)
	}
	var log struct {
		Runs []struct {
			Results     []any
			Invocations []struct {
				ExecutionSuccessful bool
				Notifications       []struct {
					Message struct{ Text string }
				} `json:"toolExecutionNotifications"`
			}
		}
	}
	readJSON(t, filepath.Join(dir, SARIFFile), &log)
	inv := log.Runs[0].Invocations[0]
	if inv.ExecutionSuccessful || len(log.Runs[0].Results) != 0 ||
		inv.Notifications[0].Message.Text != "scanner crashed" {
		t.Errorf("no-decision SARIF: %+v", log)
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
