// Package proc runs the host tools the gate drives (unsquashfs, find, the scanners): by an
// absolute path found without trusting PATH, as an unprivileged user when asked, in their own
// process group that is killed whole when the context ends, with a minimal environment.
package proc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// SafePath is the PATH children get, and where tools are looked for when the gate's own PATH
// is empty, as it is in a Slurm prolog.
const SafePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// LookPath resolves name to an absolute path: a name with a slash is taken as it is;
// otherwise PATH is searched, then SafePath.
func LookPath(name string) (string, error) {
	if strings.Contains(name, "/") {
		if fi, err := os.Stat(name); err != nil || !fi.Mode().IsRegular() ||
			fi.Mode()&0o111 == 0 {
			return "", fmt.Errorf("finding %s: not an executable file", name)
		}
		return filepath.Abs(name)
	}
	if p, err := exec.LookPath(name); err == nil {
		return filepath.Abs(p)
	}
	for _, dir := range filepath.SplitList(SafePath) {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("finding %s: not found in PATH or %s", name, SafePath)
}

// Credential is the user and group a child runs as.
type Credential struct {
	UID, GID uint32
}

// Cmd describes one child process.
type Cmd struct {
	Path string
	Args []string // without the program name
	Dir  string
	// Env is the whole environment of the child, in addition to PATH=SafePath.
	Env []string
	// Credential, when set, is who the child runs as (needs root).
	Credential *Credential
	// ExtraFiles become the child's descriptors 3, 4, ...
	ExtraFiles []*os.File
	// Stdout, when set, receives standard output instead of the result buffer.
	Stdout *os.File
	// Stderr, when set, receives standard error instead of the result buffer, for callers
	// that read a long log as it is written.
	Stderr io.Writer
}

// Result is what a finished child left.
type Result struct {
	ExitCode int
	Stdout   []byte
	Stderr   []byte
}

// ErrKilled marks a child killed because its context ended.
var ErrKilled = errors.New("killed at its deadline")

// Run starts c and waits for it. A non-zero exit is not an error: the caller reads
// Result.ExitCode. An error means the child could not be started, or was killed.
func Run(ctx context.Context, c Cmd) (Result, error) {
	cmd := exec.Command(c.Path, c.Args...)
	cmd.Dir = c.Dir
	cmd.Env = append([]string{"PATH=" + SafePath}, c.Env...)
	cmd.ExtraFiles = c.ExtraFiles
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if c.Credential != nil {
		cmd.SysProcAttr.Credential = &syscall.Credential{
			Uid: c.Credential.UID, Gid: c.Credential.GID, Groups: []uint32{}}
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	if c.Stdout != nil {
		cmd.Stdout = c.Stdout
	}
	cmd.Stderr = &limitedBuffer{buf: &stderr, max: 64 << 10}
	if c.Stderr != nil {
		cmd.Stderr = c.Stderr
	}

	if err := cmd.Start(); err != nil {
		return Result{}, fmt.Errorf("starting %s: %w", filepath.Base(c.Path), err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		// Kill the whole group: scanners start helpers of their own.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return Result{ExitCode: -1, Stdout: stdout.Bytes(), Stderr: stderr.Bytes()},
			fmt.Errorf("%s %w: %w", filepath.Base(c.Path), ErrKilled, context.Cause(ctx))
	}
	// Reap anything the child left in its group.
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)

	res := Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		res.ExitCode = exitErr.ExitCode()
		if res.ExitCode < 0 {
			return res, fmt.Errorf("%s: %w", filepath.Base(c.Path), err)
		}
	default:
		return res, fmt.Errorf("running %s: %w", filepath.Base(c.Path), err)
	}
	return res, nil
}

// LastLines returns the last n non-empty lines of out, joined by "; ", for error messages.
func LastLines(out []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "; ")
}

// limitedBuffer keeps the first max bytes written to it; a chatty child cannot fill memory.
type limitedBuffer struct {
	buf *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.buf.Len(); room > 0 {
		l.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}
