package scanner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// MaxReportSize bounds a scanner report the gate reads or keeps. A report larger than this
// is an error, not a truncated read.
const MaxReportSize = 512 << 20

type reportDirKey struct{}

// WithReportDir returns a context that asks the backend scanning under it to keep a copy of
// the scanner's own reports and SBOMs in dir (`scan-gate scan`). Dir must exist; the copies
// are written by the gate's own user, never by the scanning user.
func WithReportDir(ctx context.Context, dir string) context.Context {
	return context.WithValue(ctx, reportDirKey{}, dir)
}

// ReportDir returns the directory named by WithReportDir, or "" when none was asked for.
func ReportDir(ctx context.Context) string {
	dir, _ := ctx.Value(reportDirKey{}).(string)
	return dir
}

// KeepReport copies the report at src, written by the scanner, into the report dir of ctx
// under name (a base name). It does nothing when ctx names no report dir. Every occurrence
// of a secret is replaced by "[redacted]" in the copy.
func KeepReport(ctx context.Context, name, src string, secrets ...string) error {
	if ReportDir(ctx) == "" {
		return nil
	}
	data, err := ReadReport(src)
	if err != nil {
		return fmt.Errorf("keeping report %s: %w", filepath.Base(src), err)
	}
	return KeepReportData(ctx, name, data, secrets...)
}

// KeepReportData writes data into the report dir of ctx under name, like KeepReport.
func KeepReportData(ctx context.Context, name string, data []byte, secrets ...string) error {
	dir := ReportDir(ctx)
	if dir == "" {
		return nil
	}
	if name == "" || name != filepath.Base(name) || strings.HasPrefix(name, ".") {
		return fmt.Errorf("keeping report: bad file name %q", name)
	}
	data = Redact(data, secrets...)
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return fmt.Errorf("keeping report %s: %w", name, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("keeping report %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("keeping report %s: %w", name, err)
	}
	return nil
}

// ReadReport reads a report file the scanning user wrote: a regular file, reached without a
// symbolic link in its last element, at most MaxReportSize bytes.
func ReadReport(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxReportSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxReportSize {
		return nil, fmt.Errorf("%s is larger than %d MiB", path, MaxReportSize>>20)
	}
	return data, nil
}

// Redact replaces every occurrence of each non-empty secret in data by "[redacted]".
func Redact(data []byte, secrets ...string) []byte {
	for _, s := range secrets {
		if s != "" && bytes.Contains(data, []byte(s)) {
			data = bytes.ReplaceAll(data, []byte(s), []byte("[redacted]"))
		}
	}
	return data
}

// ErrNoFindings marks a scanner run that worked but, by its configuration, gives no
// findings to decide from (an inventory without a matcher, an upload-only mode). It is a
// "no decision", and never cached.
var ErrNoFindings = errors.New("the scanner gives no findings in this configuration")
