// Package audit writes the audit log: one JSON object per decision, appended to a file with a
// single write and no fsync, so that recording costs nothing at launch.
package audit

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"

	"github.com/scan-gate/scan-gate/gate"
	"github.com/scan-gate/scan-gate/policy"
)

// Log is an open audit log.
type Log struct {
	file   io.Closer
	logger *slog.Logger
}

// Open opens (creating if needed) the audit log at path for appending.
func Open(path string) (*Log, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("opening audit log: %w", err)
	}
	// Never through a link: whoever can write the directory must not redirect root's appends.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW, 0o640)
	if err != nil {
		return nil, fmt.Errorf("opening audit log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("opening audit log: %w", err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || !fi.Mode().IsRegular() ||
		st.Uid != uint32(os.Geteuid()) {
		f.Close()
		return nil, fmt.Errorf("opening audit log %s: not a regular file of uid %d", path,
			os.Geteuid())
	}
	return New(f), nil
}

// New writes audit lines to w; w is closed by Close when it is an io.Closer.
func New(w io.Writer) *Log {
	closer, _ := w.(io.Closer)
	return &Log{file: closer, logger: slog.New(slog.NewJSONHandler(w, nil))}
}

// Close closes the log file.
func (l *Log) Close() error {
	if l.file == nil {
		return nil
	}
	return l.file.Close()
}

// Record writes the audit line of one decision.
func (l *Log) Record(res gate.Result, who policy.Subject, policyDigest string) {
	l.record("decision", res, who, policyDigest)
}

// RecordRescan writes the audit line of a background rescan: not a launch decision, so it
// stands under the message "rescan" and statistics of decisions leave it out.
func (l *Log) RecordRescan(res gate.Result, who policy.Subject, policyDigest string) {
	l.record("rescan", res, who, policyDigest)
}

// RecordPrewarm writes the audit line of one image prewarmed: the same fields as a
// decision's, under the message "prewarm", so that launch statistics leave it out.
func (l *Log) RecordPrewarm(res gate.Result, policyDigest string) {
	l.record("prewarm", res, policy.Subject{Image: res.Image}, policyDigest)
}

func (l *Log) record(msg string, res gate.Result, who policy.Subject, policyDigest string) {
	attrs := []slog.Attr{
		slog.String("image", res.Image),
		slog.String("key", res.Key),
		slog.String("action", string(res.Action)),
		slog.String("user", who.User),
		slog.String("job", who.JobID),
		slog.String("partition", who.Partition),
		slog.String("account", who.Account),
		slog.Any("reasons", res.Verdict.Reasons),
		slog.Any("counts", res.Verdict.Counts),
		slog.String("policy", policyDigest),
		slog.String("scanner", res.Scanner.Name),
		slog.String("scanner_version", res.Scanner.Version),
		slog.String("cache", res.Cache),
		slog.Int64("hashed_bytes", res.HashedBytes),
		slog.Any("durations_ms", res.Durations),
	}
	if !res.Scanner.DBUpdatedAt.IsZero() {
		attrs = append(attrs, slog.Time("db_updated_at", res.Scanner.DBUpdatedAt))
	}
	if res.Error != "" {
		attrs = append(attrs, slog.String("error", res.Error))
	}
	if res.Background {
		attrs = append(attrs, slog.Bool("background_rescan", true))
	}
	l.logger.LogAttrs(context.Background(), slog.LevelInfo, msg, attrs...)
}
