package trivy

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/scan-gate/scan-gate/gate/finding"
	"github.com/scan-gate/scan-gate/gate/scanner"
	"github.com/scan-gate/scan-gate/gate/scanner/internal/scanutil"
)

// ScanSBOM matches the packages an SBOM file lists (CycloneDX or SPDX JSON, made by another
// scanner) against the DB with `trivy sbom`, with the flags of a tree scan. The file must be
// readable by target.Credential.
//
// Trivy takes the source package of a Debian package only from its own SBOM properties
// (aquasecurity:trivy:SrcName); for any other SBOM it assumes the binary name, and Debian
// advisories, filed by source package, then miss the binaries named otherwise (libcurl4 of
// curl). A caller handing a foreign SBOM should add those properties first (the qscanner
// backend does, from the package URLs' "upstream" qualifier).
//
// An SBOM listing distribution packages without an OS Trivy detects is an incomplete scan:
// Trivy would match those packages against nothing.
func (b *Backend) ScanSBOM(ctx context.Context, sbom string,
	target scanner.Target) (*finding.Scan, error) {
	scan, err := b.scanSBOM(ctx, sbom, target)
	if err != nil {
		return nil, fmt.Errorf("trivy: matching SBOM %s: %w", filepath.Base(sbom), err)
	}
	return scan, nil
}

func (b *Backend) scanSBOM(ctx context.Context, sbom string, target scanner.Target) (
	*finding.Scan, error) {
	if target.ScratchDir == "" {
		return nil, errors.New("no scratch dir")
	}
	data, err := scanner.ReadReport(sbom)
	if err != nil {
		return nil, fmt.Errorf("reading the SBOM: %w", err)
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
	args := b.args(work, reportPath, sbom)
	args[0] = "sbom"
	runCtx, cancel := context.WithTimeout(ctx, b.cfg.Timeout+killGrace)
	defer cancel()
	log, err := process{binary: b.path, args: args, dir: work,
		env:  []string{"HOME=" + work, "TMPDIR=" + filepath.Join(work, "tmp")},
		cred: target.Credential}.run(runCtx)
	if err != nil {
		return nil, err
	}
	report, err := readReport(reportPath)
	if err != nil {
		return nil, fmt.Errorf("reading trivy's report (trivy exited 0): %w", err)
	}
	if err := scanner.KeepReportData(ctx, "trivy-report.json", report); err != nil {
		return nil, err
	}
	rep, err := parseReport(report)
	if err != nil {
		return nil, fmt.Errorf("reading trivy's report %s: %w", reportPath, err)
	}
	if log.permissionErrors > 0 {
		return nil, fmt.Errorf("trivy could not read %d file(s), first %s: %w",
			log.permissionErrors, log.firstPermissionError, scanner.ErrIncomplete)
	}
	if n, kind := scanutil.OSPackages(data); n > 0 && !rep.hasOSPackages() {
		return nil, fmt.Errorf("the SBOM lists %d %s packages but trivy detected no "+
			"operating system in it, so it matched none of them: %w", n, kind,
			scanner.ErrIncomplete)
	}

	findings := rep.findings(sbom)
	if findings == nil {
		findings = []finding.Finding{}
	}
	return &finding.Scan{Scanner: Name, ScannerVersion: version, DBUpdatedAt: meta.UpdatedAt,
		ScannedAt: scannedAt, OS: rep.osName(), Findings: findings}, nil
}
