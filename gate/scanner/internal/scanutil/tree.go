// Package scanutil holds what the grype and qscanner backends share: checks on the tree
// before a scanner sees it, remembering a tool's version across processes, and keeping the
// tail of a scanner's log.
package scanutil

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
	"github.com/scan-gate/scan-gate/internal/proc"
)

// PackageDBs are the package databases of the Linux distributions scanners read. A tree
// holding one has OS packages, so a scan that saw none is blind, not clean.
var PackageDBs = []string{
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

// FindPackageDB returns the first package database present in the tree, or "". Scanners
// follow no symbolic links, so a database reached through one, or one that is not a regular
// file or directory (a FIFO, a device), would be silently skipped while the runtime uses it:
// that is an error wrapping scanner.ErrIncomplete, not an absent database.
func FindPackageDB(root string) (string, error) {
	for _, name := range PackageDBs {
		present, err := presentNoLinks(root, name)
		if err != nil {
			return "", err
		}
		if present {
			return name, checkPackageDB(root, name)
		}
	}
	return "", nil
}

// checkPackageDB refuses a package database of the wrong kind: a database file that is a
// directory or empty (scanners then read no packages and report nothing), or a database
// directory (status.d) that is a file.
func checkPackageDB(root, name string) error {
	info, err := os.Lstat(filepath.Join(root, name))
	if err != nil {
		return fmt.Errorf("looking at %s: %w", name, err)
	}
	wantDir := strings.HasSuffix(name, ".d")
	switch {
	case wantDir && !info.IsDir():
		return fmt.Errorf("the package database %s is not a directory: %w", name,
			scanner.ErrIncomplete)
	case !wantDir && info.IsDir():
		return fmt.Errorf("the package database %s is a directory: %w", name,
			scanner.ErrIncomplete)
	case !wantDir && info.Size() == 0:
		return fmt.Errorf("the package database %s is empty: %w", name, scanner.ErrIncomplete)
	}
	return nil
}

// presentNoLinks reports whether root/rel exists with no symbolic link on the way. A link
// or a special file on the way is an error: the runtime would follow it, a scanner would not.
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
				"link at %s, which scanners do not follow: %w", rel, relTo(root, path),
				scanner.ErrIncomplete)
		case !info.Mode().IsRegular() && !info.IsDir():
			return false, fmt.Errorf("%s in the image is %v, not a file a scanner can read: %w",
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

// Reader is the user a scan runs as, for checking what it may read.
type Reader struct {
	uid  uint32
	gids []uint32
}

// ReaderFor is the scanning user: cred, or this process when cred is nil.
func ReaderFor(cred *proc.Credential) Reader {
	if cred != nil {
		// proc.Run starts the child with no supplementary groups.
		return Reader{uid: cred.UID, gids: []uint32{cred.GID}}
	}
	r := Reader{uid: uint32(os.Geteuid()), gids: []uint32{uint32(os.Getegid())}}
	groups, _ := os.Getgroups()
	for _, g := range groups {
		r.gids = append(r.gids, uint32(g))
	}
	return r
}

// FirstClosed returns the first entry under root (relative to it) that r may not read: a
// directory it may not list and enter, or a package database (PackageDBs) it may not read.
// It returns "" when there is none. Mode bits only, no ACLs; root reads everything.
// Scanners skip what they may not read without failing, so this is checked before.
func FirstClosed(root string, r Reader) (string, error) {
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
		if !r.may(info, 0o5) {
			closed, _ = filepath.Rel(root, path)
			return fs.SkipAll
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("checking permissions under %s: %w", root, err)
	}
	if closed != "" {
		return closed, nil
	}

	for _, name := range PackageDBs {
		info, err := os.Lstat(filepath.Join(root, name))
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		if !r.may(info, 0o4) {
			return name, nil
		}
	}
	return "", nil
}

// may reports whether r has all the permission bits want (4 read, 1 execute) on info.
func (r Reader) may(info fs.FileInfo, want uint32) bool {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return false
	}
	perm := uint32(info.Mode().Perm())
	switch {
	case st.Uid == r.uid:
		return perm>>6&want == want
	case slices.Contains(r.gids, st.Gid):
		return perm>>3&want == want
	}
	return perm&want == want
}
