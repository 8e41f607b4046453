package watch

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/scan-gate/scan-gate/gate/image"
)

// mount is one line of /proc/PID/mountinfo.
type mount struct {
	id         int
	major      uint32
	minor      uint32
	root       string // the directory of the filesystem that is mounted
	mountPoint string // where, as the process sees it
	fsType     string
	source     string
}

// parseMountinfo reads a mountinfo file (proc(5)).
func parseMountinfo(r io.Reader) ([]mount, error) {
	var mounts []mount
	scanner := bufio.NewScanner(r)
	scanner.Buffer(make([]byte, 64<<10), 1<<20)
	for scanner.Scan() {
		line := scanner.Text()
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 6 || len(g) < 2 {
			return nil, fmt.Errorf("reading mountinfo: malformed line %q", line)
		}
		id, err := strconv.Atoi(f[0])
		if err != nil {
			return nil, fmt.Errorf("reading mountinfo: malformed line %q", line)
		}
		majMin := strings.SplitN(f[2], ":", 2)
		if len(majMin) != 2 {
			return nil, fmt.Errorf("reading mountinfo: malformed line %q", line)
		}
		major, err1 := strconv.ParseUint(majMin[0], 10, 32)
		minor, err2 := strconv.ParseUint(majMin[1], 10, 32)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("reading mountinfo: malformed line %q", line)
		}
		mounts = append(mounts, mount{id: id, major: uint32(major), minor: uint32(minor),
			root: unescape(f[3]), mountPoint: unescape(f[4]), fsType: g[0],
			source: unescape(g[1])})
	}
	if err := scanner.Err(); err != nil {
		return nil, fmt.Errorf("reading mountinfo: %w", err)
	}
	return mounts, nil
}

// unescape undoes mountinfo's octal escapes of space, tab, newline and backslash.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Root describes the root filesystem of a process.
type Root struct {
	ID RootID `json:"id"`
	// FSType and Source are those of the mount at the process's "/", when its mountinfo
	// shows one (a process chrooted into a subdirectory has none).
	FSType string `json:"fs_type,omitempty"`
	Source string `json:"source,omitempty"`
	// Image is the image file the root filesystem comes from, when it is a squashfs on a
	// loop device backed by that file (directly, or for a tmpfs root assembled from binds of
	// one such squashfs, as Apptainer's underlay does); "" otherwise.
	Image string `json:"image,omitempty"`
	// Offset is where in Image the loop device starts.
	Offset int64 `json:"offset,omitempty"`

	loop loopInfo // the loop device behind Image
}

// loopInfo is what a loop device says about its backing file.
type loopInfo struct {
	file      string
	offset    int64
	sizeLimit int64
	fileDev   uint64
	fileIno   uint64
}

// loopLookup returns the loop device with this device number, or ok=false for a device that
// is not a loop device. A variable, so tests can describe devices they do not have.
var loopLookup = lookupLoop

// Identify works out what the process's root filesystem is.
func (p Process) Identify() (Root, error) {
	id, err := p.Root()
	if err != nil {
		return Root{}, err
	}
	f, err := os.Open(filepath.Join(procDir, strconv.Itoa(p.PID), "mountinfo"))
	if err != nil {
		if !p.Alive() {
			return Root{}, fmt.Errorf("process %d: %w", p.PID, ErrGone)
		}
		return Root{}, fmt.Errorf("reading the mounts of process %d: %w", p.PID, err)
	}
	mounts, err := parseMountinfo(f)
	f.Close()
	if err != nil {
		return Root{}, fmt.Errorf("process %d: %w", p.PID, err)
	}
	root := identify(id, mounts)
	if !p.Alive() {
		return Root{}, fmt.Errorf("process %d: %w", p.PID, ErrGone)
	}
	return root, nil
}

// identify names the root filesystem from the process's mounts.
func identify(id RootID, mounts []mount) Root {
	root := Root{ID: id}
	var top *mount
	for i := range mounts {
		// The last mount on "/" is the one on top.
		if mounts[i].mountPoint == "/" {
			top = &mounts[i]
		}
	}
	if top == nil || unix.Mkdev(top.major, top.minor) != id.Dev {
		return root // chrooted into a directory of some filesystem
	}
	root.FSType, root.Source = top.fsType, top.source

	switch {
	case top.fsType == "squashfs" && top.root == "/":
		if loop, ok := loopLookup(id.Dev); ok {
			root.Image, root.Offset, root.loop = loop.file, loop.offset, loop
		}
	case top.fsType == "tmpfs":
		// Underlay: a tmpfs root whose directories are binds from the image's squashfs.
		// Mapped only when every loop-backed squashfs mount below "/" is the same device.
		var dev uint64
		for _, m := range mounts {
			if m.fsType != "squashfs" || m.mountPoint == "/" {
				continue
			}
			d := unix.Mkdev(m.major, m.minor)
			if dev != 0 && d != dev {
				return root
			}
			dev = d
		}
		if dev == 0 {
			return root
		}
		if loop, ok := loopLookup(dev); ok {
			root.Image, root.Offset, root.loop = loop.file, loop.offset, loop
		}
	}
	return root
}

// lookupLoop reads the loop device dev from sysfs and the device itself, and checks that the
// file now at the backing path is the file the device reads (same device and inode).
func lookupLoop(dev uint64) (loopInfo, bool) {
	sys := fmt.Sprintf("/sys/dev/block/%d:%d", unix.Major(dev), unix.Minor(dev))
	data, err := os.ReadFile(filepath.Join(sys, "loop", "backing_file"))
	if err != nil {
		return loopInfo{}, false
	}
	file := strings.TrimSuffix(string(data), "\n")
	if strings.HasSuffix(file, " (deleted)") || !filepath.IsAbs(file) {
		return loopInfo{}, false
	}
	link, err := os.Readlink(sys)
	if err != nil {
		return loopInfo{}, false
	}
	node, err := os.Open(filepath.Join("/dev", filepath.Base(link)))
	if err != nil {
		return loopInfo{}, false
	}
	status, err := unix.IoctlLoopGetStatus64(int(node.Fd()))
	node.Close()
	if err != nil {
		return loopInfo{}, false
	}
	info := loopInfo{file: file, offset: int64(status.Offset),
		sizeLimit: int64(status.Sizelimit), fileDev: status.Device, fileIno: status.Inode}
	if !info.sameFile(file) {
		return loopInfo{}, false
	}
	return info, true
}

// sameFile reports whether path is now the loop device's backing file.
func (l loopInfo) sameFile(path string) bool {
	var st unix.Stat_t
	return unix.Stat(path, &st) == nil && st.Ino == l.fileIno && st.Dev == l.fileDev
}

// errNotMounted is returned when the loop device reads a part of the image file that is not
// the partition the runtime mounts as the root filesystem.
var errNotMounted = errors.New("the loop device does not start at the image's root " +
	"filesystem")

// checkPartition verifies that the loop device's offset is where the image's primary
// partition starts (0 for a bare squashfs file).
func checkPartition(path string, offset, sizeLimit int64) error {
	im, err := image.Open(path)
	if err != nil {
		return err
	}
	defer im.Close()
	for _, part := range im.Partitions {
		if part.Role == "primary" && part.Offset == offset &&
			(sizeLimit == 0 || sizeLimit == part.Size) {
			return nil
		}
	}
	return fmt.Errorf("image %s at offset %d: %w", path, offset, errNotMounted)
}
