package scanutil

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// FileKey tells one version of a file from another without reading it.
type FileKey struct {
	Path  string `json:"path"`
	Size  int64  `json:"size"`
	Mtime int64  `json:"mtime_ns"`
	Dev   uint64 `json:"dev"`
	Inode uint64 `json:"inode"`
}

// StatKey returns the key of the file at path as it is now.
func StatKey(path string) (FileKey, error) {
	info, err := os.Stat(path)
	if err != nil {
		return FileKey{}, err
	}
	key := FileKey{Path: path, Size: info.Size(), Mtime: info.ModTime().UnixNano()}
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		key.Dev, key.Inode = st.Dev, st.Ino
	}
	return key, nil
}

// Memo remembers a value derived from a file (a binary's version, a DB's date) for as long
// as the file is unchanged: in memory, and in StateDir across processes, so that the hot
// path of a launch starts no process. It is safe for concurrent use.
type Memo struct {
	// StateDir is where values are kept across processes; "" keeps them in memory only.
	StateDir string
	// Name tells the memo files of different values apart ("grype-version").
	Name string

	mu    sync.Mutex
	key   FileKey
	value string
}

type memoFile struct {
	File  FileKey `json:"file"`
	Value string  `json:"value"`
}

// Get returns the value remembered for the file at path, or computes, remembers and returns
// it when the file changed or nothing is remembered.
func (m *Memo) Get(ctx context.Context, path string,
	compute func(context.Context) (string, error)) (string, error) {
	key, err := StatKey(path)
	if err != nil {
		return "", fmt.Errorf("looking at %s: %w", path, err)
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.value != "" && m.key == key {
		return m.value, nil
	}
	if value, ok := m.load(key); ok {
		m.key, m.value = key, value
		return value, nil
	}
	value, err := compute(ctx)
	if err != nil {
		return "", err
	}
	m.key, m.value = key, value
	// A state dir that cannot be written costs a recomputation per process, which is no
	// reason to refuse a launch.
	_ = m.save(memoFile{File: key, Value: value})
	return value, nil
}

func (m *Memo) path(file string) string {
	sum := sha256.Sum256([]byte(file))
	return filepath.Join(m.StateDir, m.Name+"-"+hex.EncodeToString(sum[:6])+".json")
}

func (m *Memo) load(key FileKey) (string, bool) {
	if m.StateDir == "" {
		return "", false
	}
	data, err := ReadOwnFile(m.path(key.Path))
	if err != nil {
		return "", false
	}
	var f memoFile
	if json.Unmarshal(data, &f) != nil || f.File != key || f.Value == "" {
		return "", false
	}
	return f.Value, true
}

// save writes the memo file atomically: a concurrent reader sees the old or the new one.
func (m *Memo) save(f memoFile) error {
	if m.StateDir == "" {
		return nil
	}
	data, err := json.Marshal(f)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(m.StateDir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(m.StateDir, "."+m.Name+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), m.path(f.File.Path))
}

// ContentVersion names a build by its content, "sha256:<12 hex digits>", for a binary that
// does not say its version.
func ContentVersion(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("hashing %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hashing %s: %w", path, err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))[:12], nil
}

// ReadOwnFile reads a small file only when it and its directory belong to this process's user
// and no one else may write them: a memo planted by another user must not name the scanner.
func ReadOwnFile(path string) ([]byte, error) {
	for _, p := range []string{filepath.Dir(path), path} {
		fi, err := os.Lstat(p)
		if err != nil {
			return nil, err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok || st.Uid != uint32(os.Geteuid()) || fi.Mode().Perm()&0o022 != 0 ||
			fi.Mode()&fs.ModeSymlink != 0 {
			return nil, fmt.Errorf("%s is not this user's own file", p)
		}
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 64<<10))
}
