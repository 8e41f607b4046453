package stats

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scan-gate/scan-gate/cache"
	"github.com/scan-gate/scan-gate/gate/finding"
)

// auditLog returns an audit log of launch and prewarm lines, a line that is not JSON, a
// line of another message and a blank line.
func auditLog(t *testing.T) *strings.Reader {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.NewReader(string(data))
}

func TestRead(t *testing.T) {
	s, err := Read(auditLog(t), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Total() != 5 || s.Decisions["block"] != 4 || s.Decisions["allow"] != 1 {
		t.Errorf("decisions %v", s.Decisions)
	}
	if s.NoDecision != 2 || s.Users != 3 || s.Malformed != 1 || s.Prewarmed != 2 {
		t.Errorf("no decision %d, users %d, malformed %d, prewarmed %d", s.NoDecision,
			s.Users, s.Malformed, s.Prewarmed)
	}
	if s.Cache["hit"] != 2 || s.Cache["miss"] != 2 || s.Cache["none"] != 1 {
		t.Errorf("cache %v", s.Cache)
	}
	launch, pre := s.Scans[OriginLaunch], s.Scans[OriginPrewarm]
	// The background rescan a launch started is a launch's scan, not a decision.
	if launch.Count != 3 || launch.Errors != 1 || pre.Count != 2 || pre.Errors != 1 {
		t.Errorf("scans: launch %+v, prewarm %+v", launch, pre)
	}
	if q := launch.Quantile(0.5); q != 3 {
		t.Errorf("median launch scan %v, want 3", q)
	}
	if q := launch.Quantile(1); q != 120 {
		t.Errorf("longest launch scan %v, want 120", q)
	}
	if top := Top(s.Blocked, 5); len(top) != 1 || top[0] != (Count{"/s/a.sif", 2}) {
		t.Errorf("most blocked %v", top)
	}
	if !s.First.Equal(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)) ||
		!s.Last.Equal(time.Date(2026, 12, 1, 10, 6, 0, 0, time.UTC)) {
		t.Errorf("span %s .. %s", s.First, s.Last)
	}

	recent, _ := Read(auditLog(t), time.Date(2026, 12, 1, 10, 2, 0, 0, time.UTC))
	if recent.Total() != 3 || recent.Prewarmed != 0 {
		t.Errorf("since 10:02: %d decisions, %d prewarmed", recent.Total(), recent.Prewarmed)
	}
}

func TestMetrics(t *testing.T) {
	s, _ := Read(auditLog(t), time.Time{})
	now := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	entries := []cache.Entry{
		{Scan: finding.Scan{ScannedAt: now.Add(-48 * time.Hour)}},
		{Scan: finding.Scan{ScannedAt: now.Add(-time.Hour)}},
	}
	text := string(Metrics(s, []Tier{{Name: "node", Entries: entries}}, now))
	for _, want := range []string{
		"# TYPE scan_gate_decisions_total counter\n",
		`scan_gate_decisions_total{action="block"} 4` + "\n",
		`scan_gate_decisions_total{action="warn"} 0` + "\n",
		"scan_gate_no_decisions_total 2\n",
		`scan_gate_cache_lookups_total{result="hit"} 2` + "\n",
		"# TYPE scan_gate_scan_duration_seconds histogram\n",
		`scan_gate_scan_duration_seconds_bucket{origin="launch",le="5"} 2` + "\n",
		`scan_gate_scan_duration_seconds_bucket{origin="launch",le="120"} 3` + "\n",
		`scan_gate_scan_duration_seconds_bucket{origin="launch",le="+Inf"} 3` + "\n",
		`scan_gate_scan_duration_seconds_sum{origin="launch"} 125.5` + "\n",
		`scan_gate_scan_duration_seconds_count{origin="prewarm"} 2` + "\n",
		`scan_gate_scanner_errors_total{origin="launch"} 1` + "\n",
		`scan_gate_scanner_errors_total{origin="prewarm"} 1` + "\n",
		`scan_gate_cache_entries{tier="node"} 2` + "\n",
		`scan_gate_cache_oldest_result_age_seconds{tier="node"} 172800` + "\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q:\n%s", want, text)
		}
	}

	empty := string(Metrics(New(), []Tier{{Name: "node"}}, now))
	if strings.Contains(empty, "oldest_result_age_seconds{") {
		t.Errorf("an empty cache has an oldest result:\n%s", empty)
	}
}

func TestWriteTextfile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "scan-gate.prom")
	for _, text := range []string{"a 1\n", "a 2\n"} {
		if err := WriteTextfile(path, []byte(text)); err != nil {
			t.Fatal(err)
		}
	}
	data, _ := os.ReadFile(path)
	fi, _ := os.Stat(path)
	names, _ := filepath.Glob(filepath.Join(dir, "*"))
	hidden, _ := filepath.Glob(filepath.Join(dir, ".*"))
	if string(data) != "a 2\n" || fi.Mode().Perm() != 0o644 || len(names) != 1 ||
		len(hidden) != 0 {
		t.Errorf("textfile %q, mode %v, files %v %v", data, fi.Mode(), names, hidden)
	}
	if err := WriteTextfile(filepath.Join(dir, "missing", "x.prom"), nil); err == nil {
		t.Error("writing into a missing directory succeeded")
	}
}
