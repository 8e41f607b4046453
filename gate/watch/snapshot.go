package watch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/scan-gate/scan-gate/internal/proc"
)

// ErrCannotInspect marks a root filesystem that could not be read whole. Such a root is
// never reported clean.
var ErrCannotInspect = errors.New("cannot inspect the container's root filesystem")

// skippedTop are directories at the top of a root whose content is never part of an image:
// the kernel's and the runtime's views, mounted or not.
var skippedTop = map[string]bool{"proc": true, "sys": true, "dev": true}

// snapshotStats says what a snapshot copied and left out.
type snapshotStats struct {
	Files, Dirs, Links int
	Bytes              int64
	// Vanished counts entries that disappeared between being listed and being read.
	Vanished int
	// Mounts lists the directories and files left out because another filesystem is
	// mounted there (procfs, tmpfs, bind mounts such as the user's home).
	Mounts []string
}

// snapshotter copies a live root filesystem, as one process sees it, into a private
// directory for the scanner. It reads only through file descriptors opened beneath the root
// without following links, so every path is resolved inside the container (an absolute link
// in it never leads to the host), and it stays on the root's own mount.
type snapshotter struct {
	ctx     context.Context
	rootMnt uint64
	cred    *proc.Credential
	limit   int64 // bytes the copy may take
	stats   snapshotStats
	// afterFile, when set, runs after each copied file with its path in the container
	// (tests end the process or remove files with it).
	afterFile func(where string)
}

// snapshot copies the tree below rootFD (an O_PATH descriptor of the root directory) into
// the existing empty directory dest.
func (s *snapshotter) snapshot(rootFD int, dest string) error {
	var stx unix.Statx_t
	if err := unix.Statx(rootFD, "", unix.AT_EMPTY_PATH, unix.STATX_MNT_ID, &stx); err != nil {
		return fmt.Errorf("%w: %w", ErrCannotInspect, err)
	}
	if stx.Mask&unix.STATX_MNT_ID == 0 {
		return fmt.Errorf("%w: the kernel does not report mount ids (statx STATX_MNT_ID, "+
			"Linux 5.8)", ErrCannotInspect)
	}
	s.rootMnt = stx.Mnt_id

	var fsStat unix.Statfs_t
	if err := unix.Statfs(dest, &fsStat); err != nil {
		return fmt.Errorf("inspecting scratch space %s: %w", dest, err)
	}
	// Leave a tenth of the free space to others.
	s.limit = int64(fsStat.Bavail) * fsStat.Bsize / 10 * 9

	dirFD, err := unix.Openat(rootFD, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%w: opening its root: %w", ErrCannotInspect, err)
	}
	destFD, err := unix.Open(dest, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|
		unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(dirFD)
		return fmt.Errorf("opening snapshot directory: %w", err)
	}
	defer unix.Close(destFD)
	return s.copyDir(dirFD, "/", destFD)
}

// copyDir copies the entries of the directory dirFD (which it closes), whose path in the
// container is at, into destFD.
func (s *snapshotter) copyDir(dirFD int, at string, destFD int) error {
	dir := os.NewFile(uintptr(dirFD), at)
	defer dir.Close()
	entries, err := dir.ReadDir(-1)
	if err != nil {
		if isVanished(err) {
			s.stats.Vanished++
			return nil
		}
		return fmt.Errorf("%w: listing %s: %w", ErrCannotInspect, at, err)
	}
	for _, e := range entries {
		if err := s.ctx.Err(); err != nil {
			return err
		}
		if err := s.copyEntry(dirFD, at, e.Name(), destFD); err != nil {
			return err
		}
	}
	return nil
}

