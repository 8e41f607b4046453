package hook

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrRootUnknown means the container's process shows no root filesystem mounted for it: the
// runtime mounted none where it could be found (no /proc beneath it), or the process shares
// the hook's mount namespace. The caller then has only config.json to go by.
var ErrRootUnknown = errors.New("no root filesystem mounted for the container found")

// ErrConfigChanged means config.json no longer names what the runtime set up from it.
var ErrConfigChanged = errors.New("config.json changed since the runtime read it")

// maxMountinfo bounds the mount table read; a node's is some tens of kilobytes.
const maxMountinfo = 8 << 20

// VerifyMountedRoot checks that root, the root filesystem config.json names, is the one the
// runtime mounted for the container whose process is pid: the runtime read config.json
// before the hook, and whoever can write the bundle may have changed it since.
//
// At createRuntime and prestart (runc, crun) the container's process waits in its own mount
// namespace, with the root filesystem bind-mounted at its host path and the container's
// /proc mounted beneath it, before pivot_root. The newest proc mount other than /proc
// there marks the root filesystem; it must be the same directory (device and inode, seen
// through /proc/PID/root) as root. ErrRootUnknown is returned when no such mount is found.
func VerifyMountedRoot(pid int, root string) error {
	if pid <= 0 {
		return ErrRootUnknown
	}
	procDir := "/proc/" + strconv.Itoa(pid)
	own, errOwn := os.Readlink("/proc/self/ns/mnt")
	theirs, errTheirs := os.Readlink(procDir + "/ns/mnt")
	if errOwn != nil || errTheirs != nil {
		return fmt.Errorf("%w: reading the mount namespace of PID %d", ErrRootUnknown, pid)
	}
	if own == theirs {
		return fmt.Errorf("%w: PID %d shares the hook's mount namespace", ErrRootUnknown, pid)
	}

	f, err := os.Open(procDir + "/mountinfo")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrRootUnknown, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxMountinfo))
	if err != nil {
		return fmt.Errorf("%w: reading the mount table of PID %d: %w", ErrRootUnknown, pid,
			err)
	}
	mounted, ok := containerRoot(data)
	if !ok {
		return ErrRootUnknown
	}

	seen, err := os.Stat(procDir + "/root" + mounted)
	if err != nil {
		return fmt.Errorf("checking the root filesystem the runtime mounted: %w", err)
	}
	named, err := os.Stat(root)
	if err != nil {
		return fmt.Errorf("checking the root filesystem: %w", err)
	}
	if !os.SameFile(seen, named) {
		return fmt.Errorf("%w: the root filesystem the runtime mounted for the container "+
			"(%s) is not %s, which config.json names now", ErrConfigChanged, mounted,
			filepath.Clean(root))
	}
	return nil
}

// containerRoot finds, in a mountinfo table, the mount point above the newest proc mount
// that is not the host's /proc: the container's root filesystem before pivot_root.
func containerRoot(mountinfo []byte) (string, bool) {
	newest, root := -1, ""
	sc := bufio.NewScanner(bytes.NewReader(mountinfo))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 6 || sep+1 >= len(fields) || fields[sep+1] != "proc" {
			continue
		}
		id, err := strconv.Atoi(fields[0])
		if err != nil {
			continue
		}
		point := unescapeMount(fields[4])
		parent, ok := strings.CutSuffix(point, "/proc")
		if !ok || parent == "" || id <= newest {
			continue
		}
		newest, root = id, parent
	}
	return root, newest >= 0
}

// unescapeMount undoes the octal escapes (\040 for a space) of a mountinfo path.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
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
