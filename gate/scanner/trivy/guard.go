package trivy

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/scan-gate/scan-gate/gate/scanner"
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

// packageDBs are the package databases of the distributions Trivy scans. A tree holding one
// has OS packages, so a report without an OS package result is blind, not clean.
var packageDBs = []string{
	"var/lib/dpkg/status",
	"var/lib/dpkg/status.d",
	"lib/apk/db/installed",
	"var/lib/rpm/Packages",
	"var/lib/rpm/Packages.db",
	"var/lib/rpm/rpmdb.sqlite",
	"usr/lib/sysimage/rpm/Packages",
	"usr/lib/sysimage/rpm/Packages.db",
	"usr/lib/sysimage/rpm/rpmdb.sqlite",
}

// findPackageDB returns the first package database present in the tree, or "". Trivy's
// walker follows no symbolic links, so a database reached through one, or one that is not a
// regular file or directory (a FIFO, a device), would be silently skipped: that is an error
// wrapping scanner.ErrIncomplete, not an absent database.
func findPackageDB(root string) (string, error) {
	for _, name := range packageDBs {
		present, err := presentNoLinks(root, name)
		if err != nil {
			return "", err
		}
		if present {
			return name, nil
		}
	}
	return "", nil
}

// presentNoLinks reports whether root/rel exists with no symbolic link on the way. A link
// or a special file on the way is an error: the runtime would follow it, Trivy would not.
func presentNoLinks(root, rel string) (bool, error) {
	path := root
	for part := range strings.SplitSeq(rel, "/") {
		path = filepath.Join(path, part)
		info, err := os.Lstat(path)
		switch {
		case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
			return false, nil
		case err != nil:
			return false, fmt.Errorf("looking for %s in %s: %w", rel, root, err)
		case info.Mode()&fs.ModeSymlink != 0:
			return false, fmt.Errorf("the package database path %s goes through a symbolic "+
				"link at %s, which trivy does not follow: %w", rel, relTo(root, path),
				scanner.ErrIncomplete)
		case !info.Mode().IsRegular() && !info.IsDir():
			return false, fmt.Errorf("%s in the image is %v, not a file trivy can read: %w",
				relTo(root, path), info.Mode().Type(), scanner.ErrIncomplete)
		}
	}
	return true, nil
}

func relTo(root, path string) string {
	rel, err := filepath.Rel(root, path)
	if err != nil {
		return path
	}
	return rel
}

// checkBlindSpots compares what Trivy reported with what the tree holds.
func checkBlindSpots(rep *report, root string, log *stderrLog) error {
	if log.permissionErrors > 0 {
		return fmt.Errorf("trivy could not read %d file(s) of the image, first %s: %w",
			log.permissionErrors, log.firstPermissionError, scanner.ErrIncomplete)
	}

	pkgDB, err := findPackageDB(root)
	if err != nil {
		return err
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

// reader is the user a scan runs as, for checking what it may read.
type reader struct {
	uid  uint32
	gids []uint32
}

// readerFor is the scanning user: cred, or this process.
func readerFor(cred *scanner.Credential) reader {
	if cred != nil {
		// The child is started with no supplementary groups (SysProcAttr.Credential with
		// Groups nil), so its group is exactly cred.GID.
		return reader{uid: cred.UID, gids: []uint32{cred.GID}}
	}
	r := reader{uid: uint32(os.Geteuid()), gids: []uint32{uint32(os.Getegid())}}
	groups, _ := os.Getgroups()
	for _, g := range groups {
		r.gids = append(r.gids, uint32(g))
	}
	return r
}

// firstClosedDir returns the first directory under root (relative) that r may not list and
// enter, or "". It reads mode bits only: ACLs are not looked at. Root may read everything.
func firstClosedDir(root string, r reader) (string, error) {
	if r.uid == 0 {
		return "", nil
	}

	var closed string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if !r.mayEnter(info) {
			closed, _ = filepath.Rel(root, path)
			return fs.SkipAll
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("checking directory permissions under %s: %w", root, err)
	}
	return closed, nil
}

// mayEnter reports whether r may list (read) and enter (execute) the directory.
func (r reader) mayEnter(info fs.FileInfo) bool {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return false
	}
	const readExec = 0o5
	perm := uint32(info.Mode().Perm())
	switch {
	case st.Uid == r.uid:
		return perm>>6&readExec == readExec
	case slices.Contains(r.gids, st.Gid):
		return perm>>3&readExec == readExec
	}
	return perm&readExec == readExec
}