func (s *snapshotter) copyEntry(dirFD int, at, name string, destFD int) error {
	where := path.Join(at, name)
	var stx unix.Statx_t
	err := unix.Statx(dirFD, name, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_TYPE|
		unix.STATX_MODE|unix.STATX_SIZE|unix.STATX_BLOCKS|unix.STATX_MNT_ID, &stx)
	if err != nil {
		if isVanished(err) {
			s.stats.Vanished++
			return nil
		}
		return fmt.Errorf("%w: inspecting %s: %w", ErrCannotInspect, where, err)
	}
	mode := uint32(stx.Mode)
	other := stx.Mnt_id != s.rootMnt

	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if err := s.mkdir(destFD, name); err != nil {
			return err
		}
		if other || (at == "/" && skippedTop[name]) {
			if other {
				s.stats.Mounts = append(s.stats.Mounts, where)
			}
			return nil // an empty directory keeps the tree's shape
		}
		return s.descend(dirFD, at, name, destFD)
	case unix.S_IFREG:
		if other {
			s.stats.Mounts = append(s.stats.Mounts, where)
			return nil
		}
		// The copy keeps holes: a sparse file costs what it stores, not what it claims.
		stored := min(int64(stx.Size), int64(stx.Blocks)*512)
		return s.copyFile(dirFD, where, name, destFD, stored)
	case unix.S_IFLNK:
		return s.copyLink(dirFD, where, name, destFD)
	}
	return nil // devices, FIFOs and sockets are not image content a scanner reads
}

func (s *snapshotter) descend(dirFD int, at, name string, destFD int) error {
	where := path.Join(at, name)
	childFD, err := unix.Openat(dirFD, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|
		unix.O_CLOEXEC, 0)
	if err != nil {
		if isVanished(err) {
			s.stats.Vanished++
			return nil
		}
		return fmt.Errorf("%w: opening %s: %w", ErrCannotInspect, where, err)
	}
	// Between the look and the open another filesystem may have been mounted there.
	var stx unix.Statx_t
	if err := unix.Statx(childFD, "", unix.AT_EMPTY_PATH, unix.STATX_MNT_ID, &stx); err != nil {
		unix.Close(childFD)
		return fmt.Errorf("%w: inspecting %s: %w", ErrCannotInspect, where, err)
	}
	if stx.Mnt_id != s.rootMnt {
		unix.Close(childFD)
		s.stats.Mounts = append(s.stats.Mounts, where)
		return nil
	}
	childDest, err := unix.Openat(destFD, name, unix.O_RDONLY|unix.O_DIRECTORY|
		unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(childFD)
		return fmt.Errorf("writing snapshot of %s: %w", where, err)
	}
	defer unix.Close(childDest)
	s.stats.Dirs++
	return s.copyDir(childFD, where, childDest)
}

func (s *snapshotter) mkdir(destFD int, name string) error {
	if err := unix.Mkdirat(destFD, name, 0o755); err != nil {
		return fmt.Errorf("writing snapshot directory %s: %w", name, err)
	}
	return s.chown(destFD, name)
}

// copyFile copies one regular file; stored is what its data takes on disk, as far as
// statx said, checked against the scratch space before anything is written.
func (s *snapshotter) copyFile(dirFD int, where, name string, destFD int, stored int64) error {
	if s.stats.Bytes+stored > s.limit {
		return s.tooBig()
	}
	srcFD, err := unix.Openat(dirFD, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|
		unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		if isVanished(err) {
			s.stats.Vanished++
			return nil
		}
		return fmt.Errorf("%w: opening %s: %w", ErrCannotInspect, where, err)
	}
	src := os.NewFile(uintptr(srcFD), where)
	defer src.Close()
	var st unix.Stat_t
	if err := unix.Fstat(srcFD, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil // replaced by something else meanwhile
	}

	dstFD, err := unix.Openat(destFD, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|
		unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("writing snapshot of %s: %w", where, err)
	}
	dst := os.NewFile(uintptr(dstFD), name)
	defer dst.Close()
	n, err := copySparse(dst, src, st.Size, s.limit-s.stats.Bytes)
	s.stats.Bytes += n
	if errors.Is(err, errTooBig) {
		return s.tooBig()
	}
	if err != nil {
		if isVanished(err) {
			s.stats.Vanished++
			return nil
		}
		return fmt.Errorf("%w: copying %s: %w", ErrCannotInspect, where, err)
	}
	// Permission bits only: no setuid, setgid or sticky bits in the copy.
	if err := dst.Chmod(os.FileMode(st.Mode&0o777 | 0o400)); err != nil {
		return fmt.Errorf("writing snapshot of %s: %w", where, err)
	}
	if s.cred != nil {
		if err := dst.Chown(int(s.cred.UID), int(s.cred.GID)); err != nil {
			return fmt.Errorf("writing snapshot of %s: %w", where, err)
		}
	}
	s.stats.Files++
	if s.afterFile != nil {
		s.afterFile(where)
	}
	return nil
}

