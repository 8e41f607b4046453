// Package trivy is the scan-gate backend driving Trivy (`trivy rootfs`), offline, against a
// vulnerability DB shared by all runs.
//
// Trivy 0.74 has no flag for where its DB lives apart from its cache dir: it always opens
// <cache-dir>/db (pkg/db.Dir). Each run therefore gets a fresh private cache dir whose "db"
// entry is a symbolic link to the shared DBDir/db. With --skip-db-update Trivy only checks that
// trivy.db and metadata.json are there and opens trivy.db read-only (bbolt ReadOnly, a shared
// flock): nothing is written to the shared DB, which may belong to another user and be
// read-only to the scanning one. Replace a DB by renaming a new directory into place, never by
// rewriting trivy.db where it lies.
//
// The report is what counts, never the exit status alone, and a report is only taken as clean
// when Trivy saw the whole tree (see guard.go).
package trivy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/scan-gate/scan-gate/gate/finding"
	"github.com/scan-gate/scan-gate/gate/scanner"
	"github.com/scan-gate/scan-gate/gate/scanner/internal/scanutil"
	"github.com/scan-gate/scan-gate/internal/proc"
)

// Name is the backend's name in cache keys and audit lines.
const Name = "trivy"

const (
	// defaultTimeout is Trivy's own default --timeout.
	defaultTimeout = 5 * time.Minute
	// killGrace is how long after its own --timeout Trivy has to give up before its process
	// group is killed.
	killGrace = 10 * time.Second
)

// ownedFlags are the flags the backend sets itself; ExtraArgs may not change them.
var ownedFlags = []string{
	"--format", "-f", "--output", "-o", "--template", "-t", "--exit-code",
	"--scanners", "--cache-dir", "--cache-backend", "--timeout", "--quiet", "-q",
	"--debug", "-d", "--config", "-c", "--skip-db-update", "--skip-java-db-update",
	"--download-db-only", "--download-java-db-only", "--reset", "--offline-scan",
	"--db-repository", "--java-db-repository", "--server", "--list-all-pkgs",
}

// Config configures a Backend.
type Config struct {
	// Path is the trivy binary. A bare name (default "trivy") is looked up in PATH or, when
	// PATH is empty, in /usr/local/bin, /usr/bin, /bin and the sbin dirs.
	Path string
	// DBDir is the directory holding the vulnerability DB as DBDir/db/trivy.db and
	// DBDir/db/metadata.json. Scans only read it.
	DBDir string
	// Timeout bounds one scan. It is passed to Trivy as --timeout, and Trivy's process group
	// is killed shortly after it. Zero means Trivy's default, 5 minutes.
	Timeout time.Duration
	// ExtraArgs are added to `trivy rootfs` before the directory, e.g. --skip-dirs. They are
	// part of Settings. The flags the backend sets itself are refused.
	ExtraArgs []string
	// StateDir, if set, is where the binary's version is remembered across processes.
	StateDir string
}

// Backend scans directory trees with Trivy. It is safe for concurrent use.
type Backend struct {
	cfg  Config
	path string // the resolved binary

	mu   sync.Mutex
	memo *versionMemo
}

var _ scanner.Backend = (*Backend)(nil)

// New checks cfg and finds the trivy binary. It starts no process.
func New(cfg Config) (*Backend, error) {
	if cfg.DBDir == "" {
		return nil, errors.New("trivy: no DB dir configured")
	}
	dbDir, err := filepath.Abs(cfg.DBDir)
	if err != nil {
		return nil, fmt.Errorf("trivy: resolving DB dir: %w", err)
	}
	cfg.DBDir = dbDir

	switch {
	case cfg.Timeout < 0:
		return nil, fmt.Errorf("trivy: negative timeout %s", cfg.Timeout)
	case cfg.Timeout == 0:
		cfg.Timeout = defaultTimeout
	}

	for _, arg := range cfg.ExtraArgs {
		name, _, _ := strings.Cut(arg, "=")
		if slices.Contains(ownedFlags, name) {
			return nil, fmt.Errorf("trivy: extra argument %q changes a flag the gate sets", arg)
		}
	}
	cfg.ExtraArgs = slices.Clone(cfg.ExtraArgs)

	if cfg.Path == "" {
		cfg.Path = "trivy"
	}
	path, err := proc.LookPath(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("trivy: %w", err)
	}
	return &Backend{cfg: cfg, path: path}, nil
}

// Name returns "trivy".
func (b *Backend) Name() string { return Name }

// Settings is a stable string of what changes the findings: the scanners run and the extra
// arguments. The "v1" names this backend's fixed flags; it changes when they do.
func (b *Backend) Settings() string {
	return fmt.Sprintf("v1 scanners=vuln extra=%q", b.cfg.ExtraArgs)
}

// Scan runs Trivy over target.Root as target.Credential and returns its findings. It returns
// an error wrapping scanner.ErrIncomplete when Trivy could not see all of the tree.
func (b *Backend) Scan(ctx context.Context, target scanner.Target) (*finding.Scan, error) {
	if target.Root == "" || target.ScratchDir == "" {
		return nil, errors.New("trivy: scan target needs a root and a scratch dir")
	}
	root, err := filepath.Abs(target.Root)
	if err != nil {
		return nil, fmt.Errorf("trivy: resolving %s: %w", target.Root, err)
	}
	scannedAt := time.Now().UTC()

	scan, err := b.scan(ctx, root, target)
	if err != nil {
		return nil, fmt.Errorf("trivy: scanning %s: %w", root, err)
	}
	scan.ScannedAt = scannedAt
	return scan, nil
}

