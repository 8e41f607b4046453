package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/scan-gate/scan-gate/cache"
	"github.com/scan-gate/scan-gate/gate/setup"
	"github.com/scan-gate/scan-gate/policy"
)

// openSharedTier opens the policy's shared tier for `cache --shared`: read-only for ls, show
// and export, else for writing (as root or the prewarm account).
func openSharedTier(p *policy.Policy, readOnly bool) (*cache.Store, error) {
	if readOnly {
		return setup.OpenShared(p)
	}
	return setup.OpenSharedWriter(p, "")
}

// cacheExport writes `cache export FILE [KEY|IMAGE...]`: the entries (all, or those of the
// keys and images named) as an archive for another cluster, each keyed anew by hashing its
// image with a secret made for the archive. FILE - is stdout; a file is written whole or not
// at all, readable by its owner only (it carries that secret).
func cacheExport(store *cache.Store, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError("cache export takes a FILE (- for stdout), then KEYs or IMAGEs")
	}
	ctx := context.Background()
	keep, err := contentFilter(ctx, store, args[1:])
	if err != nil {
		return err
	}
	secret := setup.NewArchiveSecret()
	opts := cache.ExportOptions{Keep: keep, Secret: secret,
		Rekey: setup.ExportRekey(ctx, store, secret)}

	out := stdout
	var tmp *os.File
	if args[0] != "-" {
		dir, name := filepath.Split(args[0])
		if dir == "" {
			dir = "."
		}
		if tmp, err = os.CreateTemp(dir, "."+name+".tmp-*"); err != nil {
			return fmt.Errorf("exporting cache: %w", err)
		}
		defer os.Remove(tmp.Name())
		out = tmp
	}
	res, err := store.Export(out, opts)
	for _, left := range res.Left {
		fmt.Fprintf(stderr, "scan-gate cache export: left out: %v\n", left)
	}
	reportSkipped(err, stderr)
	if err := ignoreSkipped(err); err != nil {
		return err
	}
	if tmp != nil {
		if err := tmp.Close(); err != nil {
			return fmt.Errorf("exporting cache: %w", err)
		}
		if err := os.Rename(tmp.Name(), args[0]); err != nil {
			return fmt.Errorf("exporting cache: %w", err)
		}
	}
	fmt.Fprintf(stderr, "exported %d entries to %s, left out %d\n", res.Exported, args[0],
		len(res.Left))
	if len(res.Left) > 0 {
		return fmt.Errorf("exporting cache: %d entries left out", len(res.Left))
	}
	return nil
}

// cacheImport reads `cache import FILE [OLD=NEW...]` (FILE - for stdin) into the cache. Each
// entry's image is looked for at the path the entry names, with a leading OLD replaced by
// NEW, and hashed: an entry is stored only for an image that holds what it was scanned from.
func cacheImport(store *cache.Store, args []string, stdin io.Reader, stdout,
	stderr io.Writer) error {
	if len(args) == 0 {
		return usageError("cache import takes a FILE (- for stdin), then OLD=NEW path " +
			"prefixes to map")
	}
	where, err := prefixMap(args[1:])
	if err != nil {
		return err
	}
	rekey, err := setup.ImportRekey(context.Background(), store, where)
	if err != nil {
		return fmt.Errorf("importing cache entries: %w", err)
	}
	in := stdin
	if args[0] != "-" {
		f, err := os.Open(args[0])
		if err != nil {
			return fmt.Errorf("importing cache entries: %w", err)
		}
		defer f.Close()
		in = f
	}
	res, err := store.Import(in, cache.ImportOptions{Rekey: rekey})
	for _, r := range res.Rejected {
		fmt.Fprintf(stderr, "scan-gate cache import: rejected %v\n", r)
	}
	fmt.Fprintf(stdout, "imported %d entries, %d already present, kept %d newer ones here, "+
		"rejected %d\n", res.Imported, res.Present, res.Kept, len(res.Rejected))
	if err != nil {
		return err
	}
	if len(res.Rejected) > 0 {
		return fmt.Errorf("importing cache entries: %d rejected", len(res.Rejected))
	}
	return nil
}

// prefixMap turns OLD=NEW arguments into a function that replaces the first matching
// prefix of a path.
func prefixMap(args []string) (func(string) string, error) {
	type pair struct{ old, new string }
	var pairs []pair
	for _, a := range args {
		old, repl, ok := strings.Cut(a, "=")
		if !ok || !filepath.IsAbs(old) || !filepath.IsAbs(repl) {
			return nil, usageError("%q: want OLD=NEW, two absolute path prefixes", a)
		}
		pairs = append(pairs, pair{filepath.Clean(old), filepath.Clean(repl)})
	}
	return func(path string) string {
		for _, p := range pairs {
			if rest, ok := strings.CutPrefix(path, p.old); ok &&
				(rest == "" || strings.HasPrefix(rest, "/")) {
				return p.new + rest
			}
		}
		return path
	}, nil
}

// contentFilter keeps the entries whose content key starts with one of the keys given, or
// is the key of one of the images given; no argument keeps all.
func contentFilter(ctx context.Context, store *cache.Store,
	which []string) (func(cache.Entry) bool, error) {
	if len(which) == 0 {
		return nil, nil
	}
	var prefixes []string
	for _, w := range which {
		if _, err := os.Stat(w); err != nil {
			prefixes = append(prefixes, w)
			continue
		}
		key, err := setup.ImageKey(ctx, store, w)
		if err != nil {
			return nil, err
		}
		prefixes = append(prefixes, key)
	}
	return func(e cache.Entry) bool {
		for _, p := range prefixes {
			if p != "" && strings.HasPrefix(e.Key.Content, p) {
				return true
			}
		}
		return false
	}, nil
}

func reportSkipped(err error, stderr io.Writer) {
	var skipped *cache.SkippedError
	if errors.As(err, &skipped) {
		fmt.Fprintf(stderr, "scan-gate cache: %v\n", err)
	}
}

// ignoreSkipped drops a *cache.SkippedError: unusable entries are left out, as ls does.
func ignoreSkipped(err error) error {
	var skipped *cache.SkippedError
	if errors.As(err, &skipped) {
		return nil
	}
	return err
}
