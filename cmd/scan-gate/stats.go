package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"text/tabwriter"
	"time"

	"github.com/scan-gate/scan-gate/cache"
	"github.com/scan-gate/scan-gate/gate/stats"
	"github.com/scan-gate/scan-gate/policy"
)

const statsHelp = `Usage: scan-gate stats [flags]

Sums up the audit log: launch decisions by action, cache hits and misses, scans and their
durations (at launch and by prewarm), the most blocked images and the most common reasons
no decision could be made.

With --metrics, writes instead the metrics file for node_exporter's textfile collector
([metrics] textfile, or --textfile), atomically: decisions by action, cache lookups by
result, a histogram of scan durations, scanner errors, and the number and oldest result
age of the cache entries. Run it from cron (every minute, say); prewarm also writes it.`

type statsOptions struct {
	common
	auditPath string
	since     time.Duration
	jsonOut   bool
	metrics   bool
	textfile  string
}

func statsFlags(fs *flag.FlagSet) *statsOptions {
	o := &statsOptions{}
	o.register(fs)
	fs.StringVar(&o.auditPath, "audit-log", "", "read `file` (default: the policy's [audit] "+
		"log)")
	fs.DurationVar(&o.since, "since", 0, "count only the lines of the last `duration` "+
		"(default: all)")
	fs.BoolVar(&o.jsonOut, "json", false, "print the summary as JSON")
	fs.BoolVar(&o.metrics, "metrics", false, "write the metrics file instead of a summary")
	fs.StringVar(&o.textfile, "textfile", "", "with --metrics: write to `file` (default: "+
		"[metrics] textfile)")
	return o
}

func runStats(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("stats", stderr)
	o := statsFlags(fs)
	if err := fs.Parse(args); err != nil {
		return badConfig(err)
	}
	if fs.NArg() > 0 {
		return usageError("stats takes no arguments")
	}
	p, err := o.loadPolicy()
	if err != nil {
		return err
	}
	if o.metrics {
		path := cmp.Or(o.textfile, p.MetricsTextfile)
		if path == "" {
			return usageError("no metrics file: set [metrics] textfile or --textfile")
		}
		return writeMetrics(p, o.auditPath, path)
	}

	var since time.Time
	if o.since > 0 {
		since = time.Now().Add(-o.since)
	}
	s, err := readAuditStats(cmp.Or(o.auditPath, p.AuditLog), since)
	if err != nil {
		return err
	}
	if o.jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	printStats(s, stdout)
	return nil
}

// readAuditStats sums up the audit log at path; a log that does not exist yet is empty.
func readAuditStats(path string, since time.Time) (*stats.Stats, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return stats.New(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the audit log: %w", err)
	}
	defer f.Close()
	return stats.Read(f, since)
}

func printStats(s *stats.Stats, stdout io.Writer) {
	total := s.Total()
	if total == 0 && s.Prewarmed == 0 {
		fmt.Fprintln(stdout, "no decisions in the audit log")
		return
	}
	fmt.Fprintf(stdout, "audit log from %s to %s\n\n", s.First.Format(time.RFC3339),
		s.Last.Format(time.RFC3339))
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "decisions\t%d\tby %d users\n", total, s.Users)
	for _, a := range []string{"allow", "audit", "warn", "block"} {
		fmt.Fprintf(tw, "  %s\t%d\t%s\n", a, s.Decisions[a], percent(s.Decisions[a], total))
	}
	fmt.Fprintf(tw, "  no decision\t%d\t%s (errors, timeouts, unscannable images)\n",
		s.NoDecision, percent(s.NoDecision, total))
	fmt.Fprintf(tw, "cache lookups\t%d\t\n", total)
	for _, c := range []string{"hit", "stale", "miss", "none"} {
		fmt.Fprintf(tw, "  %s\t%d\t%s\n", c, s.Cache[c], percent(s.Cache[c], total))
	}
	for _, origin := range []string{stats.OriginLaunch, stats.OriginPrewarm} {
		scans := s.Scans[origin]
		fmt.Fprintf(tw, "scans at %s\t%d\t%d failed; median %s, 95th percentile %s, "+
			"longest %s\n", origin, scans.Count, scans.Errors, seconds(scans.Quantile(0.5)),
			seconds(scans.Quantile(0.95)), seconds(scans.Quantile(1)))
	}
	if s.Malformed > 0 {
		fmt.Fprintf(tw, "malformed lines\t%d\t\n", s.Malformed)
	}
	tw.Flush()

	if top := stats.Top(s.Blocked, 5); len(top) > 0 {
		fmt.Fprintln(stdout, "\nmost blocked images:")
		for _, c := range top {
			fmt.Fprintf(stdout, "  %6d  %s\n", c.Count, c.Name)
		}
	}
	if top := stats.Top(s.Errors, 5); len(top) > 0 {
		fmt.Fprintln(stdout, "\nmost common reasons for no decision:")
		for _, c := range top {
			fmt.Fprintf(stdout, "  %6d  %s\n", c.Count, c.Name)
		}
	}
}

func percent(n, total int) string {
	if total == 0 {
		return ""
	}
	return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(total))
}

func seconds(s float64) string {
	return (time.Duration(s * float64(time.Second))).Round(10 * time.Millisecond).String()
}

// writeMetrics writes the metrics file at path from the audit log and the node cache. The
// shared tier is left out: every node reading all of it every minute would load the
// parallel filesystem for a number that `scan-gate cache ls` gives on demand.
func writeMetrics(p *policy.Policy, auditPath, path string) error {
	s, err := readAuditStats(cmp.Or(auditPath, p.AuditLog), time.Time{})
	if err != nil {
		return err
	}
	var tiers []stats.Tier
	node, err := cache.Open(p.CacheDir, cache.Options{ReadOnly: true,
		TrustedUIDs: []uint32{0, uint32(os.Geteuid())}})
	if err == nil {
		entries, _ := node.List() // unusable entries are left out, as a launch would
		tiers = append(tiers, stats.Tier{Name: "node", Entries: entries})
	}
	return stats.WriteTextfile(path, stats.Metrics(s, tiers, time.Now()))
}

// writeMetricsFile refreshes the policy's metrics file, when it names one.
func writeMetricsFile(p *policy.Policy, auditPath string) error {
	if p.MetricsTextfile == "" {
		return nil
	}
	return writeMetrics(p, auditPath, p.MetricsTextfile)
}
