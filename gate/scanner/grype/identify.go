package grype

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/scan-gate/scan-gate/gate/scanner"
	"github.com/scan-gate/scan-gate/gate/scanner/internal/scanutil"
	"github.com/scan-gate/scan-gate/internal/proc"
)

// queryTimeout bounds `grype version` and `grype db status`, which scan nothing.
const queryTimeout = 30 * time.Second

// Identify returns grype's version and the build time of the DB in DBDir. Both are asked of
// grype once per binary and per DB file, then remembered (in StateDir across processes):
// the hot path starts no process.
func (b *Backend) Identify(ctx context.Context) (scanner.Identity, error) {
	version, err := b.version(ctx)
	if err != nil {
		return scanner.Identity{}, err
	}
	// Past here only the DB is in question: the name and version go with the error.
	known := scanner.Identity{Name: Name, Version: version}
	dbDir, err := b.pinDB()
	if err != nil {
		return known, err
	}
	built, err := b.dbDateMemo.Get(ctx, filepath.Join(dbDir, dbFileName), b.askDBBuilt)
	if err != nil {
		return known, err
	}
	when, err := time.Parse(time.RFC3339, built)
	if err != nil {
		return scanner.Identity{}, fmt.Errorf("grype DB build time %q: %w", built, err)
	}
	return scanner.Identity{Name: Name, Version: version, DBUpdatedAt: when.UTC()}, nil
}

// version returns the binary's version: `grype version -o json`, or its content hash for a
// build that does not know its version.
func (b *Backend) version(ctx context.Context) (string, error) {
	return b.versionMemo.Get(ctx, b.path, func(ctx context.Context) (string, error) {
		var info struct{ Version string }
		if err := b.query(ctx, &info, "version", "-o", "json"); err != nil {
			return "", err
		}
		if info.Version == "" || info.Version == "[not provided]" ||
			info.Version == "dev" {
			v, err := scanutil.ContentVersion(b.path)
			return "dev+" + v, err
		}
		return info.Version, nil
	})
}

// askDBBuilt runs `grype db status -o json` and returns the DB's build time, RFC 3339. A DB
// grype calls invalid (too old, bad checksum) is an error: scans would fail on it too.
func (b *Backend) askDBBuilt(ctx context.Context) (string, error) {
	var status struct {
		Built time.Time `json:"built"`
		Valid bool      `json:"valid"`
		Error string    `json:"error"`
	}
	if err := b.query(ctx, &status, "db", "status", "-o", "json"); err != nil {
		return "", err
	}
	if !status.Valid || status.Built.IsZero() {
		return "", fmt.Errorf("grype calls its DB in %s unusable: %s", b.cfg.DBDir,
			status.Error)
	}
	return status.Built.UTC().Format(time.RFC3339), nil
}

// query runs a grype command that prints JSON, as this process's user with a throwaway home
// and the configured DB dir, and decodes its output into v.
func (b *Backend) query(ctx context.Context, v any, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	home, err := os.MkdirTemp("", "scan-gate-grype-")
	if err != nil {
		return fmt.Errorf("creating a home for grype %s: %w", args[0], err)
	}
	defer os.RemoveAll(home)
	for _, dir := range []string{"tmp", "config", "cache"} {
		if err := os.Mkdir(filepath.Join(home, dir), 0o700); err != nil {
			return fmt.Errorf("creating a home for grype %s: %w", args[0], err)
		}
	}

	res, err := proc.Run(ctx, proc.Cmd{Path: b.path, Args: args, Dir: home,
		Env: b.env(home, b.cfg.DBDir)})
	if err != nil {
		return fmt.Errorf("running grype %s: %w", args[0], err)
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("running grype %s: exit status %d: %s", args[0], res.ExitCode,
			proc.LastLines(res.Stderr, 3))
	}
	if err := json.Unmarshal(res.Stdout, v); err != nil {
		return fmt.Errorf("decoding the output of grype %s: %w", args[0], err)
	}
	return nil
}
