package qscanner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/scan-gate/scan-gate/gate/scanner"
	"github.com/scan-gate/scan-gate/gate/scanner/internal/scanutil"
	"github.com/scan-gate/scan-gate/internal/proc"
)

// outcome is what one qscanner run left: its output dir and, in evaluate-policy mode, the
// platform's verdict.
type outcome struct {
	dir     string
	verdict string // "allow", "deny", "audit"
}

// knownStatuses say what the exit statuses seen in use mean, for messages.
var knownStatuses = map[int]string{
	1:  "a generic error",
	2:  "an invalid parameter",
	15: "the OS of the image was not found",
	17: "the OS of the image is not supported",
	40: "QScanner could not get the vulnerability report from the Qualys platform",
	41: "QScanner could not get the policy evaluation result from the Qualys platform",
}

// run starts qscanner in a fresh work dir and maps its exit status. Whatever the outcome,
// the files it wrote are kept for `scan-gate scan` (with the token redacted).
func (b *Backend) run(ctx context.Context, root string, target scanner.Target,
	token string) (*outcome, error) {
	work, err := prepareWork(target.ScratchDir, b.cfg.CacheDir == "", target.Credential)
	if err != nil {
		return nil, err
	}
	out := filepath.Join(work, "out")
	uname, err := b.uname()
	if err != nil {
		return nil, err
	}

	env := []string{"HOME=" + work, "TMPDIR=" + filepath.Join(work, "tmp")}
	if token != "" {
		env = append(env, TokenEnv+"="+token)
	}
	log := &scanutil.LineLog{Secrets: []string{token}}
	runCtx, cancel := context.WithTimeout(ctx, b.cfg.Timeout+killGrace)
	defer cancel()
	start := time.Now()
	res, err := proc.Run(runCtx, proc.Cmd{Path: b.path, Args: b.args(root, work, uname),
		Dir: work, Env: env, Credential: target.Credential, Stderr: log})
	log.Flush()

	// Whatever happened, the files it wrote are kept for `scan-gate scan`; failing to keep
	// them is reported only when the scan itself worked.
	keepErr := keepOutput(ctx, out, token)
	switch {
	case errors.Is(err, proc.ErrKilled):
		return nil, fmt.Errorf("running qscanner: killed with its process group after %s: "+
			"%w", time.Since(start).Round(time.Millisecond), context.Cause(runCtx))
	case err != nil:
		// proc's errors name the binary and how it ended, never its environment.
		return nil, fmt.Errorf("running qscanner: %w; stderr ends:\n%s", err, log.Tail())
	}

	code := res.ExitCode
	c := b.cfg.ExitCodes
	verdict := ""
	switch {
	case slices.Contains(c.Allow, code):
		verdict = "allow"
	case slices.Contains(c.Deny, code):
		verdict = "deny"
	case slices.Contains(c.Audit, code):
		verdict = "audit"
	default:
		what, ok := knownStatuses[code]
		if !ok {
			what = "a failed stage of the scan"
		}
		return nil, fmt.Errorf("qscanner exit status %d (%s): no outcome; stderr ends:\n%s",
			code, what, log.Tail())
	}
	if verdict != "allow" && b.cfg.Mode != ModeEvaluatePolicy {
		return nil, fmt.Errorf("qscanner exit status %d means %s, which only mode %s "+
			"gives, not %s; stderr ends:\n%s", code, strings.ToUpper(verdict),
			ModeEvaluatePolicy, b.cfg.Mode, log.Tail())
	}
	if keepErr != nil {
		return nil, keepErr
	}
	return &outcome{dir: out, verdict: verdict}, nil
}