func (b *Backend) scan(ctx context.Context, root string, target scanner.Target) (
	*finding.Scan, error) {
	version, err := b.version(ctx)
	if err != nil {
		return nil, err
	}

	// Trivy skips unreadable directories without a word: refuse before it starts.
	closed, err := scanutil.FirstClosed(root, scanutil.ReaderFor(target.Credential))
	if err != nil {
		return nil, err
	}
	if closed != "" {
		return nil, fmt.Errorf("the scanning user may not read %s: %w",
			closed, scanner.ErrIncomplete)
	}

	work, meta, err := b.prepareRun(target)
	if err != nil {
		return nil, err
	}
	reportPath := filepath.Join(work, "report.json")

	runCtx, cancel := context.WithTimeout(ctx, b.cfg.Timeout+killGrace)
	defer cancel()
	log, err := process{
		binary: b.path,
		args:   b.args(work, reportPath, root),
		dir:    work,
		env:    []string{"HOME=" + work, "TMPDIR=" + filepath.Join(work, "tmp")},
		cred:   target.Credential,
	}.run(runCtx)
	if err != nil {
		return nil, err
	}

	data, err := readReport(reportPath)
	if err != nil {
		return nil, fmt.Errorf("reading trivy's report (trivy exited 0): %w", err)
	}
	// `scan-gate scan` keeps trivy's own report next to the gate's.
	if err := scanner.KeepReportData(ctx, "trivy-report.json", data); err != nil {
		return nil, err
	}
	rep, err := parseReport(data)
	if err != nil {
		return nil, fmt.Errorf("reading trivy's report %s: %w", reportPath, err)
	}
	if err := checkBlindSpots(rep, root, log); err != nil {
		return nil, err
	}

	findings := rep.findings(root)
	if findings == nil {
		findings = []finding.Finding{}
	}
	return &finding.Scan{
		Scanner:        Name,
		ScannerVersion: version,
		DBUpdatedAt:    meta.UpdatedAt,
		OS:             rep.osName(),
		Findings:       findings,
	}, nil
}

// maxReportSize bounds the report read into memory. Trivy's reports of large images run to
// tens of megabytes; a scanner writing without end must not exhaust the node's memory.
const maxReportSize = 256 << 20

// readReport reads the report the scanning user wrote, refusing a link in its place.
func readReport(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxReportSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxReportSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxReportSize)
	}
	return data, nil
}

// args is the `trivy rootfs` command line. --debug rather than --quiet: files Trivy may not
// read are logged at debug level only, and the gate must see them.
func (b *Backend) args(work, reportPath, root string) []string {
	args := []string{
		"rootfs",
		"--format", "json",
		"--output", reportPath,
		"--scanners", "vuln",
		// The guard counts the packages found: listed by default since Trivy 0.50.
		"--list-all-pkgs",
		"--cache-dir", filepath.Join(work, "cache"),
		"--cache-backend", "memory",
		"--skip-db-update",
		"--skip-java-db-update",
		"--offline-scan",
		"--skip-version-check",
		"--disable-telemetry",
		"--no-progress",
		"--debug",
		"--timeout", b.cfg.Timeout.String(),
	}
	args = append(args, b.cfg.ExtraArgs...)
	return append(args, "--", root)
}

// prepareWork makes this run's private dir in scratch: the home, temp dir and cache of the
// Trivy process, with cache/db linked to the shared DB. It belongs to cred when one is given.
// prepareRun pins the DB (if DBDir/db is a link that an update swaps, this run keeps one
// DB), reads its metadata and makes the run's private work directory.
func (b *Backend) prepareRun(target scanner.Target) (string, dbMetadata, error) {
	dbDir, err := filepath.EvalSymlinks(filepath.Join(b.cfg.DBDir, "db"))
	if err != nil {
		return "", dbMetadata{}, fmt.Errorf("finding the trivy DB: %w", err)
	}
	meta, err := readDBMetadata(dbDir)
	if err != nil {
		return "", dbMetadata{}, err
	}
	work, err := prepareWork(target.ScratchDir, dbDir, target.Credential)
	return work, meta, err
}

func prepareWork(scratch, dbDir string, cred *scanner.Credential) (string, error) {
	work, err := os.MkdirTemp(scratch, "trivy-")
	if err != nil {
		return "", fmt.Errorf("creating trivy's work dir: %w", err)
	}
	dirs := []string{work, filepath.Join(work, "cache"), filepath.Join(work, "tmp")}
	for _, dir := range dirs[1:] {
		if err := os.Mkdir(dir, 0o700); err != nil {
			return "", fmt.Errorf("creating trivy's work dir: %w", err)
		}
	}
	if err := os.Symlink(dbDir, filepath.Join(work, "cache", "db")); err != nil {
		return "", fmt.Errorf("linking trivy's cache to the shared DB: %w", err)
	}

	if cred != nil {
		for _, dir := range dirs {
			if err := os.Chown(dir, int(cred.UID), int(cred.GID)); err != nil {
				return "", fmt.Errorf("handing trivy's work dir to uid %d: %w", cred.UID, err)
			}
		}
	}
	return work, nil
}
