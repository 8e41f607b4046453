package trivy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/scan-gate/scan-gate/gate/scanner"
	"github.com/scan-gate/scan-gate/gate/scanner/internal/scanutil"
)

// versionTimeout bounds `trivy version`, which reads no DB and should take well under a
// second.
const versionTimeout = 30 * time.Second

// Identify returns trivy's version, run for at most once per binary, and the date of the DB
// in DBDir. It starts no process when the version is already known. When only the DB cannot
// be read, the Identity returned with the error still holds the name and version.
func (b *Backend) Identify(ctx context.Context) (scanner.Identity, error) {
	version, err := b.version(ctx)
	if err != nil {
		return scanner.Identity{}, err
	}
	meta, err := readDBMetadata(filepath.Join(b.cfg.DBDir, "db"))
	if err != nil {
		return scanner.Identity{Name: Name, Version: version}, err
	}
	return scanner.Identity{Name: Name, Version: version, DBUpdatedAt: meta.UpdatedAt}, nil
}

// dbMetadata is the part of Trivy's db/metadata.json the gate reads.
type dbMetadata struct {
	Version   int
	UpdatedAt time.Time
}

// readDBMetadata reads dbDir/metadata.json. A DB without a date cannot tell stale results
// from fresh ones, so it is refused.
func readDBMetadata(dbDir string) (dbMetadata, error) {
	path := filepath.Join(dbDir, "metadata.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return dbMetadata{}, fmt.Errorf("reading trivy DB metadata: %w", err)
	}
	var meta dbMetadata
	if err := json.Unmarshal(data, &meta); err != nil {
		return dbMetadata{}, fmt.Errorf("decoding trivy DB metadata %s: %w", path, err)
	}
	if meta.UpdatedAt.IsZero() {
		return dbMetadata{}, fmt.Errorf("trivy DB metadata %s has no UpdatedAt", path)
	}
	meta.UpdatedAt = meta.UpdatedAt.UTC()
	return meta, nil
}

// binaryKey tells one build of the binary from another without reading it.
type binaryKey struct {
	Path  string `json:"path"`
	Size  int64  `json:"size"`
	Mtime int64  `json:"mtime_ns"`
	Dev   uint64 `json:"dev"`
	Inode uint64 `json:"inode"`
}

// versionMemo is what is remembered, in memory and in StateDir.
type versionMemo struct {
	Binary  binaryKey `json:"binary"`
	Version string    `json:"version"`
}

// version returns the binary's version, asking the binary only when neither memory nor
// StateDir knows it for this very file.
func (b *Backend) version(ctx context.Context) (string, error) {
	key, err := statBinary(b.path)
	if err != nil {
		return "", err
	}

	b.mu.Lock()
	defer b.mu.Unlock()

	if b.memo != nil && b.memo.Binary == key {
		return b.memo.Version, nil
	}
	if memo, ok := b.loadMemo(key); ok {
		b.memo = memo
		return memo.Version, nil
	}

	version, err := b.askVersion(ctx)
	if err != nil {
		return "", err
	}
	if version == "" || version == "dev" {
		// A plain `go install` build calls itself "dev": tell builds apart by content.
		if version, err = devVersion(b.path); err != nil {
			return "", err
		}
	}

	b.memo = &versionMemo{Binary: key, Version: version}
	// A state dir that cannot be written costs one `trivy version` per process, which is no
	// reason to refuse a launch: the error is dropped.
	_ = b.saveMemo(b.memo)
	return version, nil
}

func statBinary(path string) (binaryKey, error) {
	info, err := os.Stat(path)
	if err != nil {
		return binaryKey{}, fmt.Errorf("looking at the trivy binary: %w", err)
	}
	key := binaryKey{Path: path, Size: info.Size(), Mtime: info.ModTime().UnixNano()}
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		key.Dev, key.Inode = st.Dev, st.Ino
	}
	return key, nil
}

// askVersion runs `trivy version --format json` with an empty home and cache.
func (b *Backend) askVersion(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, versionTimeout)
	defer cancel()

	home, err := os.MkdirTemp("", "scan-gate-trivy-version-")
	if err != nil {
		return "", fmt.Errorf("creating a home for trivy version: %w", err)
	}
	defer os.RemoveAll(home)

	cmd := exec.CommandContext(ctx, b.path, "version", "--format", "json",
		"--cache-dir", filepath.Join(home, "cache"))
	cmd.Dir = home
	cmd.Env = []string{"HOME=" + home, "TMPDIR=" + home}
	out, err := cmd.Output()
	if ctx.Err() != nil {
		return "", fmt.Errorf("running %s version: %w", b.path, context.Cause(ctx))
	}
	if err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			return "", fmt.Errorf("running %s version: %w: %s", b.path, err, exitErr.Stderr)
		}
		return "", fmt.Errorf("running %s version: %w", b.path, err)
	}

	var info struct{ Version string }
	if err := json.Unmarshal(out, &info); err != nil {
		return "", fmt.Errorf("decoding the output of %s version: %w", b.path, err)
	}
	return info.Version, nil
}

// devVersion names an unversioned build by its content: "dev+sha256:<12 hex digits>".
func devVersion(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("hashing the trivy binary: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hashing the trivy binary %s: %w", path, err)
	}
	return "dev+sha256:" + hex.EncodeToString(h.Sum(nil))[:12], nil
}

// memoPath is the StateDir file remembering the version of the binary at b.path.
func (b *Backend) memoPath() string {
	sum := sha256.Sum256([]byte(b.path))
	return filepath.Join(b.cfg.StateDir, "trivy-version-"+hex.EncodeToString(sum[:6])+".json")
}

// loadMemo returns the remembered version if StateDir holds one for this very binary. A
// missing, unreadable or outdated file is only a miss.
func (b *Backend) loadMemo(key binaryKey) (*versionMemo, bool) {
	if b.cfg.StateDir == "" {
		return nil, false
	}
	data, err := scanutil.ReadOwnFile(b.memoPath())
	if err != nil {
		return nil, false
	}
	var memo versionMemo
	if json.Unmarshal(data, &memo) != nil || memo.Binary != key || memo.Version == "" {
		return nil, false
	}
	return &memo, true
}

// saveMemo writes the memo file atomically, so that a concurrent reader sees the old file
// or the new one.
func (b *Backend) saveMemo(memo *versionMemo) error {
	if b.cfg.StateDir == "" {
		return nil
	}
	data, err := json.Marshal(memo)
	if err != nil {
		return fmt.Errorf("encoding the trivy version memo: %w", err)
	}

	if err := os.MkdirAll(b.cfg.StateDir, 0o755); err != nil {
		return fmt.Errorf("creating state dir: %w", err)
	}
	tmp, err := os.CreateTemp(b.cfg.StateDir, ".trivy-version-*")
	if err != nil {
		return fmt.Errorf("saving the trivy version: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("saving the trivy version: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("saving the trivy version: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("saving the trivy version: %w", err)
	}
	if err := os.Rename(tmp.Name(), b.memoPath()); err != nil {
		return fmt.Errorf("saving the trivy version: %w", err)
	}
	return nil
}
