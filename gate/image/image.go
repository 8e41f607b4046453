// Package image opens the images a launch names (a SIF file, a bare squashfs file or a sandbox
// directory), works out what the container runtime would mount from them, and computes the
// content key that identifies that content.
//
// An Image keeps the file open: the bytes that are hashed are the bytes that are extracted,
// even if the path is replaced while the gate runs.
package image

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Kind is the format of an image.
type Kind string

// The image formats the gate reads.
const (
	SIF      Kind = "sif"
	Squashfs Kind = "squashfs"
	Sandbox  Kind = "sandbox"
)

// Partition is a filesystem the runtime mounts from an image file.
type Partition struct {
	Offset int64  `json:"offset"`
	Size   int64  `json:"size"`
	FS     string `json:"fs"`   // "squashfs", "ext3", ...
	Role   string `json:"role"` // "primary" or "overlay"
}

// Image is an opened image.
type Image struct {
	// Path is the image as it was named.
	Path string
	// Resolved is the absolute path of what was opened, with every symbolic link and ".."
	// resolved. Policy globs match it, the audit log records it, and a sandbox is read
	// through it.
	Resolved string
	Kind     Kind
	// ID identifies the file (or sandbox directory) by its metadata, for the stat index.
	ID FileID
	// Partitions lists what the runtime mounts, primary first. Empty for a sandbox.
	Partitions []Partition
	// Unscannable, when not empty, says why this image cannot be scanned (an encrypted or
	// ext3 partition). The image can still be keyed, so the refusal is recorded.
	Unscannable string

	file *os.File // nil for a sandbox
	// identified says Kind, Partitions and Unscannable are known; see OpenUnread.
	identified bool
}

// FileID identifies an unchanged file without reading it.
type FileID struct {
	Dev     uint64 `json:"dev"`
	Ino     uint64 `json:"ino"`
	Size    int64  `json:"size"`
	MtimeNs int64  `json:"mtime_ns"`
	CtimeNs int64  `json:"ctime_ns"`
}

// FileIDOf returns the FileID of st.
func FileIDOf(st *unix.Stat_t) FileID {
	return FileID{
		Dev:     st.Dev,
		Ino:     st.Ino,
		Size:    st.Size,
		MtimeNs: st.Mtim.Nano(),
		CtimeNs: st.Ctim.Nano(),
	}
}

// Errors that callers tell apart. Each is wrapped with the path and the details.
var (
	// ErrNotImage is returned for input that is neither a SIF, a squashfs nor a directory.
	ErrNotImage = errors.New("not a SIF, squashfs image or sandbox directory")
	// ErrMalformed is returned for a SIF whose structure is broken.
	ErrMalformed = errors.New("malformed image")
	// ErrNotRegular is returned for a FIFO, socket, device or other special file.
	ErrNotRegular = errors.New("not a regular file")
)

// Open opens the image at path and reads its format. Special files (FIFOs, devices, sockets,
// and links to them) are refused without being opened for reading. The caller must Close
// the image.
func Open(path string) (*Image, error) {
	im, err := OpenUnread(path)
	if err != nil {
		return nil, err
	}
	if err := im.Identify(); err != nil {
		im.Close()
		return nil, err
	}
	return im, nil
}

// OpenUnread opens the image at path like Open but reads nothing from it: only its metadata
// is looked at, so that a caller that finds the file in a stat index reads no image bytes
// at all. Until Identify is called, the Kind of a file is empty and its Partitions are not
// known; Key and KeyWith call Identify themselves.
func OpenUnread(path string) (*Image, error) {
	// O_PATH opens without reading: a FIFO does not block, a device is not touched.
	pathFD, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening image %s: %w", path, &os.PathError{
			Op: "open", Path: path, Err: err})
	}
	defer unix.Close(pathFD)

	var st unix.Stat_t
	if err := unix.Fstat(pathFD, &st); err != nil {
		return nil, fmt.Errorf("inspecting image %s: %w", path, err)
	}
	fdPath := "/proc/self/fd/" + strconv.Itoa(pathFD)
	resolved, err := os.Readlink(fdPath)
	if err != nil {
		return nil, fmt.Errorf("resolving image path %s: %w", path, err)
	}

	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return &Image{Path: path, Resolved: resolved, Kind: Sandbox, ID: FileIDOf(&st),
			identified: true}, nil
	case unix.S_IFREG:
	default:
		return nil, fmt.Errorf("image %s: %w (%s)", path, ErrNotRegular, fileType(st.Mode))
	}

	// Reopen the very inode we inspected, now for reading.
	file, err := os.OpenFile(fdPath, os.O_RDONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("opening image %s for reading: %w", path, err)
	}
	return &Image{Path: path, Resolved: resolved, ID: FileIDOf(&st), file: file}, nil
}

// Identify reads the image's format: its Kind, the Partitions the runtime mounts, and
// whether it is Unscannable. It does nothing once that is known.
func (im *Image) Identify() error {
	if im.identified {
		return nil
	}
	if im.file == nil {
		return fmt.Errorf("identifying image %s: it is closed", im.Path)
	}
	if err := im.identifyFormat(); err != nil {
		return err
	}
	im.identified = true
	return nil
}

// Close releases the image's file.
func (im *Image) Close() error {
	if im.file == nil {
		return nil
	}
	err := im.file.Close()
	im.file = nil
	return err
}

// File returns the open image file, or nil for a sandbox directory.
func (im *Image) File() *os.File { return im.file }

var (
	sifMagic      = []byte("SIF_MAGIC\x00")
	squashfsMagic = []byte("hsqs")
)

// sifMagicOffset is where the magic stands, after the 32-byte launch script.
const sifMagicOffset = 32

func (im *Image) identifyFormat() error {
	head := make([]byte, sifMagicOffset+len(sifMagic))
	n, err := im.file.ReadAt(head, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("reading image %s: %w", im.Path, err)
	}
	head = head[:n]

	switch {
	case len(head) == sifMagicOffset+len(sifMagic) &&
		string(head[sifMagicOffset:]) == string(sifMagic):
		im.Kind = SIF
		return im.readSIF()
	case len(head) >= len(squashfsMagic) && string(head[:4]) == string(squashfsMagic):
		im.Kind = Squashfs
		im.Partitions = []Partition{{Offset: 0, Size: im.ID.Size, FS: "squashfs",
			Role: "primary"}}
		return im.checkSquashfs(im.Partitions[0])
	}
	return fmt.Errorf("image %s: %w", im.Path, ErrNotImage)
}

func fileType(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFIFO:
		return "a FIFO"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFCHR:
		return "a character device"
	case unix.S_IFBLK:
		return "a block device"
	case unix.S_IFLNK:
		return "a symbolic link"
	}
	return "mode " + strconv.FormatUint(uint64(mode), 8)
}

// ErrChanged is returned when an image file changed while the gate was using it.
var ErrChanged = errors.New("image changed while it was being checked")

// Unchanged reports an error when the open file's metadata differs from when it was opened:
// a result made while the image was being rewritten must not be cached for either content.
func (im *Image) Unchanged() error {
	if im.file == nil {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(im.file.Fd()), &st); err != nil {
		return fmt.Errorf("re-checking image %s: %w", im.Path, err)
	}
	if now := FileIDOf(&st); now != im.ID {
		return fmt.Errorf("image %s: %w (size %d -> %d)", im.Path, ErrChanged, im.ID.Size,
			now.Size)
	}
	return nil
}
