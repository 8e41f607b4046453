// Package extract unpacks an image's squashfs partitions into a fresh private directory,
// safely: the real unsquashfs runs as an unprivileged user (so it cannot create device nodes
// or files owned by others), reads the very file descriptor the gate hashed, and nothing from
// the image is ever executed. Every run directory is removed on the way out; directories left
// by a killed run are swept by the next one.
package extract

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/scan-gate/scan-gate/gate/image"
	"github.com/scan-gate/scan-gate/internal/proc"
)

// Options says where and as whom extraction happens.
type Options struct {
	// ScratchDir is a directory on node-local disk for run directories.
	ScratchDir string
	// TmpfsDir, when set, is a tmpfs used instead of ScratchDir for images whose unpacked
	// size fits MemoryBudget.
	TmpfsDir     string
	MemoryBudget int64
	// Credential is the unprivileged user that extracts (and later scans); nil runs as the
	// caller, which must then not be root.
	Credential *proc.Credential
	// Unsquashfs is the unsquashfs binary; empty finds it.
	Unsquashfs string
	// Limit, when set, bounds the extractions at once and their scratch space, together
	// with every other extraction sharing it.
	Limit *Limit
}

// tmpfsBase is this user's own directory in the tmpfs: a shared tmpfs such as /dev/shm lets
// anyone with the scanning user's uid rename entries in it, so run directories never sit
// there directly.
func (o Options) tmpfsBase() string {
	return filepath.Join(o.TmpfsDir, "scan-gate-"+strconv.Itoa(os.Geteuid()))
}

// Sweep removes the run directories of killed runs in the scratch and tmpfs directories.
func (o Options) Sweep() (int, error) {
	n, err := Sweep(o.ScratchDir)
	if o.TmpfsDir != "" {
		m, _ := Sweep(o.tmpfsBase())
		n += m
	}
	return n, err
}

// ErrIncomplete marks an extraction that did not write the whole tree.
var ErrIncomplete = errors.New("extraction incomplete")

// Tree is an extracted image in its private run directory.
type Tree struct {
	// Root is the extracted root filesystem.
	Root string
	// Scratch is a private directory for the scanner's own files.
	Scratch string
	// OnTmpfs says whether the tree lives in memory.
	OnTmpfs bool
	// UnpackedSize is the sum of the image's regular file sizes.
	UnpackedSize int64

	run   *RunDir
	grant *grant // this tree's share of Options.Limit
}

// Remove deletes the run directory and everything in it.
func (t *Tree) Remove() error {
	defer t.grant.release()
	return t.run.Remove()
}

// Extract unpacks im's partitions (primary first, then squashfs overlays on top).
func Extract(ctx context.Context, im *image.Image, opts Options) (*Tree, error) {
	// An image opened unread has no partitions yet: extracting it as it is would unpack
	// nothing and leave the scanner an empty tree.
	if err := im.Identify(); err != nil {
		return nil, fmt.Errorf("extracting %s: %w", im.Path, err)
	}
	if im.Kind == image.Sandbox {
		return nil, fmt.Errorf("extracting %s: a sandbox directory is scanned in place", im.Path)
	}
	if im.Unscannable != "" {
		return nil, fmt.Errorf("extracting %s: %s", im.Path, im.Unscannable)
	}
	tool, err := proc.LookPath(orDefault(opts.Unsquashfs, "unsquashfs"))
	if err != nil {
		return nil, fmt.Errorf("extracting %s: %w", im.Path, err)
	}

	size, err := unpackedSize(ctx, tool, im, opts.Credential)
	if err != nil {
		return nil, err
	}
	share, err := opts.Limit.acquire(ctx, reserve(size))
	if err != nil {
		return nil, fmt.Errorf("extracting %s: %w", im.Path, err)
	}
	base, onTmpfs := opts.ScratchDir, false
	if opts.TmpfsDir != "" && size != unknownSize && size <= opts.MemoryBudget &&
		fitsTmpfs(opts.TmpfsDir, size) && safeBase(opts.tmpfsBase()) == nil {
		base, onTmpfs = opts.tmpfsBase(), true
	}
	if size != unknownSize {
		if err := checkRoom(base, size); err != nil {
			share.release()
			return nil, fmt.Errorf("extracting %s: %w", im.Path, err)
		}
	}
	run, err := NewRunDir(base, opts.Credential)
	if err != nil {
		share.release()
		return nil, fmt.Errorf("extracting %s: %w", im.Path, err)
	}
	tree := &Tree{Root: filepath.Join(run.Path, "rootfs"), Scratch: filepath.Join(run.Path,
		"scan"), OnTmpfs: onTmpfs, UnpackedSize: size, run: run, grant: share}
	if err := tree.fill(ctx, tool, im, opts.Credential); err != nil {
		tree.Remove()
		return nil, err
	}
	share.extracted()
	return tree, nil
}

