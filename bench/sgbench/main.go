// Command sgbench measures scan-gate against the goals of its launch-cost budget and prints a
// table: every figure is a ratio to a reference measured in the same run, over several
// rounds, reported as the median and the spread (lowest to highest). bench/run builds what
// it needs and calls it; see the README section "Performance".
//
//	sgbench -dir DIR -gate BIN -noop BIN -trivy BIN [-rounds N] [-only a,b] [-quick]
//	sgbench random N    (writes N pseudo-random bytes to stdout, for mksquashfs)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// config is what every measurement needs.
type config struct {
	dir, gate, staticGate, noop, trivy string
	rounds                             int
	quick                              bool
	only                               map[string]bool
}

// row is one line of the results table.
type row struct {
	what, reference, result, goal, met string
}

func main() {
	if len(os.Args) == 3 && os.Args[1] == "random" {
		if err := writeRandom(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "sgbench random:", err)
			os.Exit(1)
		}
		return
	}
	var c config
	var only string
	flag.StringVar(&c.dir, "dir", "/var/tmp/scan-gate-bench", "work `directory` (large files)")
	flag.StringVar(&c.gate, "gate", "bin/scan-gate", "the scan-gate `binary` to measure")
	flag.StringVar(&c.staticGate, "static-gate", "", "a statically linked build of the same "+
		"source, measured beside it (optional)")
	flag.StringVar(&c.noop, "noop", "", "a no-op Go `binary`, the reference of a launch")
	flag.StringVar(&c.trivy, "trivy", "/usr/local/bin/trivy", "the trivy `binary`")
	flag.IntVar(&c.rounds, "rounds", 5, "rounds of each measurement")
	flag.StringVar(&only, "only", "", "comma-separated measurements to run (default all): "+
		strings.Join(names(), ","))
	flag.BoolVar(&c.quick, "quick", false, "smaller images and fewer runs, for a smoke test")
	flag.Parse()
	if only != "" {
		c.only = map[string]bool{}
		for _, name := range strings.Split(only, ",") {
			c.only[name] = true
		}
	}
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "sgbench:", err)
		os.Exit(1)
	}
}

// measurements in table order.
var measurements = []struct {
	name string
	run  func(context.Context, *bench) ([]row, error)
}{
	{"hit", measureHit},
	{"hitbytes", measureHitBytes},
	{"hash", measureHash},
	{"extract", measureExtract},
	{"concurrent", measureConcurrent},
	{"rss", measureRSS},
	{"prewarm", measurePrewarm},
}

func names() []string {
	var out []string
	for _, m := range measurements {
		out = append(out, m.name)
	}
	return out
}

func run(c config) error {
	if os.Geteuid() != 0 {
		return errors.New("run as root: the gate extracts as another user, and the " +
			"references mount images")
	}
	for _, bin := range []*string{&c.gate, &c.noop, &c.trivy} {
		abs, err := filepath.Abs(*bin)
		if err != nil {
			return err
		}
		if _, err := os.Stat(abs); err != nil {
			return fmt.Errorf("binary: %w", err)
		}
		*bin = abs
	}
	b, err := newBench(c)
	if err != nil {
		return err
	}
	ctx := context.Background()
	var rows []row
	for _, m := range measurements {
		if c.only != nil && !c.only[m.name] {
			continue
		}
		start := time.Now()
		fmt.Fprintf(os.Stderr, "== %s\n", m.name)
		got, err := m.run(ctx, b)
		if err != nil {
			return fmt.Errorf("%s: %w", m.name, err)
		}
		fmt.Fprintf(os.Stderr, "   done in %s\n", time.Since(start).Round(time.Second))
		rows = append(rows, got...)
	}
	table := renderTable(rows, b)
	fmt.Print(table)
	return os.WriteFile(filepath.Join(c.dir, "results.md"), []byte(table), 0o644)
}

func renderTable(rows []row, b *bench) string {
	var out strings.Builder
	fmt.Fprintf(&out, "| measure | reference | result: median [lowest–highest] | goal | met |\n")
	fmt.Fprintf(&out, "|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&out, "| %s | %s | %s | %s | %s |\n", r.what, r.reference, r.result,
			r.goal, r.met)
	}
	fmt.Fprintf(&out, "\n%s\n", b.environment())
	return out.String()
}

// stats summarizes a sample.
type stats struct{ median, low, high float64 }

func summarize(xs []float64) stats {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return stats{}
	}
	median := s[len(s)/2]
	if len(s)%2 == 0 {
		median = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stats{median, s[0], s[len(s)-1]}
}

// format renders a summary with the given verb ("%.2f×").
func (s stats) format(verb string) string {
	return fmt.Sprintf(verb+" ["+verb+"–"+verb+"]", s.median, s.low, s.high)
}

func met(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

// writeRandom writes n pseudo-random, incompressible bytes to stdout, fast.
func writeRandom(arg string) error {
	n, err := strconv.ParseInt(arg, 10, 64)
	if err != nil {
		return err
	}
	rng := rand.NewChaCha8([32]byte{'s', 'c', 'a', 'n', '-', 'g', 'a', 't', 'e'})
	buf := make([]byte, 1<<20)
	for n > 0 {
		chunk := buf[:min(int64(len(buf)), n)]
		rng.Read(chunk)
		if _, err := os.Stdout.Write(chunk); err != nil {
			return err
		}
		n -= int64(len(chunk))
	}
	return nil
}
