// Package stats sums up the audit log: decisions by action, cache hits and misses, scan
// durations and errors, for `scan-gate stats` and for the metrics file node_exporter's
// textfile collector reads.
package stats

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// Messages of the audit lines counted here.
const (
	msgDecision = "decision" // one launch decision (scan-gate check and the launch points)
	msgRescan   = "rescan"   // a background rescan a launch started
	msgPrewarm  = "prewarm"  // one image prewarmed (scan-gate prewarm)
)

// Origins of scans: launches (their own scans and the background rescans they start), and
// prewarm.
const (
	OriginLaunch  = "launch"
	OriginPrewarm = "prewarm"
)

// line is what is read of one audit line.
type line struct {
	Time      time.Time `json:"time"`
	Msg       string    `json:"msg"`
	Image     string    `json:"image"`
	Action    string    `json:"action"`
	User      string    `json:"user"`
	Cache     string    `json:"cache"`
	Error     string    `json:"error"`
	Durations struct {
		Scan  float64 `json:"scan"`
		Total float64 `json:"total"`
	} `json:"durations_ms"`
}

// Scans sums up the scans of one origin.
type Scans struct {
	// Count is the number of scans run, Errors how many of them failed.
	Count  int `json:"count"`
	Errors int `json:"errors"`
	// Seconds holds the duration of every scan, successful or not, in log order.
	Seconds []float64 `json:"-"`
}

// Quantile returns the q-quantile (0..1) of the scan durations, 0 when there are none.
func (s *Scans) Quantile(q float64) float64 {
	if len(s.Seconds) == 0 {
		return 0
	}
	sorted := slices.Clone(s.Seconds)
	slices.Sort(sorted)
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// Stats is the summary of an audit log.
type Stats struct {
	// First and Last are the times of the first and last line counted.
	First time.Time `json:"first,omitzero"`
	Last  time.Time `json:"last,omitzero"`
	// Decisions counts launch decisions by action; NoDecision those made without findings
	// (errors, timeouts, unscannable images), whatever action the policy gave them.
	Decisions  map[string]int `json:"decisions"`
	NoDecision int            `json:"no_decision"`
	// Cache counts launch decisions by cache outcome: hit, stale, miss, none.
	Cache map[string]int `json:"cache"`
	// Scans are the scans run, by origin (launch, prewarm).
	Scans map[string]*Scans `json:"scans"`
	// Prewarmed counts the images prewarm lines record.
	Prewarmed int `json:"prewarmed"`
	// Users counts the distinct users of launch decisions.
	Users int `json:"users"`
	// Blocked counts blocked launches by image; Errors counts no-decision reasons.
	Blocked map[string]int `json:"blocked_images"`
	Errors  map[string]int `json:"errors"`
	// Malformed counts lines that are not audit lines.
	Malformed int `json:"malformed_lines"`

	users map[string]bool
}

// New returns empty stats.
func New() *Stats {
	return &Stats{
		Decisions: map[string]int{},
		Cache:     map[string]int{},
		Scans:     map[string]*Scans{OriginLaunch: {}, OriginPrewarm: {}},
		Blocked:   map[string]int{},
		Errors:    map[string]int{},
		users:     map[string]bool{},
	}
}

// Read sums up the audit lines of r at or after since (all when since is zero).
func Read(r io.Reader, since time.Time) (*Stats, error) {
	s := New()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		raw := sc.Bytes()
		if len(strings.TrimSpace(string(raw))) == 0 {
			continue
		}
		var l line
		if err := json.Unmarshal(raw, &l); err != nil || l.Msg == "" {
			s.Malformed++
			continue
		}
		if l.Time.Before(since) {
			continue
		}
		s.add(&l)
	}
	if err := sc.Err(); err != nil {
		return s, fmt.Errorf("reading the audit log: %w", err)
	}
	return s, nil
}

func (s *Stats) add(l *line) {
	origin := ""
	switch l.Msg {
	case msgDecision:
		origin = OriginLaunch
		s.Decisions[l.Action]++
		s.Cache[l.Cache]++
		if l.User != "" && !s.users[l.User] {
			s.users[l.User] = true
			s.Users++
		}
		if l.Error != "" {
			s.NoDecision++
			s.Errors[shorten(l.Error)]++
		} else if l.Action == "block" {
			s.Blocked[l.Image]++
		}
	case msgRescan:
		origin = OriginLaunch
	case msgPrewarm:
		origin = OriginPrewarm
		s.Prewarmed++
	default:
		return
	}
	if s.First.IsZero() || l.Time.Before(s.First) {
		s.First = l.Time
	}
	if l.Time.After(s.Last) {
		s.Last = l.Time
	}
	if l.Durations.Scan > 0 {
		scans := s.Scans[origin]
		scans.Count++
		scans.Seconds = append(scans.Seconds, l.Durations.Scan/1000)
		if l.Error != "" {
			scans.Errors++
		}
	}
}

// shorten keeps the first line of an error, cut to a length a table can show.
func shorten(msg string) string {
	msg, _, _ = strings.Cut(msg, "\n")
	if len(msg) > 160 {
		msg = msg[:157] + "..."
	}
	return msg
}

// Count is one row of a ranking.
type Count struct {
	Name  string
	Count int
}

// Top returns the n largest counts of m, largest first, ties by name.
func Top(m map[string]int, n int) []Count {
	var out []Count
	for name, c := range m {
		out = append(out, Count{name, c})
	}
	slices.SortFunc(out, func(a, b Count) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Name, b.Name))
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// Total returns the number of launch decisions.
func (s *Stats) Total() int {
	n := 0
	for _, c := range s.Decisions {
		n += c
	}
	return n
}