func (t *Tree) fill(ctx context.Context, tool string, im *image.Image,
	cred *proc.Credential) error {
	if err := t.run.Mkdir("scan"); err != nil {
		return fmt.Errorf("extracting %s: %w", im.Path, err)
	}
	source, cleanup, err := readableSource(ctx, im, t.run, cred)
	if err != nil {
		return err
	}
	defer cleanup()
	if t.UnpackedSize == unknownSize {
		if t.UnpackedSize, err = listSize(ctx, tool, im, source, cred); err != nil {
			return err
		}
		if err := checkRoom(filepath.Dir(t.run.Path), t.UnpackedSize); err != nil {
			return fmt.Errorf("extracting %s: %w", im.Path, err)
		}
	}

	for i, p := range im.Partitions {
		unpack := func(dest string, force bool) error {
			args := []string{"-no-xattrs", "-no-progress", "-quiet", "-dest", dest,
				"-offset", strconv.FormatInt(source.offset(p), 10)}
			if force {
				args = append([]string{"-force"}, args...)
			}
			res, err := proc.Run(ctx, proc.Cmd{Path: tool, Args: append(args, source.path),
				Credential: cred, ExtraFiles: source.files, Env: []string{"LC_ALL=C"}})
			if err != nil {
				return err
			}
			return judgeUnsquashfs(res, dest)
		}
		var err error
		if i > 0 {
			err = t.checkOverlay(i, unpack)
		}
		if err == nil {
			err = unpack(t.Root, i > 0)
		}
		if err != nil {
			return fmt.Errorf("extracting %s partition of %s: %w", p.Role, im.Path, err)
		}
	}
	return stripSpecialBits(ctx, t.Root, cred)
}

// checkOverlay unpacks the overlay partition i alone, into a directory of its own, and
// refuses it when one of its paths meets a symbolic link in the tree unpacked so far.
// unsquashfs -force, unpacking on top of the tree, would follow that link: to create the
// overlay's file, or enter the overlay's directory, wherever the link points, outside the
// tree included (CVE-2021-41072 is the same attack within one filesystem, which unsquashfs
// 4.5.1 refuses; across two runs nothing stops it).
func (t *Tree) checkOverlay(i int, unpack func(dest string, force bool) error) error {
	name := "overlay-" + strconv.Itoa(i)
	if err := t.run.Mkdir(name); err != nil {
		return err
	}
	dir := filepath.Join(t.run.Path, name)
	defer removeTree(dir)
	if err := unpack(filepath.Join(dir, "fs"), false); err != nil {
		return err
	}

	// Top down: a link met on the way is reported before anything below it is looked up.
	return filepath.WalkDir(filepath.Join(dir, "fs"), func(path string, d fs.DirEntry,
		err error) error {
		if err != nil {
			return fmt.Errorf("checking where the overlay unpacks: %w", err)
		}
		rel, err := filepath.Rel(filepath.Join(dir, "fs"), path)
		if err != nil || rel == "." {
			return err
		}
		fi, err := os.Lstat(filepath.Join(t.Root, rel))
		if err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%w: the overlay replaces %s, a symbolic link in the "+
				"partitions below it; unpacking it would write where the link points, "+
				"possibly outside the tree", ErrIncomplete, rel)
		}
		return nil
	})
}

// skippedDevice returns the path of the device node an unsquashfs complaint says it did not
// create, unprivileged, or "" for any other line.
func skippedDevice(line string) string {
	for _, kind := range []string{"character", "block"} {
		_, rest, ok := strings.Cut(line, "could not create "+kind+" device ")
		if !ok {
			continue
		}
		if path, ok := strings.CutSuffix(rest, ", because you're not superuser!"); ok {
			return path
		}
	}
	return ""
}

