package cache

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
)

// writableByOthers are the permission bits that let someone other than the owner write.
const writableByOthers fs.FileMode = 0o022

func (s *Store) trustedUID(uid uint32) bool { return slices.Contains(s.trusted, uid) }

// ownerOf returns the uid owning the file fi describes.
func ownerOf(fi fs.FileInfo) (uint32, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return st.Uid, true
}

// checkDir refuses a cache directory that is not a real directory, belongs to an untrusted
// user or is writable by group or others.
func (s *Store) checkDir(path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("checking cache directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("cache directory %s is not a directory (mode %v)", path, fi.Mode())
	}
	uid, ok := ownerOf(fi)
	if !ok || !s.trustedUID(uid) {
		return fmt.Errorf("cache directory %s is owned by uid %d, not a trusted user %v; "+
			"refusing to use a cache another user can change", path, uid, s.trusted)
	}
	if fi.Mode().Perm()&writableByOthers != 0 {
		return fmt.Errorf("cache directory %s is writable by group or others (mode %v); "+
			"run chmod go-w %s", path, fi.Mode().Perm(), path)
	}
	return nil
}

// checkAncestors applies checkAncestor to every directory above path.
func (s *Store) checkAncestors(path string) error {
	for dir := filepath.Dir(path); ; dir = filepath.Dir(dir) {
		if err := s.checkAncestor(dir); err != nil {
			return err
		}
		if dir == filepath.Dir(dir) {
			return nil
		}
	}
}

// checkAncestor refuses a directory above the cache that an untrusted user could use to swap
// the cache: one owned by neither root nor a trusted user, or writable by group or others
// without the sticky bit.
func (s *Store) checkAncestor(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("checking the directories above the cache: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s, above the cache directory, is not a directory (mode %v)",
			dir, fi.Mode())
	}
	uid, ok := ownerOf(fi)
	if !ok || (uid != 0 && !s.trustedUID(uid)) {
		return fmt.Errorf("%s, above the cache directory, is owned by uid %d, neither root "+
			"nor a trusted user %v; its owner could swap the cache", dir, uid, s.trusted)
	}
	if fi.Mode()&fs.ModeSticky == 0 && fi.Mode().Perm()&writableByOthers != 0 {
		return fmt.Errorf("%s, above the cache directory, is writable by group or others "+
			"without the sticky bit (mode %v); they could swap the cache", dir, fi.Mode())
	}
	return nil
}

// readTrusted reads a cache file. A missing file, one that is not a regular file, is too
// large, belongs to an untrusted user or is writable by group or others is a miss (an error
// wrapping ErrMiss); other errors, such as permission denied, are returned as they are. The
// checks are made on the open descriptor, so the file checked is the file read.
func (s *Store) readTrusted(path string) ([]byte, fs.FileInfo, error) {
	flags := os.O_RDONLY | syscall.O_NOFOLLOW | syscall.O_NONBLOCK
	f, err := os.OpenFile(path, flags, 0)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ELOOP) {
		return nil, nil, fmt.Errorf("%w: %w", ErrMiss, err)
	}
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()

	fi, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if err := s.checkFile(path, fi); err != nil {
		return nil, nil, err
	}

	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(data) > maxFileSize {
		return nil, nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrMiss, path, maxFileSize)
	}
	return data, fi, nil
}

// checkFile tells whether a cache file may be believed; see readTrusted.
func (s *Store) checkFile(path string, fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: %s is not a regular file (mode %v)", ErrMiss, path, fi.Mode())
	}
	if fi.Size() > maxFileSize {
		return fmt.Errorf("%w: %s is larger than %d bytes", ErrMiss, path, maxFileSize)
	}
	uid, ok := ownerOf(fi)
	if !ok || !s.trustedUID(uid) {
		return fmt.Errorf("%w: %s is owned by uid %d, not a trusted user %v",
			ErrMiss, path, uid, s.trusted)
	}
	if fi.Mode().Perm()&writableByOthers != 0 {
		return fmt.Errorf("%w: %s is writable by group or others (mode %v)",
			ErrMiss, path, fi.Mode().Perm())
	}
	return nil
}
