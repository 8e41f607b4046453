// Package cache keeps vulnerability scan results on node-local disk, keyed by image content,
// scanner and scan settings.
//
// Layout under the cache directory:
//
//	entries/<name>.entry  one scan result: a header line with an xxhash64 checksum, then JSON
//	stat/<name>.stat      one stat-index record: a file's identity and its content key
//	locks/<name>.lock     one flock(2) file per key; never removed or renamed by this package
//
// Every file is written to a temporary file in its final directory, synced, renamed into
// place and the directory synced, so a reader sees the old file or the new one, never a part.
// Readers take no lock. A file that cannot be trusted — corrupt, truncated, failing its
// checksum, stored under another key, owned by an untrusted user, or writable by group or
// others — reads as a miss, never as an error that stops the caller.
//
// Permissions. The gate runs as root, so no user may be able to steer its cache: Open refuses
// a cache directory, subdirectory or ancestor that an untrusted user could write. Entries and
// stat records are world-readable (directories 0755, files 0644), so that an unprivileged
// `scan-gate cache ls` or a read-only consumer can use a cache root filled; they hold findings
// that anyone able to read the image could reproduce. The locks directory is 0700 and lock
// files 0600: flock needs only a descriptor open for reading, so a readable lock file would
// let any user hold a key's lock and stall every launch of that image on the node.
//
// The package is written for Linux: file identities come from syscall.Stat_t.
package cache

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/scan-gate/scan-gate/gate/finding"
)

// ErrMiss is returned, possibly wrapped with the reason, when the cache holds no usable entry.
var ErrMiss = errors.New("cache miss")

// ErrReadOnly is returned by the operations that would write to a read-only store.
var ErrReadOnly = errors.New("cache is read-only")

// Names of the subdirectories and file suffixes; see the package comment.
const (
	entriesDir = "entries"
	statDir    = "stat"
	locksDir   = "locks"

	entrySuffix = ".entry"
	statSuffix  = ".stat"
	lockSuffix  = ".lock"
	tempPrefix  = ".tmp-"
)

// Permissions of what Open and the writers create; see the package comment.
const (
	dirPerm      fs.FileMode = 0o755
	locksDirPerm fs.FileMode = 0o700
	filePerm     fs.FileMode = 0o644
	lockPerm     fs.FileMode = 0o600
)

// maxFileSize bounds what a reader loads into memory; a larger file is a miss.
const maxFileSize = 256 << 20

// staleTemp is the age after which a temporary file is taken for a dead writer's leftover.
const staleTemp = time.Hour

var subdirs = []struct {
	name string
	perm fs.FileMode
}{
	{entriesDir, dirPerm},
	{statDir, dirPerm},
	{locksDir, locksDirPerm},
}

// Key identifies one cached scan: what was scanned, by which scanner, with which settings.
type Key struct {
	// Content is the hex content key of the image.
	Content string `json:"content"`
	// Scanner is the scanner backend's name ("trivy").
	Scanner string `json:"scanner"`
	// Settings names the scan settings that change results (severities, skipped paths, ...).
	Settings string `json:"settings"`
}