// judgeUnsquashfs accepts exit 0, and exit 2 when every complaint is a device node under
// dest/dev that could not be created: that is expected and loses nothing a scanner reads.
// A device node anywhere else stands where files belong (a package database, say) and would
// hide them from the scan, and any other complaint means files are missing from the tree.
func judgeUnsquashfs(res proc.Result, dest string) error {
	switch res.ExitCode {
	case 0:
		return nil
	case 2:
		devDir := filepath.Join(dest, "dev") + "/"
		for _, line := range strings.Split(string(res.Stderr), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || benignLine(line) {
				continue
			}
			if dev := skippedDevice(line); strings.HasPrefix(dev, devDir) {
				continue
			} else if dev != "" {
				return fmt.Errorf("%w: the image holds a device node outside /dev, at %s",
					ErrIncomplete, strings.TrimPrefix(dev, dest+"/"))
			}
			return fmt.Errorf("%w: unsquashfs: %s", ErrIncomplete, line)
		}
		return nil
	}
	return fmt.Errorf("%w: unsquashfs exited %d: %s", ErrIncomplete, res.ExitCode,
		proc.LastLines(res.Stderr, 3))
}

func benignLine(line string) bool {
	return strings.HasPrefix(line, "Parallel unsquashfs:") ||
		strings.HasPrefix(line, "created ") || strings.HasSuffix(line, "blocks) to write")
}

// unpackedSize sums the sizes of the regular files of every partition, from the squashfs
// listing (which reads only the inode tables).
func unpackedSize(ctx context.Context, tool string, im *image.Image, cred *proc.Credential) (
	int64, error) {
	if cred != nil && !readableBy(im, cred) {
		return unknownSize, nil // listed once copied, in fill
	}
	return listSize(ctx, tool, im, fdSource(im), cred)
}

// unknownSize stands for the size of an image the scanning user cannot read until it has
// been copied for that user.
const unknownSize = -1

// listSize sums the regular file sizes of every partition as the source presents them.
func listSize(ctx context.Context, tool string, im *image.Image, source source,
	cred *proc.Credential) (int64, error) {
	var total int64
	for _, p := range im.Partitions {
		res, err := proc.Run(ctx, proc.Cmd{Path: tool, Credential: cred,
			Args: []string{"-lln", "-offset", strconv.FormatInt(source.offset(p), 10),
				source.path},
			ExtraFiles: source.files, Env: []string{"LC_ALL=C"}})
		if err != nil {
			return 0, fmt.Errorf("listing %s partition of %s: %w", p.Role, im.Path, err)
		}
		if res.ExitCode != 0 {
			return 0, fmt.Errorf("listing %s partition of %s: unsquashfs exited %d: %s",
				p.Role, im.Path, res.ExitCode, proc.LastLines(res.Stderr, 3))
		}
		total += sumListing(res.Stdout)
	}
	return total, nil
}

// sumListing adds the size column of the regular files in `unsquashfs -lln` output:
// "-rw-r--r-- 0/0   1234 2024-01-01 00:00 squashfs-root/etc/passwd".
func sumListing(out []byte) int64 {
	var total int64
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "-") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 3 {
			continue
		}
		if n, err := strconv.ParseInt(fields[2], 10, 64); err == nil && n > 0 {
			total += n
		}
	}
	return total
}

// stripSpecialBits clears setuid and setgid bits in the tree. It runs as the tree's owner,
// so a link swapped in by anyone cannot make it touch a file outside.
func stripSpecialBits(ctx context.Context, root string, cred *proc.Credential) error {
	find, err := proc.LookPath("find")
	if err != nil {
		return fmt.Errorf("clearing setuid bits: %w", err)
	}
	res, err := proc.Run(ctx, proc.Cmd{Path: find, Credential: cred, Env: []string{"LC_ALL=C"},
		Args: []string{root, "-xdev", "-type", "f", "-perm", "/6000", "-exec", "chmod",
			"ug-s", "{}", "+"}})
	if err != nil {
		return fmt.Errorf("clearing setuid bits in %s: %w", root, err)
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("clearing setuid bits in %s: find exited %d: %s", root,
			res.ExitCode, proc.LastLines(res.Stderr, 3))
	}
	return nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// checkRoom refuses an extraction that would fill the scratch filesystem: an image's
// unpacked size is known from its listing before anything is written, and a small image can
// unpack to gigabytes. A tenth of the filesystem, and at least 1 GiB, stays free for jobs.
func checkRoom(dir string, size int64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating scratch directory: %w", err)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		return fmt.Errorf("checking free space in %s: %w", dir, err)
	}
	free := int64(fs.Bavail) * fs.Bsize
	reserve := max(int64(fs.Blocks)*fs.Bsize/10, 1<<30)
	if size > free-reserve {
		return fmt.Errorf("%w: the image unpacks to %d MiB, but %s has %d MiB free and keeps "+
			"%d MiB for jobs", ErrNoRoom, size>>20, dir, free>>20, reserve>>20)
	}
	return nil
}

// ErrNoRoom marks an image too large to unpack in the scratch space.
var ErrNoRoom = errors.New("not enough scratch space")
