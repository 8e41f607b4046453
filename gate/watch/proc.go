// Package watch inspects containers that are already running: it finds the processes whose
// root directory is not the host's, works out what their root filesystem is (mapping a
// loop-mounted squashfs back to its image file, so the cache is used), and otherwise copies
// the live root filesystem into a private directory and scans the copy. Watcher follows one
// task and its descendants from before they enter a container until the task ends.
//
// Everything here reads /proc and /sys; inspecting another user's processes needs root.
package watch

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrGone is returned for a process that has ended, or whose PID now belongs to another
// process.
var ErrGone = errors.New("process has ended")

// procDir is where procfs is mounted.
const procDir = "/proc"

// Process is one process, identified by its PID and its start time, so that a PID reused by
// a new process is never taken for the one being watched.
type Process struct {
	PID int
	// Start is the start time in clock ticks after boot (field 22 of /proc/PID/stat).
	Start uint64
}

// procStat holds the fields of /proc/PID/stat the package uses.
type procStat struct {
	state byte
	ppid  int
	start uint64
}

func readStat(pid int) (procStat, error) {
	data, err := os.ReadFile(filepath.Join(procDir, strconv.Itoa(pid), "stat"))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			return procStat{}, fmt.Errorf("process %d: %w", pid, ErrGone)
		}
		return procStat{}, fmt.Errorf("reading process %d: %w", pid, err)
	}
	// The command name, in parentheses, may hold spaces and parentheses itself.
	end := bytes.LastIndexByte(data, ')')
	if end < 0 {
		return procStat{}, fmt.Errorf("reading process %d: malformed stat", pid)
	}
	fields := strings.Fields(string(data[end+1:]))
	if len(fields) < 20 || len(fields[0]) != 1 {
		return procStat{}, fmt.Errorf("reading process %d: malformed stat", pid)
	}
	ppid, err1 := strconv.Atoi(fields[1])
	start, err2 := strconv.ParseUint(fields[19], 10, 64)
	if err1 != nil || err2 != nil {
		return procStat{}, fmt.Errorf("reading process %d: malformed stat", pid)
	}
	return procStat{state: fields[0][0], ppid: ppid, start: start}, nil
}

// Lookup returns the running process with this PID.
func Lookup(pid int) (Process, error) {
	if pid <= 0 {
		return Process{}, fmt.Errorf("process %d: not a process id", pid)
	}
	st, err := readStat(pid)
	if err != nil {
		return Process{}, err
	}
	if st.state == 'Z' || st.state == 'X' {
		return Process{}, fmt.Errorf("process %d: %w (a zombie)", pid, ErrGone)
	}
	return Process{PID: pid, Start: st.start}, nil
}

// Alive reports whether the process still runs: its PID exists, is not a zombie, and has the
// same start time.
func (p Process) Alive() bool {
	now, err := Lookup(p.PID)
	return err == nil && now.Start == p.Start
}

// UID returns the process's real user id.
func (p Process) UID() (int, error) {
	data, err := os.ReadFile(filepath.Join(procDir, strconv.Itoa(p.PID), "status"))
	if err != nil {
		return -1, fmt.Errorf("reading process %d: %w", p.PID, err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				return strconv.Atoi(f[0])
			}
		}
	}
	return -1, fmt.Errorf("reading process %d: no Uid line in status", p.PID)
}

// Descendants returns the processes below p, children first. Processes that end meanwhile
// are left out.
func (p Process) Descendants() []Process {
	var out []Process
	queue := []int{p.PID}
	seen := map[int]bool{p.PID: true}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		for _, child := range children(pid) {
			if seen[child] {
				continue
			}
			seen[child] = true
			if q, err := Lookup(child); err == nil {
				out = append(out, q)
				queue = append(queue, child)
			}
		}
	}
	return out
}

// children lists the child processes of pid from /proc/PID/task/*/children, or, on a kernel
// without that file, by reading every process's parent.
func children(pid int) []int {
	tasks, err := os.ReadDir(filepath.Join(procDir, strconv.Itoa(pid), "task"))
	if err != nil {
		return nil
	}
	var out []int
	for _, task := range tasks {
		data, err := os.ReadFile(filepath.Join(procDir, strconv.Itoa(pid), "task",
			task.Name(), "children"))
		if errors.Is(err, fs.ErrNotExist) {
			return childrenByScan(pid)
		}
		for _, f := range strings.Fields(string(data)) {
			if child, err := strconv.Atoi(f); err == nil {
				out = append(out, child)
			}
		}
	}
	return out
}

func childrenByScan(pid int) []int {
	var out []int
	for _, other := range allPIDs() {
		if st, err := readStat(other); err == nil && st.ppid == pid {
			out = append(out, other)
		}
	}
	return out
}

// allPIDs lists the processes in /proc, by PID.
func allPIDs() []int {
	entries, _ := os.ReadDir(procDir)
	var out []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil && pid > 0 {
			out = append(out, pid)
		}
	}
	slices.Sort(out) // by number: /proc lists 10 before 9
	return out
}

// RootID identifies a root directory by device and inode.
type RootID struct {
	Dev uint64 `json:"dev"`
	Ino uint64 `json:"ino"`
}

// HostRoot identifies this process's own root directory, which scan-gate takes for the
// host's: run watch and ps in the host's root.
func HostRoot() (RootID, error) {
	var st unix.Stat_t
	if err := unix.Stat("/", &st); err != nil {
		return RootID{}, fmt.Errorf("inspecting the host root: %w", err)
	}
	return RootID{Dev: st.Dev, Ino: st.Ino}, nil
}

// rootDir is the path of the process's root directory as procfs shows it.
func (p Process) rootDir() string {
	return filepath.Join(procDir, strconv.Itoa(p.PID), "root")
}

// Root identifies the process's root directory (what /proc/PID/root leads to).
func (p Process) Root() (RootID, error) {
	var st unix.Stat_t
	if err := unix.Stat(p.rootDir(), &st); err != nil {
		if !p.Alive() {
			return RootID{}, fmt.Errorf("process %d: %w", p.PID, ErrGone)
		}
		return RootID{}, fmt.Errorf("reading the root of process %d: %w", p.PID, err)
	}
	return RootID{Dev: st.Dev, Ino: st.Ino}, nil
}

// JobID returns the Slurm job the process belongs to, from its cgroup path (".../job_42/...")
// or, failing that, from SLURM_JOB_ID in its environment; "" when neither says.
func (p Process) JobID() string {
	dir := filepath.Join(procDir, strconv.Itoa(p.PID))
	if data, err := os.ReadFile(filepath.Join(dir, "cgroup")); err == nil {
		for part := range strings.SplitSeq(string(data), "/") {
			if id, ok := strings.CutPrefix(strings.TrimSpace(part), "job_"); ok && isDigits(id) {
				return id
			}
		}
	}
	if data, err := os.ReadFile(filepath.Join(dir, "environ")); err == nil {
		for entry := range strings.SplitSeq(string(data), "\x00") {
			if id, ok := strings.CutPrefix(entry, "SLURM_JOB_ID="); ok && isDigits(id) {
				return id
			}
		}
	}
	return ""
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
