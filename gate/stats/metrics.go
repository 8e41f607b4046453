package stats

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/scan-gate/scan-gate/cache"
)

// scanBuckets are the upper bounds, in seconds, of the scan duration histogram.
var scanBuckets = []float64{1, 5, 15, 30, 60, 120, 300, 600, 1800}

// actions and cacheOutcomes are always written, at zero if need be, so that a rate over a
// label that has not happened yet is 0 rather than absent.
var (
	actions       = []string{"allow", "audit", "warn", "block"}
	cacheOutcomes = []string{"hit", "stale", "miss", "none"}
)

// Tier describes one cache for the metrics: its name ("node", "shared") and entries.
type Tier struct {
	Name    string
	Entries []cache.Entry
}

// Metrics renders s and the caches in the Prometheus text format. The counters are totals
// over the audit log as it is: they restart when the log is rotated, which Prometheus takes
// for a counter reset.
func Metrics(s *Stats, tiers []Tier, now time.Time) []byte {
	var b strings.Builder
	family := func(name, kind, help string) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, kind)
	}

	family("scan_gate_decisions_total", "counter",
		"Launch decisions recorded in the audit log, by action.")
	for _, a := range sortedKeys(s.Decisions, actions) {
		fmt.Fprintf(&b, "scan_gate_decisions_total{action=%q} %d\n", a, s.Decisions[a])
	}
	family("scan_gate_no_decisions_total", "counter",
		"Launches decided without findings (scanner error, timeout, unscannable image).")
	fmt.Fprintf(&b, "scan_gate_no_decisions_total %d\n", s.NoDecision)
	family("scan_gate_cache_lookups_total", "counter",
		"Cache lookups of launch decisions, by result (none: the image could not be read).")
	for _, c := range sortedKeys(s.Cache, cacheOutcomes) {
		fmt.Fprintf(&b, "scan_gate_cache_lookups_total{result=%q} %d\n", c, s.Cache[c])
	}

	family("scan_gate_scan_duration_seconds", "histogram",
		"Duration of scans (extraction and scanner), by origin.")
	for _, origin := range []string{OriginLaunch, OriginPrewarm} {
		histogram(&b, origin, s.Scans[origin])
	}
	family("scan_gate_scanner_errors_total", "counter",
		"Scans that failed (extraction or scanner), by origin.")
	for _, origin := range []string{OriginLaunch, OriginPrewarm} {
		fmt.Fprintf(&b, "scan_gate_scanner_errors_total{origin=%q} %d\n", origin,
			s.Scans[origin].Errors)
	}
	family("scan_gate_audit_malformed_lines_total", "counter",
		"Lines of the audit log that are not audit lines.")
	fmt.Fprintf(&b, "scan_gate_audit_malformed_lines_total %d\n", s.Malformed)

	family("scan_gate_cache_entries", "gauge", "Scan results in the cache, by tier.")
	for _, t := range tiers {
		fmt.Fprintf(&b, "scan_gate_cache_entries{tier=%q} %d\n", t.Name, len(t.Entries))
	}
	family("scan_gate_cache_oldest_result_age_seconds", "gauge",
		"Age of the oldest scan result in the cache, by tier (absent when it is empty).")
	for _, t := range tiers {
		if oldest, ok := oldestScan(t.Entries); ok {
			fmt.Fprintf(&b, "scan_gate_cache_oldest_result_age_seconds{tier=%q} %s\n",
				t.Name, formatFloat(now.Sub(oldest).Seconds()))
		}
	}
	return []byte(b.String())
}

func histogram(b *strings.Builder, origin string, s *Scans) {
	sum := 0.0
	for _, sec := range s.Seconds {
		sum += sec
	}
	for _, le := range scanBuckets {
		n := 0
		for _, sec := range s.Seconds {
			if sec <= le {
				n++
			}
		}
		fmt.Fprintf(b, "scan_gate_scan_duration_seconds_bucket{origin=%q,le=%q} %d\n",
			origin, formatFloat(le), n)
	}
	fmt.Fprintf(b, "scan_gate_scan_duration_seconds_bucket{origin=%q,le=\"+Inf\"} %d\n",
		origin, len(s.Seconds))
	fmt.Fprintf(b, "scan_gate_scan_duration_seconds_sum{origin=%q} %s\n", origin,
		formatFloat(sum))
	fmt.Fprintf(b, "scan_gate_scan_duration_seconds_count{origin=%q} %d\n", origin,
		len(s.Seconds))
}

func oldestScan(entries []cache.Entry) (time.Time, bool) {
	var oldest time.Time
	for _, e := range entries {
		if at := e.Scan.ScannedAt; !at.IsZero() && (oldest.IsZero() || at.Before(oldest)) {
			oldest = at
		}
	}
	return oldest, !oldest.IsZero()
}

// sortedKeys returns always, then the other keys of m in order.
func sortedKeys(m map[string]int, always []string) []string {
	keys := slices.Clone(always)
	var extra []string
	for k := range m {
		if !slices.Contains(always, k) && k != "" {
			extra = append(extra, k)
		}
	}
	slices.Sort(extra)
	return append(keys, extra...)
}

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// WriteTextfile writes data to path atomically, as the textfile collector requires: into a
// temporary file in the same directory whose name does not end in .prom, then renamed into
// place, so that a scrape sees the old file or the new one.
func WriteTextfile(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing metrics: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("writing metrics to %s: %w", tmp.Name(), err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("writing metrics: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing metrics to %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing metrics: %w", err)
	}
	return nil
}
