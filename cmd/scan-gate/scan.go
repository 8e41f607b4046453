package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/scan-gate/scan-gate/gate"
	"github.com/scan-gate/scan-gate/gate/extract"
	reports "github.com/scan-gate/scan-gate/gate/report"
	"github.com/scan-gate/scan-gate/gate/scanner"
	"github.com/scan-gate/scan-gate/gate/setup"
	"github.com/scan-gate/scan-gate/policy"
)

const scanHelp = `Usage: scan-gate scan [flags] IMAGE... --output-dir DIR

Scans each image (or takes a fresh result from the cache), evaluates the policy and writes
a report dir per image under DIR, named after the image file:

  verdict.json     the gate's verdict, findings and scan details
  findings.sarif   the normalized findings as SARIF 2.1.0, made by the gate
  scanner/         the scanner's own reports and SBOMs (only when it ran: use --rescan)

The results go to the cache, so a later check is a hit. Exit status: 0 when every image
was scanned, 1 when any could not be (the verdicts do not change it), 2 for bad arguments
or policy.`

type scanOptions struct {
	common
	outputDir string
	rescan    bool
	auditPath string
}

func scanFlags(fs *flag.FlagSet) *scanOptions {
	o := &scanOptions{}
	o.register(fs)
	fs.StringVar(&o.outputDir, "output-dir", "", "`dir` to write the reports under "+
		"(required; created if missing)")
	fs.BoolVar(&o.rescan, "rescan", false, "scan even when the cache holds a fresh result, "+
		"so that the scanner's own reports are written")
	fs.StringVar(&o.auditPath, "audit-log", "", "append audit lines to `file` (default: "+
		"the policy's [audit] log)")
	return o
}

func runScan(args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlagSet("scan", stderr)
	o := scanFlags(fs)
	// Flags may also follow the images: scan-gate scan IMAGE... --output-dir DIR.
	var images []string
	for {
		if err := fs.Parse(args); err != nil {
			return exitUsage, badConfig(err)
		}
		if args = fs.Args(); len(args) == 0 {
			break
		}
		images, args = append(images, args[0]), args[1:]
	}
	switch {
	case len(images) == 0:
		return exitUsage, usageError("no image given (see 'scan-gate help scan')")
	case o.outputDir == "":
		return exitUsage, usageError("--output-dir is required (see 'scan-gate help scan')")
	}
	p, err := o.loadPolicy()
	if err != nil {
		return exitUsage, err
	}
	digest := p.Digest()
	reportJob(p)
	log := o.logger(stderr)

	if err := os.MkdirAll(o.outputDir, 0o755); err != nil {
		return exitBlocked, fmt.Errorf("creating output dir: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	g, err := setup.New(p)
	if err != nil {
		return exitBlocked, err
	}
	g.Background = nil
	if n, _ := extract.Sweep(g.Extract.ScratchDir); n > 0 {
		log.Debug("swept scratch directories of killed runs", "count", n)
	}
	auditLog := openAudit(o.auditPath, p.AuditLog, log)
	defer auditLog.Close()

	var caller checkOptions // the report job runs as, and for, its caller
	caller.fillWho()
	who := caller.who
	status := exitProceed
	for _, img := range images {
		dir, err := reports.NewDir(o.outputDir, img)
		if err != nil {
			return exitBlocked, err
		}
		imgCtx := scanner.WithReportDir(ctx, filepath.Join(dir, reports.ScannerDir))
		res := g.Check(imgCtx, gate.Request{Image: img, Who: who, Rescan: o.rescan})
		log.Debug("scanned", "image", img, "action", res.Action, "cache", res.Cache,
			"key", res.Key, "error", res.Error)
		subject := who
		subject.Image = img
		auditLog.Record(res, subject, digest)

		if err := reports.Write(dir, res, p, digest, buildVersion()); err != nil {
			return exitBlocked, fmt.Errorf("writing the report of %s: %w", img, err)
		}
		if res.Scan == nil {
			status = exitBlocked
			fmt.Fprintf(stderr, "scan-gate scan: %s: not scanned: %s\n", res.Image, res.Error)
		}
		fmt.Fprintf(stdout, "%s: %s (%s, cache %s) -> %s\n", res.Image, res.Action,
			summary(res), res.Cache, dir)
	}
	return status, nil
}

// reportJob adapts the policy to a report job: it always scans on a miss or a stale result
// (never "allow and scan later"), and waits for its own scan as long as a scan may take.
func reportJob(p *policy.Policy) {
	p.On.Miss = policy.MissScan
	p.On.Stale = policy.StaleRescan
	p.Timeouts.Wait = max(p.Timeouts.Wait, p.Timeouts.Scan+time.Minute)
}

// summary reads "4 critical, 3 high" or "no findings" or "no decision".
func summary(res gate.Result) string {
	if res.Scan == nil {
		return "no decision"
	}
	var parts []string
	for _, name := range []string{"critical", "high", "medium", "low", "unknown"} {
		if n := res.Verdict.Counts[name]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, name))
		}
	}
	if len(parts) == 0 {
		return "no findings counted"
	}
	return strings.Join(parts, ", ")
}
