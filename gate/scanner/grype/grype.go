// Package grype is the scan-gate backend driving Grype (`grype dir:TREE`), offline, against a
// vulnerability DB (schema v6) shared by all runs.
//
// Grype never updates its DB here (GRYPE_DB_AUTO_UPDATE=false) and never asks whether a newer
// grype exists (GRYPE_CHECK_FOR_APP_UPDATE=false). Each run gets a fresh private work dir:
// its home, temp dir, config dirs (empty, so no site or user grype.yaml is read) and DB cache
// dir, whose "6" entry is a symbolic link to the shared DBDir/6, resolved once so that an
// update swapping DBDir/6 does not change the DB under a running scan. Grype opens the DB
// read-only and writes nothing to it as long as the DB was imported by the same grype
// version; replace a DB by renaming a new directory into place.
//
// Exit status 0 and 2 (a --fail-on severity was reached) both mean the report was written;
// the report is what counts, and it is taken as clean only when Grype saw the whole tree
// (see guard.go).
package grype

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/scan-gate/scan-gate/gate/finding"
	"github.com/scan-gate/scan-gate/gate/scanner"
	"github.com/scan-gate/scan-gate/gate/scanner/internal/scanutil"
	"github.com/scan-gate/scan-gate/internal/proc"
)

// Name is the backend's name in cache keys and audit lines.
const Name = "grype"

const (
	// defaultTimeout bounds a scan when Config.Timeout is zero.
	defaultTimeout = 5 * time.Minute
	// dbSchemaDir is where a v6 DB lives under a grype DB cache dir.
	dbSchemaDir = "6"
	dbFileName  = "vulnerability.db"
)

// ownedFlags are the flags the backend sets itself; ExtraArgs may not change them.
var ownedFlags = []string{
	"-o", "--output", "--file", "-c", "--config", "-q", "--quiet", "--verbose",
	"--profile", "--from", "--add-cpes-if-none", "--distro",
}

// Config configures a Backend.
type Config struct {
	// Path is the grype binary. A bare name (default "grype") is looked up in PATH, then in
	// the usual system dirs.
	Path string
	// DBDir is the grype DB cache dir holding DBDir/6/vulnerability.db. Scans only read it.
	DBDir string
	// Timeout bounds one scan; grype's process group is killed when it is over. Zero means
	// 5 minutes.
	Timeout time.Duration
	// MaxDBAge is the oldest DB (by its build time) grype may use; zero turns the check off
	// (GRYPE_DB_VALIDATE_AGE=false), for a DB that is refreshed by hand or a test fixture.
	MaxDBAge time.Duration
	// ExtraArgs are added to every `grype dir:` command line, such as --exclude or
	// --only-fixed. They are part of Settings. The flags the backend sets are refused.
	ExtraArgs []string
	// StateDir, if set, is where the binary's version and the DB's date are remembered
	// across processes.
	StateDir string
}

// Backend scans directory trees and SBOMs with Grype. It is safe for concurrent use.
type Backend struct {
	cfg  Config
	path string // the resolved binary

	versionMemo *scanutil.Memo
	dbDateMemo  *scanutil.Memo
}

var _ scanner.Backend = (*Backend)(nil)

// New checks cfg and finds the grype binary. It starts no process.
func New(cfg Config) (*Backend, error) {
	if cfg.DBDir == "" {
		return nil, errors.New("grype: no DB dir configured")
	}
	dbDir, err := filepath.Abs(cfg.DBDir)
	if err != nil {
		return nil, fmt.Errorf("grype: resolving DB dir: %w", err)
	}
	cfg.DBDir = dbDir

	switch {
	case cfg.Timeout < 0 || cfg.MaxDBAge < 0:
		return nil, errors.New("grype: negative timeout or DB age")
	case cfg.Timeout == 0:
		cfg.Timeout = defaultTimeout
	}
	for _, arg := range cfg.ExtraArgs {
		name, _, _ := strings.Cut(arg, "=")
		verbosity := strings.HasPrefix(name, "-v") && strings.Trim(name, "v") == "-"
		if slices.Contains(ownedFlags, name) || verbosity {
			return nil, fmt.Errorf("grype: extra argument %q changes a flag the gate sets", arg)
		}
	}
	cfg.ExtraArgs = slices.Clone(cfg.ExtraArgs)

	if cfg.Path == "" {
		cfg.Path = "grype"
	}
	path, err := proc.LookPath(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("grype: %w", err)
	}
	return &Backend{
		cfg:         cfg,
		path:        path,
		versionMemo: &scanutil.Memo{StateDir: cfg.StateDir, Name: "grype-version"},
		dbDateMemo:  &scanutil.Memo{StateDir: cfg.StateDir, Name: "grype-db-built"},
	}, nil
}

// Name returns "grype".
func (b *Backend) Name() string { return Name }

