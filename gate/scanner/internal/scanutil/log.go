package scanutil

import (
	"bytes"
	"strings"
)

// Limits on what is kept of a scanner's log.
const (
	tailLines   = 15
	maxLineKept = 500
)

// LineLog reads a scanner's stderr as it is written, one line at a time: it hands each line
// to Watch, and keeps the last lines for error messages, with every secret redacted.
type LineLog struct {
	// Watch, when set, sees every line (unredacted, never stored).
	Watch func(line string)
	// Secrets are replaced by "[redacted]" in the kept lines.
	Secrets []string

	partial []byte
	last    []string
}

// Write implements io.Writer.
func (l *LineLog) Write(b []byte) (int, error) {
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
		l.line(string(l.partial)) // a runaway line: look at what there is and go on
		l.partial = l.partial[:0]
	}
	return len(b), nil
}

// Flush handles a last line without a newline.
func (l *LineLog) Flush() {
	if len(l.partial) > 0 {
		l.line(string(l.partial))
		l.partial = nil
	}
}

func (l *LineLog) line(s string) {
	if l.Watch != nil {
		l.Watch(s)
	}
	s = string(redactString(s, l.Secrets))
	if len(s) > maxLineKept {
		s = s[:maxLineKept] + "..."
	}
	if strings.TrimSpace(s) == "" {
		return
	}
	if len(l.last) == tailLines {
		l.last = append(l.last[:0], l.last[1:]...)
	}
	l.last = append(l.last, s)
}

// Tail is the last lines of the log, or "(nothing)".
func (l *LineLog) Tail() string {
	if len(l.last) == 0 {
		return "(nothing)"
	}
	return strings.Join(l.last, "\n")
}

func redactString(s string, secrets []string) string {
	for _, secret := range secrets {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, "[redacted]")
		}
	}
	return s
}
