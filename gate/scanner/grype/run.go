package grype

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/scan-gate/scan-gate/gate/finding"
	"github.com/scan-gate/scan-gate/gate/scanner"
	"github.com/scan-gate/scan-gate/gate/scanner/internal/scanutil"
	"github.com/scan-gate/scan-gate/internal/proc"
)

// run is one grype invocation in its own work dir.
type run struct {
	b         *Backend
	work      string
	cred      *proc.Credential
	version   string
	scannedAt time.Time
}

// newRun finds the version, pins the DB and prepares the work dir.
func (b *Backend) newRun(ctx context.Context, target scanner.Target) (*run, error) {
	scannedAt := time.Now().UTC()
	version, err := b.version(ctx)
	if err != nil {
		return nil, err
	}
	dbDir, err := b.pinDB()
	if err != nil {
		return nil, err
	}
	work, err := prepareWork(target.ScratchDir, dbDir, target.Credential)
	if err != nil {
		return nil, err
	}
	return &run{b: b, work: work, cred: target.Credential, version: version,
		scannedAt: scannedAt}, nil
}

// pinDB resolves DBDir/6 once, so that one scan uses one DB even if an update swaps it.
func (b *Backend) pinDB() (string, error) {
	dbDir, err := filepath.EvalSymlinks(filepath.Join(b.cfg.DBDir, dbSchemaDir))
	if err != nil {
		return "", fmt.Errorf("finding the grype DB: %w", err)
	}
	if _, err := scanutil.StatKey(filepath.Join(dbDir, dbFileName)); err != nil {
		return "", fmt.Errorf("finding the grype DB: %w", err)
	}
	return dbDir, nil
}

// env is the whole environment of a grype process run in work with the DB cache dir
// dbCache: offline, and blind to any config file.
func (b *Backend) env(work, dbCache string) []string {
	validate := "true"
	maxAge := b.cfg.MaxDBAge
	if maxAge == 0 {
		validate, maxAge = "false", 100*365*24*time.Hour
	}
	return []string{
		"HOME=" + work,
		"TMPDIR=" + filepath.Join(work, "tmp"),
		"XDG_CONFIG_HOME=" + filepath.Join(work, "config"),
		"XDG_CONFIG_DIRS=" + filepath.Join(work, "config"),
		"XDG_CACHE_HOME=" + filepath.Join(work, "cache"),
		"GRYPE_DB_CACHE_DIR=" + dbCache,
		"GRYPE_DB_AUTO_UPDATE=false",
		"GRYPE_DB_REQUIRE_UPDATE_CHECK=false",
		"GRYPE_CHECK_FOR_APP_UPDATE=false",
		"GRYPE_DB_VALIDATE_AGE=" + validate,
		"GRYPE_DB_MAX_ALLOWED_BUILT_AGE=" + maxAge.String(),
	}
}

// exec runs `grype SOURCE -o json --file REPORT [extra outputs] -vvv EXTRA...` and returns
// the parsed report. -vvv because files grype may not open are logged at trace level only.
func (r *run) exec(ctx context.Context, source string, outputs ...string) (*report, error) {
	reportPath := filepath.Join(r.work, "report.json")
	args := []string{source, "-o", "json", "--file", reportPath}
	args = append(args, outputs...)
	args = append(args, "-vvv")
	args = append(args, r.b.cfg.ExtraArgs...)

	var blind blindLog
	log := &scanutil.LineLog{Watch: blind.watch}
	runCtx, cancel := context.WithTimeout(ctx, r.b.cfg.Timeout)
	defer cancel()
	start := time.Now()
	res, err := proc.Run(runCtx, proc.Cmd{Path: r.b.path, Args: args, Dir: r.work,
		Env: r.b.env(r.work, filepath.Join(r.work, "db")), Credential: r.cred, Stderr: log})
	log.Flush()
	switch {
	case errors.Is(err, proc.ErrKilled):
		return nil, fmt.Errorf("running grype: killed with its process group after %s: %w",
			time.Since(start).Round(time.Millisecond), context.Cause(runCtx))
	case err != nil:
		return nil, fmt.Errorf("running %s: %w; stderr ends:\n%s", r.b.path, err, log.Tail())
	case res.ExitCode != 0 && res.ExitCode != 2:
		return nil, fmt.Errorf("running grype: exit status %d; stderr ends:\n%s",
			res.ExitCode, log.Tail())
	}

	data, err := scanner.ReadReport(reportPath)
	if err != nil {
		return nil, fmt.Errorf("reading grype's report (grype exited %d): %w",
			res.ExitCode, err)
	}
	if err := scanner.KeepReportData(ctx, "grype-report.json", data); err != nil {
		return nil, err
	}
	rep, err := parseReport(data)
	if err != nil {
		return nil, fmt.Errorf("reading grype's report %s: %w", reportPath, err)
	}
	if blind.count > 0 {
		return nil, fmt.Errorf("grype could not read %d path(s) of the image, first %s: %w",
			blind.count, blind.first, scanner.ErrIncomplete)
	}
	return rep, nil
}

// result builds the scan from a report.
func (r *run) result(rep *report) *finding.Scan {
	return &finding.Scan{
		Scanner:        Name,
		ScannerVersion: r.version,
		DBUpdatedAt:    rep.dbBuilt(),
		ScannedAt:      r.scannedAt,
		OS:             rep.osName(),
		Findings:       rep.findings(),
	}
}

// blindLog counts the log lines in which grype (syft, its cataloguer) says it could not read
// something:
//
//	WARN unable to access path="/x/opt/secret": open ...: permission denied from=syft
//	TRACE cataloger returned errors cataloger=dpkg-db-cataloger error=...: permission denied
//
// Other cataloguer errors (a malformed package file in the image) are the image's problem,
// not the scan's, and do not count.
type blindLog struct {
	count int
	first string
}

func (l *blindLog) watch(line string) {
	if !strings.Contains(line, "permission denied") {
		return
	}
	if !strings.Contains(line, "unable to access") &&
		!strings.Contains(line, "cataloger returned errors") {
		return
	}
	l.count++
	if l.first == "" {
		l.first = logPath(line)
	}
}

// logPath is the path= or location= value of a grype log line, or the line itself.
func logPath(line string) string {
	for _, key := range []string{"path=", "location="} {
		i := strings.Index(line, key)
		if i < 0 {
			continue
		}
		rest := line[i+len(key):]
		if quoted, err := strconv.QuotedPrefix(rest); err == nil {
			if v, err := strconv.Unquote(quoted); err == nil {
				return v
			}
		}
		if field, _, _ := strings.Cut(rest, " "); field != "" {
			return strings.TrimSuffix(field, ":")
		}
	}
	if len(line) > 200 {
		line = line[:200] + "..."
	}
	return strings.TrimSpace(line)
}