// Settings is a stable string of what changes the findings: the extra arguments. The "v1"
// names this backend's fixed flags; it changes when they do.
func (b *Backend) Settings() string {
	return fmt.Sprintf("v1 extra=%q", b.cfg.ExtraArgs)
}

// Scan runs `grype dir:ROOT` as target.Credential and returns its findings. It returns an
// error wrapping scanner.ErrIncomplete when Grype could not see all of the tree.
func (b *Backend) Scan(ctx context.Context, target scanner.Target) (*finding.Scan, error) {
	if target.Root == "" || target.ScratchDir == "" {
		return nil, errors.New("grype: scan target needs a root and a scratch dir")
	}
	root, err := filepath.Abs(target.Root)
	if err != nil {
		return nil, fmt.Errorf("grype: resolving %s: %w", target.Root, err)
	}
	scan, err := b.scanTree(ctx, root, target)
	if err != nil {
		return nil, fmt.Errorf("grype: scanning %s: %w", root, err)
	}
	return scan, nil
}

// ScanSBOM matches the packages of an SBOM file (CycloneDX, SPDX or syft JSON) against the
// DB with `grype sbom:FILE`. The file must be readable by target.Credential. An SBOM that
// lists OS packages of a distribution Grype did not recognise is an incomplete scan.
func (b *Backend) ScanSBOM(ctx context.Context, sbom string,
	target scanner.Target) (*finding.Scan, error) {
	if target.ScratchDir == "" {
		return nil, errors.New("grype: SBOM scan needs a scratch dir")
	}
	scan, err := b.scanSBOM(ctx, sbom, target)
	if err != nil {
		return nil, fmt.Errorf("grype: matching SBOM %s: %w", filepath.Base(sbom), err)
	}
	return scan, nil
}

func (b *Backend) scanTree(ctx context.Context, root string, target scanner.Target) (
	*finding.Scan, error) {
	// Grype skips what it may not read, saying so only in its log: refuse before it starts.
	closed, err := scanutil.FirstClosed(root, scanutil.ReaderFor(target.Credential))
	if err != nil {
		return nil, err
	}
	if closed != "" {
		return nil, fmt.Errorf("the scanning user may not read %s: %w", closed,
			scanner.ErrIncomplete)
	}

	run, err := b.newRun(ctx, target)
	if err != nil {
		return nil, err
	}
	sbomPath := filepath.Join(run.work, "sbom.cdx.json")
	rep, err := run.exec(ctx, "dir:"+root, "-o", "cyclonedx-json="+sbomPath)
	if err != nil {
		return nil, err
	}
	sbom, err := scanner.ReadReport(sbomPath)
	if err != nil {
		return nil, fmt.Errorf("reading grype's SBOM: %w", err)
	}
	if err := scanner.KeepReportData(ctx, "grype-sbom.cdx.json", sbom); err != nil {
		return nil, err
	}
	if err := checkBlindSpots(rep, root, sbom); err != nil {
		return nil, err
	}
	return run.result(rep), nil
}

func (b *Backend) scanSBOM(ctx context.Context, sbom string, target scanner.Target) (
	*finding.Scan, error) {
	data, err := scanner.ReadReport(sbom)
	if err != nil {
		return nil, fmt.Errorf("reading the SBOM: %w", err)
	}
	run, err := b.newRun(ctx, target)
	if err != nil {
		return nil, err
	}
	rep, err := run.exec(ctx, "sbom:"+sbom)
	if err != nil {
		return nil, err
	}
	if n, kind := scanutil.OSPackages(data); n > 0 && rep.osName() == "" {
		return nil, fmt.Errorf("the SBOM lists %d %s packages but grype detected no "+
			"distribution in it, so it matched none of them: %w", n, kind,
			scanner.ErrIncomplete)
	}
	return run.result(rep), nil
}

// prepareWork makes a run's private dir in scratch, owned by cred when one is given: the
// process's home, temp, config and cache dirs, and its DB cache dir linked to the pinned DB.
func prepareWork(scratch, dbDir string, cred *proc.Credential) (string, error) {
	work, err := os.MkdirTemp(scratch, "grype-")
	if err != nil {
		return "", fmt.Errorf("creating grype's work dir: %w", err)
	}
	dirs := []string{work}
	for _, name := range []string{"db", "tmp", "config", "cache"} {
		dir := filepath.Join(work, name)
		if err := os.Mkdir(dir, 0o700); err != nil {
			return "", fmt.Errorf("creating grype's work dir: %w", err)
		}
		dirs = append(dirs, dir)
	}
	if err := os.Symlink(dbDir, filepath.Join(work, "db", dbSchemaDir)); err != nil {
		return "", fmt.Errorf("linking grype's DB cache to the shared DB: %w", err)
	}
	if cred != nil {
		for _, dir := range dirs {
			if err := os.Chown(dir, int(cred.UID), int(cred.GID)); err != nil {
				return "", fmt.Errorf("handing grype's work dir to uid %d: %w", cred.UID, err)
			}
		}
	}
	return work, nil
}
