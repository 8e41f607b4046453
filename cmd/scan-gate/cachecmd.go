package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/scan-gate/scan-gate/cache"
	"github.com/scan-gate/scan-gate/gate/finding"
	"github.com/scan-gate/scan-gate/gate/setup"
	"github.com/scan-gate/scan-gate/policy"
)

type cacheOptions struct {
	common
	unused time.Duration
	shared bool
}

func cacheFlags(fs *flag.FlagSet) *cacheOptions {
	o := &cacheOptions{}
	o.register(fs)
	fs.DurationVar(&o.unused, "unused", 30*24*time.Hour, "with gc: drop entries not used "+
		"for this `long`")
	fs.BoolVar(&o.shared, "shared", false, "work on the shared tier ([cache] shared_dir) "+
		"instead of the node cache")
	return o
}

func runCache(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError("want 'scan-gate cache ls|show|gc|purge|export|import'")
	}
	sub := args[0]
	fs := newFlagSet("cache", stderr)
	o := cacheFlags(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return badConfig(err)
	}
	if sub == "gc" && o.unused <= 0 {
		return usageError("--unused %v: want a positive age, such as 720h", o.unused)
	}
	p, err := o.loadPolicy()
	if err != nil {
		return err
	}
	readOnly := sub == "ls" || sub == "show" || sub == "export"
	var store *cache.Store
	if o.shared {
		store, err = openSharedTier(p, readOnly)
	} else {
		store, err = cache.Open(p.CacheDir, cache.Options{ReadOnly: readOnly,
			TrustedUIDs: []uint32{0, uint32(os.Geteuid())}})
	}
	if err != nil {
		return err
	}

	now := time.Now()
	switch sub {
	case "ls":
		return cacheList(store, p, now, stdout, stderr)
	case "show":
		if fs.NArg() != 1 {
			return usageError("cache show takes one KEY or IMAGE")
		}
		return cacheShow(store, p, fs.Arg(0), now, stdout)
	case "gc":
		removed, err := store.GC(o.unused, now)
		fmt.Fprintf(stdout, "removed %s unused for %s\n", removedText(removed), o.unused)
		return err
	case "purge":
		removed, err := store.Purge()
		fmt.Fprintf(stdout, "removed %s\n", removedText(removed))
		return err
	case "export":
		return cacheExport(store, fs.Args(), stdout, stderr)
	case "import":
		return cacheImport(store, fs.Args(), os.Stdin, stdout, stderr)
	}
	return usageError("unknown cache command %q", sub)
}

// removedText says what GC or Purge removed: entries (what `cache ls` lists) apart from
// stat records and temporary files, which are not entries.
func removedText(r cache.Removed) string {
	text := fmt.Sprintf("%d entries and %d stat records", r.Entries, r.Stats)
	if r.Temps > 0 {
		text += fmt.Sprintf(" (and %d abandoned temporary files)", r.Temps)
	}
	return text
}

func cacheList(store *cache.Store, p *policy.Policy, now time.Time, stdout,
	stderr io.Writer) error {
	entries, err := store.List()
	var skipped *cache.SkippedError
	if errors.As(err, &skipped) {
		fmt.Fprintf(stderr, "scan-gate cache: %v\n", err)
	} else if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tKEY\tSCANNER\tAGE\tWORST\tVERDICT")
	for _, e := range entries {
		v := p.Evaluate(&e.Scan, policy.Subject{Image: e.Image}, now)
		worst := "none"
		if len(e.Scan.Findings) > 0 {
			worst = finding.Worst(e.Scan.Findings).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s %s\t%s\t%s\t%s\n", e.Image, e.Key.Content, e.Key.Scanner,
			e.Scan.ScannerVersion, now.Sub(e.Scan.ScannedAt).Round(time.Second), worst, v.Action)
	}
	return tw.Flush()
}

func cacheShow(store *cache.Store, p *policy.Policy, which string, now time.Time,
	stdout io.Writer) error {
	content := which
	if _, err := os.Stat(which); err == nil {
		key, err := setup.ImageKey(context.Background(), store, which)
		if err != nil {
			return err
		}
		content = key
	}
	entries, err := store.List()
	var skipped *cache.SkippedError
	if err != nil && !errors.As(err, &skipped) {
		return err
	}
	found := 0
	for _, e := range entries {
		if !strings.HasPrefix(e.Key.Content, content) || content == "" {
			continue
		}
		found++
		v := p.Evaluate(&e.Scan, policy.Subject{Image: e.Image}, now)
		fmt.Fprintf(stdout, "image:    %s\nkey:      %s\nscanner:  %s %s (DB %s)\n"+
			"scanned:  %s\nos:       %s\nverdict:  %s\n", e.Image, e.Key.Content,
			e.Key.Scanner, e.Scan.ScannerVersion, e.Scan.DBUpdatedAt.Format(time.DateOnly),
			e.Scan.ScannedAt.Format(time.RFC3339), e.Scan.OS, v.Action)
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SEVERITY\tID\tPACKAGE\tINSTALLED\tFIXED")
		findings := slices.Clone(e.Scan.Findings)
		finding.Sort(findings)
		for _, f := range findings {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", f.Severity, f.ID, f.Package, f.Installed,
				strings.Join(f.FixedVersions, ", "))
		}
		tw.Flush()
		fmt.Fprintln(stdout)
	}
	if found == 0 {
		return fmt.Errorf("no cached scan for %s", which)
	}
	return nil
}