// args is the qscanner command line: `qscanner rootfs TREE [flags]`, the documented shape.
func (b *Backend) args(root, work, uname string) []string {
	c := b.cfg
	args := []string{"rootfs", root,
		"--mode", c.Mode,
		"--output-dir", filepath.Join(work, "out"),
		"--format", "json,spdx,cyclonedx",
		"--shell-commands", "uname -a=" + uname,
		"--scan-timeout", fmt.Sprintf("%ds", int(c.Timeout.Seconds())),
	}
	if c.Mode != ModeInventoryOnly {
		args = append(args, "--pod", c.Pod)
	}
	if c.Mode == ModeEvaluatePolicy || c.Mode == ModeGetReport {
		args = append(args, "--report-format", "sarif")
	}
	if len(c.ScanTypes) > 0 {
		args = append(args, "--scan-types", strings.Join(c.ScanTypes, ","))
	}
	if len(c.PolicyTags) > 0 && c.Mode == ModeEvaluatePolicy {
		args = append(args, "--policy-tags", strings.Join(c.PolicyTags, ","))
	}
	if len(c.ExcludeDirs) > 0 {
		args = append(args, "--exclude-dirs", strings.Join(c.ExcludeDirs, ","))
	}
	cacheDir := c.CacheDir
	if cacheDir == "" {
		cacheDir = filepath.Join(work, "cache")
	}
	args = append(args, "--cache-dir", cacheDir)
	if c.OfflineScan {
		args = append(args, "--offline-scan")
	}
	return append(args, c.ExtraArgs...)
}

// uname is this host's `uname -a`, made from uname(2) as GNU uname prints it: the container
// runs on this kernel. Commas, which could split the --shell-commands list, become spaces.
func (b *Backend) uname() (string, error) {
	s := b.cfg.Uname
	if s == "" {
		var u unix.Utsname
		if err := unix.Uname(&u); err != nil {
			return "", fmt.Errorf("reading this host's uname: %w", err)
		}
		s = strings.Join([]string{unix.ByteSliceToString(u.Sysname[:]),
			unix.ByteSliceToString(u.Nodename[:]), unix.ByteSliceToString(u.Release[:]),
			unix.ByteSliceToString(u.Version[:]), unix.ByteSliceToString(u.Machine[:]),
			"GNU/Linux"}, " ")
	}
	return strings.ReplaceAll(s, ",", " "), nil
}

// prepareWork makes a run's private dir in scratch, owned by cred when one is given: the
// process's home and temp dir, a fresh empty output dir, and a fresh cache when asked.
func prepareWork(scratch string, ownCache bool, cred *proc.Credential) (string, error) {
	work, err := os.MkdirTemp(scratch, "qscanner-")
	if err != nil {
		return "", fmt.Errorf("creating qscanner's work dir: %w", err)
	}
	dirs := []string{work}
	names := []string{"out", "tmp"}
	if ownCache {
		names = append(names, "cache")
	}
	for _, name := range names {
		dir := filepath.Join(work, name)
		if err := os.Mkdir(dir, 0o700); err != nil {
			return "", fmt.Errorf("creating qscanner's work dir: %w", err)
		}
		dirs = append(dirs, dir)
	}
	if cred != nil {
		for _, dir := range dirs {
			if err := os.Chown(dir, int(cred.UID), int(cred.GID)); err != nil {
				return "", fmt.Errorf("handing qscanner's work dir to uid %d: %w", cred.UID,
					err)
			}
		}
	}
	return work, nil
}

// keepOutput copies the regular files qscanner wrote into its output dir to the report dir
// of ctx, if any, each prefixed "qscanner-" unless it already is.
func keepOutput(ctx context.Context, out, token string) error {
	if scanner.ReportDir(ctx) == "" {
		return nil
	}
	entries, err := os.ReadDir(out)
	if err != nil {
		return fmt.Errorf("listing qscanner's output: %w", err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		name := e.Name()
		if !strings.HasPrefix(name, "qscanner") {
			name = "qscanner-" + name
		}
		if err := scanner.KeepReport(ctx, name, filepath.Join(out, e.Name()),
			token); err != nil {
			return err
		}
	}
	return nil
}

// glob returns the files in dir matching pattern, in name order.
func glob(dir, pattern string) ([]string, error) {
	matches, err := filepath.Glob(filepath.Join(dir, pattern))
	if err != nil {
		return nil, fmt.Errorf("looking for %s in qscanner's output: %w", pattern, err)
	}
	return matches, nil
}
