package extract

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/gofrs/flock"

	"github.com/scan-gate/scan-gate/internal/proc"
)

// runPrefix names run directories inside a scratch directory, so that Sweep touches nothing
// else.
const runPrefix = "scan-gate-run-"

// RunDir is one private working directory. While it exists its owner holds a lock on a file
// beside it; a directory whose lock can be taken belongs to a run that died.
type RunDir struct {
	Path string
	lock *flock.Flock
}

// NewRunDir creates a fresh private directory under base, owned by cred's user when set.
func NewRunDir(base string, cred *proc.Credential) (*RunDir, error) {
	if err := safeBase(base); err != nil {
		return nil, err
	}
	var random [8]byte
	rand.Read(random[:])
	name := runPrefix + hex.EncodeToString(random[:])
	lock := flock.New(filepath.Join(base, name+".lock"))
	if ok, err := lock.TryLock(); err != nil || !ok {
		return nil, fmt.Errorf("locking run directory %s: %v", name, err)
	}
	path := filepath.Join(base, name)
	if err := os.Mkdir(path, 0o700); err != nil {
		lock.Unlock()
		os.Remove(lock.Path())
		return nil, fmt.Errorf("creating run directory: %w", err)
	}
	if cred != nil {
		if err := os.Chown(path, int(cred.UID), int(cred.GID)); err != nil {
			os.Remove(path)
			lock.Unlock()
			os.Remove(lock.Path())
			return nil, fmt.Errorf("handing run directory to uid %d: %w", cred.UID, err)
		}
	}
	return &RunDir{Path: path, lock: lock}, nil
}

// safeBase creates base if needed and makes sure that no one but this process's user may
// create, rename or remove entries in it: otherwise whoever may could swap an extracted tree
// for a clean one between extraction and scan, and have that verdict cached for the image.
func safeBase(base string) error {
	if err := os.MkdirAll(base, 0o755); err != nil {
		return fmt.Errorf("creating scratch directory: %w", err)
	}
	fi, err := os.Lstat(base)
	if err != nil {
		return fmt.Errorf("checking scratch directory: %w", err)
	}
	uid, _ := ownerOf(fi)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("scratch directory %s is not a directory (a link?)", base)
	case uid != os.Geteuid() || fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("scratch directory %s is not safe to unpack in: it must belong to "+
			"uid %d and be writable by no one else (owner uid %d, mode %v)", base,
			os.Geteuid(), uid, fi.Mode().Perm())
	}
	return nil
}

// Mkdir makes a subdirectory of the run directory with the run directory's owner.
func (r *RunDir) Mkdir(name string) error {
	path := filepath.Join(r.Path, name)
	if err := os.Mkdir(path, 0o700); err != nil {
		return err
	}
	st, err := os.Stat(r.Path)
	if err != nil {
		return err
	}
	uid, gid := ownerOf(st)
	return os.Lchown(path, uid, gid)
}

// Remove deletes the run directory and its lock. It is safe to call twice.
func (r *RunDir) Remove() error {
	err := removeTree(r.Path)
	os.Remove(r.lock.Path())
	r.lock.Unlock()
	return err
}

// Sweep removes run directories under base whose runs died (their lock is free). It returns
// how many it removed.
func Sweep(base string) (int, error) {
	entries, err := os.ReadDir(base)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("sweeping scratch directory %s: %w", base, err)
	}
	removed := 0
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, runPrefix) || !strings.HasSuffix(name, ".lock") {
			continue
		}
		lock := flock.New(filepath.Join(base, name))
		ok, err := lock.TryLock()
		if err != nil || !ok {
			continue // a live run holds it
		}
		dir := filepath.Join(base, strings.TrimSuffix(name, ".lock"))
		if err := removeTree(dir); err == nil {
			removed++
		}
		os.Remove(lock.Path())
		lock.Unlock()
	}
	return removed, nil
}

// removeTree removes path even where the image left directories without write permission.
// os.RemoveAll never follows symbolic links.
func removeTree(path string) error {
	err := os.RemoveAll(path)
	if err == nil || os.Geteuid() == 0 {
		// Root removes anything; it never changes modes in a tree another user owns.
		return err
	}
	filepath.WalkDir(path, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(p, 0o700)
		}
		return nil
	})
	if err := os.RemoveAll(path); err != nil {
		return fmt.Errorf("removing run directory: %w", err)
	}
	return nil
}

func ownerOf(fi os.FileInfo) (uid, gid int) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid), int(st.Gid)
	}
	return os.Getuid(), os.Getgid()
}
