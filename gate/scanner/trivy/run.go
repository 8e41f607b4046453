package trivy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/scan-gate/scan-gate/gate/scanner"
	"github.com/scan-gate/scan-gate/internal/proc"
)

// process is one trivy invocation.
type process struct {
	binary string
	args   []string
	dir    string   // working directory: empty and private, so no stray trivy.yaml is read
	env    []string // the whole environment; nothing is inherited
	cred   *scanner.Credential
}

// run starts the process in its own process group, kills the whole group when ctx is done,
// and returns what it wrote to stderr. A non-zero exit is an error carrying stderr's tail.
// Its standard output, where the report never goes, is discarded: kept, a scanner printing
// without end would grow the gate's memory without bound.
func (p process) run(ctx context.Context) (*stderrLog, error) {
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("running trivy: %w", err)
	}
	defer devNull.Close()

	log := &stderrLog{}
	start := time.Now()
	res, err := proc.Run(ctx, proc.Cmd{Path: p.binary, Args: p.args, Dir: p.dir, Env: p.env,
		Credential: p.cred, Stdout: devNull, Stderr: log})
	log.flush()
	switch {
	case errors.Is(err, proc.ErrKilled):
		return log, fmt.Errorf("running trivy: killed after %s: %w",
			time.Since(start).Round(time.Millisecond), context.Cause(ctx))
	case err != nil:
		return log, fmt.Errorf("running %s: %w", p.binary, err)
	case res.ExitCode != 0:
		return log, fmt.Errorf("running trivy: exit status %d; stderr ends:\n%s",
			res.ExitCode, log.tail())
	}
	return log, nil
}

// Limits on what is kept of trivy's stderr, which at debug level can be long.
const (
	tailLines   = 15
	maxLineKept = 500
)

// stderrLog reads trivy's log as it is written, keeping only the last lines and what the
// gate looks for: "Permission error" lines, which Trivy logs at debug level for a file an
// analyzer could not open.
type stderrLog struct {
	partial []byte
	last    []string

	permissionErrors     int
	firstPermissionError string
}

// Write implements io.Writer.
func (l *stderrLog) Write(b []byte) (int, error) {
	l.partial = append(l.partial, b...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.line(string(l.partial[:i]))
		l.partial = l.partial[i+1:]
	}
	if len(l.partial) > 64<<10 {
		// A runaway line: look at what there is and go on.
		l.line(string(l.partial))
		l.partial = l.partial[:0]
	}
	return len(b), nil
}

// flush handles a last line without a newline.
func (l *stderrLog) flush() {
	if len(l.partial) > 0 {
		l.line(string(l.partial))
		l.partial = nil
	}
}

func (l *stderrLog) line(s string) {
	if logMessage(s) == "Permission error" {
		l.permissionErrors++
		if l.firstPermissionError == "" {
			l.firstPermissionError = logValue(s, "file_path")
		}
	}

	if len(s) > maxLineKept {
		s = s[:maxLineKept] + "..."
	}
	if len(l.last) == tailLines {
		l.last = append(l.last[:0], l.last[1:]...)
	}
	l.last = append(l.last, s)
}

// tail is the last lines of stderr, or a note that there were none.
func (l *stderrLog) tail() string {
	if len(l.last) == 0 {
		return "(nothing)"
	}
	return strings.Join(l.last, "\n")
}

// logMessage returns the message of a Trivy log line ("time\tLEVEL\t[prefix] message\tattrs"),
// without its prefix.
func logMessage(line string) string {
	fields := strings.SplitN(line, "\t", 4)
	if len(fields) < 3 {
		return ""
	}
	msg := fields[2]
	if strings.HasPrefix(msg, "[") {
		if i := strings.Index(msg, "] "); i > 0 {
			msg = msg[i+2:]
		}
	}
	return msg
}

// logValue returns the value of key=value in a Trivy log line, where string values are
// Go-quoted (pkg/log/handler.go). It returns the rest of the line if the value will not
// unquote.
func logValue(line, key string) string {
	i := strings.Index(line, key+"=")
	if i < 0 {
		return "(unknown file)"
	}
	rest := line[i+len(key)+1:]
	if quoted, err := strconv.QuotedPrefix(rest); err == nil {
		if v, err := strconv.Unquote(quoted); err == nil {
			return v
		}
	}
	return rest
}
