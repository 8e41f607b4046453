package trivy

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/scan-gate/scan-gate/gate/finding"
	"github.com/scan-gate/scan-gate/gate/scanner"
	"github.com/scan-gate/scan-gate/gate/scanner/internal/scanutil"
)

// Targets that are not image trees, for `scan-gate prewarm`: registry images (`trivy image`)
// and source trees (`trivy repo`). Neither is ever launched through the gate, so their
// results are reported, not cached.

// ScanImage scans the registry image ref with `trivy image`. Trivy pulls it from the
// registry itself (--image-src remote), never from a local container daemon, whose socket
// the scanning user must not reach. A registry that cannot be reached is an error.
func (b *Backend) ScanImage(ctx context.Context, ref string,
	target scanner.Target) (*finding.Scan, error) {
	if ref == "" || strings.HasPrefix(ref, "-") {
		return nil, fmt.Errorf("trivy: bad image reference %q", ref)
	}
	scan, err := b.scanRef(ctx, "image", ref, target, []string{"--image-src", "remote"})
	if err != nil {
		return nil, fmt.Errorf("trivy: scanning registry image %s: %w", ref, fetchError(err))
	}
	return scan, nil
}

// fetchError shortens trivy's account of an image it could not get (a stack of wrapped
// errors ending in a list of causes, one per image source) to those causes: the registry's
// answer, or the name lookup or connection that failed. Other errors are kept whole.
func fetchError(err error) error {
	msg := err.Error()
	if !strings.Contains(msg, "unable to find the specified image") {
		return err
	}
	var causes []string
	for _, line := range strings.Split(msg, "\n") {
		if cause, ok := strings.CutPrefix(strings.TrimSpace(line), "* "); ok {
			causes = append(causes, cause)
		}
	}
	if len(causes) == 0 {
		return err
	}
	return &shortError{msg: "cannot fetch the image: " + strings.Join(causes, "; "), err: err}
}

// shortError shows a short message and keeps the full error for errors.Is and As.
type shortError struct {
	msg string
	err error
}

func (e *shortError) Error() string { return e.msg }
func (e *shortError) Unwrap() error { return e.err }

// ScanRepo scans the source tree target.Root with `trivy repo` (language package lock
// files, not OS packages).
func (b *Backend) ScanRepo(ctx context.Context, target scanner.Target) (*finding.Scan, error) {
	root, err := filepath.Abs(target.Root)
	if err != nil || target.Root == "" {
		return nil, fmt.Errorf("trivy: scanning source tree %q: no absolute path", target.Root)
	}
	closed, err := scanutil.FirstClosed(root, scanutil.ReaderFor(target.Credential))
	if err != nil {
		return nil, fmt.Errorf("trivy: scanning source tree %s: %w", root, err)
	}
	if closed != "" {
		return nil, fmt.Errorf("trivy: scanning source tree %s: the scanning user may not "+
			"list directory %s: %w", root, closed, scanner.ErrIncomplete)
	}
	scan, err := b.scanRef(ctx, "repo", root, target, nil)
	if err != nil {
		return nil, fmt.Errorf("trivy: scanning source tree %s: %w", root, err)
	}
	return scan, nil
}

// scanRef runs `trivy COMMAND ... -- ref` with the flags of a rootfs scan and returns the
// findings.
func (b *Backend) scanRef(ctx context.Context, command, ref string, target scanner.Target,
	extra []string) (*finding.Scan, error) {
	if target.ScratchDir == "" {
		return nil, errors.New("no scratch dir")
	}
	scannedAt := time.Now().UTC()
	version, err := b.version(ctx)
	if err != nil {
		return nil, err
	}
	work, meta, err := b.prepareRun(target)
	if err != nil {
		return nil, err
	}
	reportPath := filepath.Join(work, "report.json")

	args := b.args(work, reportPath, ref)
	args[0] = command
	// b.args ends with "--", ref: the command's own flags go before them.
	args = append(args[:len(args)-2], append(extra, "--", ref)...)

	runCtx, cancel := context.WithTimeout(ctx, b.cfg.Timeout+killGrace)
	defer cancel()
	log, err := process{binary: b.path, args: args, dir: work,
		env:  []string{"HOME=" + work, "TMPDIR=" + filepath.Join(work, "tmp")},
		cred: target.Credential}.run(runCtx)
	if err != nil {
		return nil, err
	}
	data, err := readReport(reportPath)
	if err != nil {
		return nil, fmt.Errorf("reading trivy's report (trivy exited 0): %w", err)
	}
	rep, err := parseReport(data)
	if err != nil {
		return nil, fmt.Errorf("reading trivy's report %s: %w", reportPath, err)
	}
	if log.permissionErrors > 0 {
		return nil, fmt.Errorf("trivy could not read %d file(s), first %s: %w",
			log.permissionErrors, log.firstPermissionError, scanner.ErrIncomplete)
	}
	// A repo scan reports what its lockfiles and manifests list; an OS tree has none, and
	// trivy repo then reports no result at all rather than an error.
	if command == "repo" && len(rep.Results) == 0 {
		return nil, fmt.Errorf("%w: trivy found no lockfile or package manifest to assess "+
			"(an image or OS tree is prewarmed as a path, not repo:)",
			scanner.ErrNothingAssessed)
	}
	findings := rep.findings(ref)
	if findings == nil {
		findings = []finding.Finding{}
	}
	return &finding.Scan{Scanner: Name, ScannerVersion: version, DBUpdatedAt: meta.UpdatedAt,
		ScannedAt: scannedAt, OS: rep.osName(), Findings: findings}, nil
}