// Name returns the file name stem under which the key is stored: a hash of the three fields,
// safe as a file name whatever the fields contain.
func (k Key) Name() string {
	h := sha256.New()
	h.Write([]byte("scan-gate cache key v1\x00"))
	for _, field := range []string{k.Content, k.Scanner, k.Settings} {
		h.Write(binary.AppendUvarint(nil, uint64(len(field))))
		h.Write([]byte(field))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// String describes the key for messages.
func (k Key) String() string {
	return fmt.Sprintf("%s scan of %s (settings %q)", k.Scanner, k.Content, k.Settings)
}

func (k Key) validate() error {
	if k.Content == "" || k.Scanner == "" {
		return fmt.Errorf("incomplete cache key %+v: content and scanner are required", k)
	}
	return nil
}

// Entry is one cached scan result.
type Entry struct {
	Key Key `json:"key"`
	// Image is the last image path seen with this content.
	Image string       `json:"image,omitempty"`
	Scan  finding.Scan `json:"scan"`
	// StoredAt is when the entry was written; Put sets it when it is zero.
	StoredAt time.Time `json:"stored_at"`
}

// Options tune Open.
type Options struct {
	// ReadOnly opens the cache without ever creating or writing anything; a missing
	// directory is an empty cache.
	ReadOnly bool
	// TrustedUIDs are the users that may own the cache and its files. Empty means the
	// effective uid of the process only: a root gate never trusts a user-owned cache.
	TrustedUIDs []uint32
	// Shared opens a shared tier: a cache on a parallel filesystem that many nodes read and
	// prewarm jobs fill. Its stat index leaves out the device number, which differs between
	// nodes mounting the same filesystem, and Lock refuses: flock is not trusted across
	// nodes, and the tier's writers do not coordinate (see shared.go).
	Shared bool
}

// Store is an open cache directory. It is safe for concurrent use, also by several processes.
type Store struct {
	dir      string
	readOnly bool
	// absent marks a read-only store whose directory did not exist at Open: always empty.
	absent  bool
	trusted []uint32
	// shared marks a shared tier; see Options.Shared.
	shared bool
}

// Open opens the cache in dir, creating it and its subdirectories unless opts.ReadOnly is set.
// It refuses a directory that is not owned by a trusted user or is writable by group or
// others, and likewise an ancestor, which must belong to root or a trusted user and be
// writable only by its owner unless it has the sticky bit (as /tmp has).
func Open(dir string, opts Options) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("opening cache %s: %w", dir, err)
	}
	s := &Store{readOnly: opts.ReadOnly, trusted: opts.TrustedUIDs, shared: opts.Shared}
	if len(s.trusted) == 0 {
		s.trusted = []uint32{uint32(os.Geteuid())}
	}

	if opts.ReadOnly {
		if _, err := os.Stat(abs); errors.Is(err, fs.ErrNotExist) {
			s.dir, s.absent = abs, true
			return s, nil
		}
	} else if err := s.prepare(abs); err != nil {
		return nil, err
	}

	resolved, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("opening cache %s: %w", abs, err)
	}
	s.dir = resolved
	if err := s.checkAncestors(resolved); err != nil {
		return nil, err
	}
	if err := s.checkDir(resolved); err != nil {
		return nil, err
	}

	for _, sub := range subdirs {
		path := filepath.Join(resolved, sub.name)
		if !opts.ReadOnly {
			err := os.Mkdir(path, sub.perm)
			if err != nil && !errors.Is(err, fs.ErrExist) {
				return nil, fmt.Errorf("creating cache directory: %w", err)
			}
		}
		err := s.checkDir(path)
		if opts.ReadOnly && errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
	}
	return s, nil
}

// prepare checks the deepest existing part of abs and then creates the rest, so that nothing
// is created below a directory an untrusted user controls.
func (s *Store) prepare(abs string) error {
	existing := abs
	for {
		if _, err := os.Stat(existing); err == nil {
			break
		}
		parent := filepath.Dir(existing)
		if parent == existing {
			break
		}
		existing = parent
	}
	resolved, err := filepath.EvalSymlinks(existing)
	if err != nil {
		return fmt.Errorf("opening cache %s: %w", abs, err)
	}
	if existing != abs {
		if err := s.checkAncestor(resolved); err != nil {
			return err
		}
	}
	if err := s.checkAncestors(resolved); err != nil {
		return err
	}

	if err := os.MkdirAll(abs, dirPerm); err != nil {
		return fmt.Errorf("creating cache directory: %w", err)
	}
	return nil
}

// Dir returns the cache directory, with symbolic links resolved.
func (s *Store) Dir() string { return s.dir }

// ReadOnly reports whether the store was opened read-only.
func (s *Store) ReadOnly() bool { return s.readOnly }

// UserDir returns the directory for a non-root user's own cache: $XDG_CACHE_HOME/scan-gate,
// else $HOME/.cache/scan-gate. It fails when neither variable holds an absolute path; the gate
// then runs without a user cache.
func UserDir() (string, error) {
	if dir := os.Getenv("XDG_CACHE_HOME"); filepath.IsAbs(dir) {
		return filepath.Join(dir, "scan-gate"), nil
	}
	if home := os.Getenv("HOME"); filepath.IsAbs(home) {
		return filepath.Join(home, ".cache", "scan-gate"), nil
	}
	return "", errors.New("no user cache directory: " +
		"neither $XDG_CACHE_HOME nor $HOME is set to an absolute path")
}

func (s *Store) path(sub, name string) string { return filepath.Join(s.dir, sub, name) }
