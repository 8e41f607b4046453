package trivy

import (
	"fmt"

	"github.com/scan-gate/scan-gate/gate/scanner"
	"github.com/scan-gate/scan-gate/gate/scanner/internal/scanutil"
)

// Trivy turns several kinds of blindness into a clean report. These guards catch them.
//
//   - Without the files it detects the OS from (etc/debian_version and the like), or for an OS
//     it does not support, Trivy scans no OS packages and says nothing (pkg/scan/local).
//   - Its directory walker skips a directory it may not read without a word, even at debug
//     level (pkg/fanal/walker/fs.go, onError).
//   - A file an analyzer wants but may not open is logged only at debug level, as
//     "Permission error" with file_path=... (pkg/fanal/analyzer/analyzer.go).
//
// Post-analyzers (dpkg, Python packaging) fail the run instead, which is an error already.

// checkBlindSpots compares what Trivy reported with what the tree holds.
func checkBlindSpots(rep *report, root string, log *stderrLog) error {
	if log.permissionErrors > 0 {
		return fmt.Errorf("trivy could not read %d file(s) of the image, first %s: %w",
			log.permissionErrors, log.firstPermissionError, scanner.ErrIncomplete)
	}

	pkgDB, err := scanutil.FindPackageDB(root)
	if err != nil {
		return err
	}
	if pkgDB == "" && rep.osName() != "" {
		// An operating system whose package database is gone: what is installed is unknown.
		return fmt.Errorf("trivy detected %s but the image has no package database, so its "+
			"installed packages cannot be checked: %w", rep.osName(), scanner.ErrIncomplete)
	}
	if pkgDB == "" && rep.osName() == "" {
		// Nothing tells what is installed: the image's OS packages cannot be checked.
		return fmt.Errorf("trivy detected no operating system and the image has no package "+
			"database it can read: its installed software cannot be checked: %w",
			scanner.ErrIncomplete)
	}
	if pkgDB != "" && !rep.hasOSPackages() {
		detected := rep.osName()
		if detected == "" {
			detected = "no OS"
		}
		return fmt.Errorf("trivy detected %s and scanned no OS packages, but the tree has a "+
			"package database (%s): refusing to call it clean: %w",
			detected, pkgDB, scanner.ErrIncomplete)
	}
	return nil
}
