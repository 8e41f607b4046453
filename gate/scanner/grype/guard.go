package grype

import (
	"fmt"

	"github.com/scan-gate/scan-gate/gate/scanner"
	"github.com/scan-gate/scan-gate/gate/scanner/internal/scanutil"
)

// Grype, like Trivy, turns blindness into a clean report:
//
//   - A directory or file it may not read is skipped, logged at warn or trace level only;
//     run.go counts those lines, and FirstClosed refuses a tree with such entries before
//     Grype starts.
//   - Without the files it detects the distribution from (etc/os-release and the like), it
//     matches distribution packages against nothing and reports no match.
//
// checkBlindSpots compares what Grype reported with what the tree holds: a tree with a
// package database whose packages Grype did not catalogue, or whose distribution it did not
// detect, was not scanned.
func checkBlindSpots(rep *report, root string, sbom []byte) error {
	pkgDB, err := scanutil.FindPackageDB(root)
	if err != nil || pkgDB == "" {
		return err
	}
	if rep.osName() == "" {
		return fmt.Errorf("grype detected no distribution, but the tree has a package "+
			"database (%s): refusing to call it clean: %w", pkgDB, scanner.ErrIncomplete)
	}
	if n, _ := scanutil.OSPackages(sbom); n == 0 {
		return fmt.Errorf("grype catalogued no distribution packages, but the tree has a "+
			"package database (%s): refusing to call it clean: %w", pkgDB,
			scanner.ErrIncomplete)
	}
	return nil
}
