package setup

import (
	"fmt"

	"github.com/scan-gate/scan-gate/gate/scanner"
	"github.com/scan-gate/scan-gate/gate/scanner/grype"
	"github.com/scan-gate/scan-gate/gate/scanner/qscanner"
	"github.com/scan-gate/scan-gate/gate/scanner/trivy"
	"github.com/scan-gate/scan-gate/policy"
)

// newGrype builds the grype backend from [scanner.grype].
func newGrype(p *policy.Policy, stateDir string) (*grype.Backend, error) {
	g := p.Scanner.Grype
	b, err := grype.New(grype.Config{Path: g.Path, DBDir: g.DBDir, Timeout: p.Timeouts.Scan,
		MaxDBAge: g.MaxDBAge, ExtraArgs: g.ExtraArgs, StateDir: stateDir})
	if err != nil {
		return nil, fmt.Errorf("setting up grype: %w", err)
	}
	return b, nil
}

// newQScanner builds the qscanner backend from [scanner.qscanner], with the trivy or grype
// backend as its SBOM matcher when inventory-only mode names one.
func newQScanner(p *policy.Policy, stateDir string) (scanner.Backend, error) {
	q := p.Scanner.QScanner
	cfg := qscanner.Config{
		Path:        q.Path,
		Mode:        string(q.Mode),
		Pod:         q.Pod,
		TokenFile:   q.TokenFile,
		ScanTypes:   q.ScanTypes,
		PolicyTags:  q.PolicyTags,
		ExcludeDirs: q.ExcludeDirs,
		CacheDir:    q.CacheDir,
		OfflineScan: q.OfflineScan,
		ExtraArgs:   q.ExtraArgs,
		Timeout:     p.Timeouts.Scan,
		ExitCodes: qscanner.ExitCodes{Allow: q.ExitCodes.Allow, Deny: q.ExitCodes.Deny,
			Audit: q.ExitCodes.Audit},
		Severity: q.MapSeverity,
		StateDir: stateDir,
	}
	if q.Mode == policy.QScannerInventoryOnly {
		switch q.SBOMMatcher {
		case policy.ScannerTrivy:
			m, err := trivy.New(trivy.Config{Path: p.Scanner.Trivy.Path,
				DBDir: p.Scanner.Trivy.DBDir, Timeout: p.Timeouts.Scan,
				ExtraArgs: p.Scanner.Trivy.ExtraArgs, StateDir: stateDir})
			if err != nil {
				return nil, fmt.Errorf("setting up trivy as qscanner's SBOM matcher: %w", err)
			}
			cfg.Matcher = m
		case policy.ScannerGrype:
			m, err := newGrype(p, stateDir)
			if err != nil {
				return nil, fmt.Errorf("setting up qscanner's SBOM matcher: %w", err)
			}
			cfg.Matcher = m
		}
	}
	b, err := qscanner.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("setting up qscanner: %w", err)
	}
	return b, nil
}
