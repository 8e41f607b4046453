package cache

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/cespare/xxhash/v2"
)

// Kinds of cache file, named in the header line.
const (
	kindEntry = "entry"
	kindStat  = "stat"
)

// Get returns the entry stored under k, or an error wrapping ErrMiss when there is none or
// the stored one cannot be trusted (see the package comment). It takes no lock.
func (s *Store) Get(k Key) (*Entry, error) {
	if s.absent {
		return nil, ErrMiss
	}
	path := s.path(entriesDir, k.Name()+entrySuffix)
	e, err := s.readEntry(path)
	if err != nil {
		return nil, err
	}
	if e.Key != k {
		return nil, fmt.Errorf("%w: %s holds the entry for another key", ErrMiss, path)
	}
	return e, nil
}

// readEntry reads and decodes the entry file at path without checking its key.
func (s *Store) readEntry(path string) (*Entry, error) {
	data, _, err := s.readTrusted(path)
	if errors.Is(err, ErrMiss) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("reading cache entry: %w", err)
	}
	var e Entry
	if err := decode(kindEntry, data, &e); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrMiss, path, err)
	}
	return &e, nil
}

// Put stores e under k, replacing any entry there, atomically: a reader sees the old entry or
// the new one. The stored entry's Key is k; its StoredAt is now when e.StoredAt is zero. e is
// not modified.
func (s *Store) Put(k Key, e *Entry) error {
	if s.readOnly {
		return ErrReadOnly
	}
	if err := k.validate(); err != nil {
		return err
	}
	if e.Key != (Key{}) && e.Key != k {
		return fmt.Errorf("storing cache entry for %v: the entry names another key, %v", k, e.Key)
	}

	stored := *e
	stored.Key = k
	if stored.StoredAt.IsZero() {
		stored.StoredAt = time.Now().UTC()
	}
	data, err := encode(kindEntry, &stored)
	if err != nil {
		return fmt.Errorf("encoding cache entry for %v: %w", k, err)
	}
	if len(data) > maxFileSize {
		return fmt.Errorf("storing cache entry for %v: %d bytes is more than the %d allowed",
			k, len(data), maxFileSize)
	}

	err = writeAtomic(filepath.Join(s.dir, entriesDir), k.Name()+entrySuffix, data, filePerm)
	if err != nil {
		return fmt.Errorf("storing cache entry for %v: %w", k, err)
	}
	return nil
}

// Touch marks the entry under k as used now, which keeps it from GC. It only changes the
// file's times. On a read-only store it does nothing. A missing entry is ErrMiss.
func (s *Store) Touch(k Key) error {
	if s.readOnly {
		return nil
	}
	path := s.path(entriesDir, k.Name()+entrySuffix)
	now := time.Now()
	err := os.Chtimes(path, now, now)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %w", ErrMiss, err)
	}
	if err != nil {
		return fmt.Errorf("marking cache entry used: %w", err)
	}
	return nil
}

// Remove deletes the entry under k; a missing entry is ErrMiss. It leaves the key's lock
// file alone.
func (s *Store) Remove(k Key) error {
	if s.readOnly {
		return ErrReadOnly
	}
	err := os.Remove(s.path(entriesDir, k.Name()+entrySuffix))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %w", ErrMiss, err)
	}
	if err != nil {
		return fmt.Errorf("removing cache entry: %w", err)
	}
	return nil
}

// encode renders v as a cache file of the given kind: a header line naming the kind, format
// version, xxhash64 checksum and length of the body, then the body, which is JSON and a
// newline. The header makes truncation, bit flips and files of another kind detectable.
func encode(kind string, v any) ([]byte, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	body = append(body, '\n')
	data := header(kind, body)
	return append(data, body...), nil
}

// header returns the header line, newline included, for a body of the given kind.
func header(kind string, body []byte) []byte {
	return fmt.Appendf(nil, "scan-gate-cache %s v1 xxh64:%016x %d\n",
		kind, xxhash.Sum64(body), len(body))
}

// decode checks a cache file made by encode and decodes its body into v.
func decode(kind string, data []byte, v any) error {
	head, body, ok := bytes.Cut(data, []byte{'\n'})
	if !ok {
		return errors.New("no header line")
	}
	want := header(kind, body)
	if !bytes.Equal(want[:len(want)-1], head) {
		return errors.New("header, length or checksum mismatch (truncated or corrupt file)")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("decoding: %w", err)
	}
	return nil
}

// writeAtomic writes data to dir/name through a temporary file in dir, which it syncs and
// renames into place before syncing dir. On failure it removes the temporary file; a writer
// killed midway leaves one, which GC removes once it is stale.
func writeAtomic(dir, name string, data []byte, perm fs.FileMode) (err error) {
	tmp, err := os.CreateTemp(dir, tempPrefix+"*")
	if err != nil {
		return fmt.Errorf("creating temporary file: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()

	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Chmod(perm); err != nil {
		return fmt.Errorf("setting the mode of %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("renaming into place: %w", err)
	}
	return syncDir(dir)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}