func (s *snapshotter) tooBig() error {
	return fmt.Errorf("%w: the copy would need more than the %d bytes free in the "+
		"scratch directory", ErrCannotInspect, s.limit)
}

// errTooBig is returned by copySparse when the data would exceed its budget.
var errTooBig = errors.New("more data than the budget")

// copySparse copies the data of src into the empty file dst, leaving src's holes as holes
// (SEEK_DATA, SEEK_HOLE), and gives dst at least src's apparent size. It returns the bytes
// of data copied, and errTooBig as soon as they would pass budget. A filesystem without
// hole support reports the whole file as data: it is then copied whole.
func copySparse(dst, src *os.File, size, budget int64) (int64, error) {
	fd := int(src.Fd())
	var copied, off int64
	for {
		start, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // no data past off
		}
		if err != nil {
			return copied, err
		}
		end, err := unix.Seek(fd, start, unix.SEEK_HOLE)
		if err != nil {
			return copied, err
		}
		if copied+(end-start) > budget {
			return copied, errTooBig
		}
		n, err := io.Copy(io.NewOffsetWriter(dst, start), io.NewSectionReader(src, start,
			end-start))
		copied += n
		if err != nil {
			return copied, err
		}
		if n < end-start {
			break // the file shrank meanwhile
		}
		off = end
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(dst.Fd()), &st); err != nil {
		return copied, err
	}
	if st.Size < size {
		// A trailing hole: only the size is written.
		if err := dst.Truncate(size); err != nil {
			return copied, err
		}
	}
	return copied, nil
}

// copyLink copies a symbolic link. An absolute target is made relative to the link, so that
// it still points into the copy (as it pointed into the container) and never to the host.
func (s *snapshotter) copyLink(dirFD int, where, name string, destFD int) error {
	target, err := readlinkat(dirFD, name)
	if err != nil {
		if isVanished(err) {
			s.stats.Vanished++
			return nil
		}
		return fmt.Errorf("%w: reading link %s: %w", ErrCannotInspect, where, err)
	}
	if strings.HasPrefix(target, "/") {
		up := strings.Repeat("../", strings.Count(path.Dir(where), "/"))
		if path.Dir(where) == "/" {
			up = ""
		}
		target = "./" + up + strings.TrimLeft(path.Clean(target), "/")
	}
	if err := unix.Symlinkat(target, destFD, name); err != nil {
		return fmt.Errorf("writing snapshot of %s: %w", where, err)
	}
	s.stats.Links++
	return s.chown(destFD, name)
}

func (s *snapshotter) chown(destFD int, name string) error {
	if s.cred == nil {
		return nil
	}
	err := unix.Fchownat(destFD, name, int(s.cred.UID), int(s.cred.GID),
		unix.AT_SYMLINK_NOFOLLOW)
	if err != nil {
		return fmt.Errorf("writing snapshot of %s: %w", name, err)
	}
	return nil
}

func readlinkat(dirFD int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirFD, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// isVanished reports an entry that was removed (or replaced) while the walk reached it.
func isVanished(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESTALE) ||
		errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP)
}
