package cache

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"
)

// An export is a gzip-compressed tar archive for carrying scan results to an air-gapped
// cluster: a manifest, then one file per entry in the cache's own entry format (header line
// with checksum, then JSON), so that import checks each entry as Get does. Stat records are
// not exported: they name files by device and inode, which mean nothing on another machine.
//
// Content keys are made with a secret of each cache's own, so an entry's key means nothing
// to another cache either. An export therefore says which secret its keys were made with
// (ExportOptions.Rekey and Secret: a fresh one per archive), and an import gives every entry
// the key it has here (ImportOptions.Rekey), which means hashing the image it belongs to.
const (
	exportManifest = "scan-gate-export.json"
	exportFormat   = "scan-gate cache export v2"
)

// exportHeader is the manifest of an export.
type exportHeader struct {
	Format  string    `json:"format"`
	Created time.Time `json:"created"`
	Entries int       `json:"entries"`
	// Secret is what the archive's content keys were made with.
	Secret []byte `json:"key_secret,omitempty"`
}

// ExportOptions say what Export writes.
type ExportOptions struct {
	// Keep selects the entries to export; nil keeps all.
	Keep func(Entry) bool
	// Rekey, when set, gives an entry the key (and image path) it has in the archive; an
	// entry it fails on is left out and reported in ExportResult.Left.
	Rekey func(*Entry) error
	// Secret is recorded in the manifest: the secret Rekey made the archive's keys with.
	Secret []byte
}

// ExportResult says what Export did.
type ExportResult struct {
	// Exported counts the entries written.
	Exported int
	// Left holds one error per chosen entry that Rekey left out.
	Left []error
}

// Export writes the chosen entries to w as an export archive. Unusable entries are left out
// and reported with a *SkippedError after the archive is complete.
func (s *Store) Export(w io.Writer, opts ExportOptions) (ExportResult, error) {
	var res ExportResult
	entries, listErr := s.List()
	var skipped *SkippedError
	if listErr != nil && !errors.As(listErr, &skipped) {
		return res, fmt.Errorf("exporting cache: %w", listErr)
	}
	var chosen []Entry
	for _, e := range entries {
		if opts.Keep != nil && !opts.Keep(e) {
			continue
		}
		if opts.Rekey != nil {
			if err := opts.Rekey(&e); err != nil {
				res.Left = append(res.Left, err)
				continue
			}
		}
		chosen = append(chosen, e)
	}

	zw := gzip.NewWriter(w)
	tw := tar.NewWriter(zw)
	now := time.Now().UTC()
	manifest, err := json.Marshal(exportHeader{Format: exportFormat, Created: now,
		Entries: len(chosen), Secret: opts.Secret})
	if err != nil {
		return res, fmt.Errorf("exporting cache: %w", err)
	}
	if err := writeTarFile(tw, exportManifest, append(manifest, '\n'), now); err != nil {
		return res, err
	}
	for i := range chosen {
		e := &chosen[i]
		data, err := encode(kindEntry, e)
		if err != nil {
			return res, fmt.Errorf("exporting cache entry for %v: %w", e.Key, err)
		}
		name := path.Join(entriesDir, e.Key.Name()+entrySuffix)
		if err := writeTarFile(tw, name, data, e.StoredAt); err != nil {
			return res, err
		}
		res.Exported++
	}
	if err := tw.Close(); err != nil {
		return res, fmt.Errorf("exporting cache: finishing the archive: %w", err)
	}
	if err := zw.Close(); err != nil {
		return res, fmt.Errorf("exporting cache: finishing the archive: %w", err)
	}
	if skipped != nil {
		return res, skipped
	}
	return res, nil
}

func writeTarFile(tw *tar.Writer, name string, data []byte, modTime time.Time) error {
	hdr := &tar.Header{Name: name, Mode: int64(filePerm), Size: int64(len(data)),
		ModTime: modTime, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("exporting cache: writing %s: %w", name, err)
	}
	if _, err := tw.Write(data); err != nil {
		return fmt.Errorf("exporting cache: writing %s: %w", name, err)
	}
	return nil
}

// ImportOptions say how Import stores entries.
type ImportOptions struct {
	// Rekey, when set, gives an archive entry the key (and image path) it is stored under
	// here, given the secret the archive's keys were made with; an entry it fails on is
	// rejected.
	Rekey func(e *Entry, secret []byte) error
}

// ImportResult says what Import did.
type ImportResult struct {
	// Imported counts the entries stored.
	Imported int
	// Present counts the entries left out because this cache already holds the same scan:
	// same key, scanned at the same time.
	Present int
	// Kept counts the entries left out because this cache holds a later scan of the same key.
	Kept int
	// Rejected holds one error per archive member that was not a sound entry (corrupt,
	// truncated, stored under a name that is not its key's, or not an entry at all).
	Rejected []error
}

// Import reads an export archive from r and stores its entries (under the keys opts.Rekey
// gives them), each only when this cache holds no scan of the same key made at the same time
// or later. Every entry is checked as Get checks a cache file; a member that fails is
// rejected, the others still imported. An archive that cannot be read at all, or has no
// export manifest, is an error.
//
// Importing trusts the archive's findings as if this cache's scanner had made them: import
// only archives made by `scan-gate cache export` on a cluster you run.
func (s *Store) Import(r io.Reader, opts ImportOptions) (ImportResult, error) {
	var res ImportResult
	if s.readOnly {
		return res, ErrReadOnly
	}
	zr, err := gzip.NewReader(r)
	if err != nil {
		return res, fmt.Errorf("importing cache entries: not an export archive: %w", err)
	}
	tr := tar.NewReader(zr)
	sawManifest := false
	var secret []byte
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return res, fmt.Errorf("importing cache entries: reading the archive: %w", err)
		}
		if hdr.Name == exportManifest {
			if secret, err = readManifest(tr); err != nil {
				return res, err
			}
			sawManifest = true
			continue
		}
		if !sawManifest {
			return res, fmt.Errorf("importing cache entries: the archive does not start " +
				"with an export manifest; it was not made by 'scan-gate cache export'")
		}
		if err := s.importMember(hdr, tr, opts, secret, &res); err != nil {
			return res, err
		}
	}
	if !sawManifest {
		return res, errors.New("importing cache entries: the archive holds no export manifest")
	}
	return res, nil
}

// readManifest checks the manifest and returns the secret of the archive's keys.
func readManifest(r io.Reader) ([]byte, error) {
	var m exportHeader
	if err := json.NewDecoder(io.LimitReader(r, 1<<20)).Decode(&m); err != nil {
		return nil, fmt.Errorf("importing cache entries: reading the export manifest: %w", err)
	}
	if m.Format != exportFormat {
		return nil, fmt.Errorf("importing cache entries: export format %q, want %q", m.Format,
			exportFormat)
	}
	return m.Secret, nil
}

// importMember stores one archive member; only a failure to write the cache is an error.
func (s *Store) importMember(hdr *tar.Header, r io.Reader, opts ImportOptions,
	secret []byte, res *ImportResult) error {
	reject := func(format string, args ...any) error {
		res.Rejected = append(res.Rejected, fmt.Errorf("%s: "+format,
			append([]any{hdr.Name}, args...)...))
		return nil
	}
	dir, base := path.Split(hdr.Name)
	stem, isEntry := strings.CutSuffix(base, entrySuffix)
	if hdr.Typeflag != tar.TypeReg || dir != entriesDir+"/" || !isEntry {
		return reject("not a cache entry")
	}
	if hdr.Size > maxFileSize {
		return reject("larger than %d bytes", maxFileSize)
	}
	data, err := io.ReadAll(io.LimitReader(r, maxFileSize+1))
	if err != nil {
		return fmt.Errorf("importing cache entries: reading %s: %w", hdr.Name, err)
	}
	var e Entry
	if err := decode(kindEntry, data, &e); err != nil {
		return reject("%w", err)
	}
	if err := e.Key.validate(); err != nil {
		return reject("%w", err)
	}
	if e.Key.Name() != stem {
		return reject("holds the entry for another key")
	}
	if opts.Rekey != nil {
		if err := opts.Rekey(&e, secret); err != nil {
			return reject("%w", err)
		}
		if err := e.Key.validate(); err != nil {
			return reject("%w", err)
		}
	}

	if have, err := s.Get(e.Key); err == nil {
		switch {
		case have.Scan.ScannedAt.Equal(e.Scan.ScannedAt):
			res.Present++
			return nil
		case have.Scan.ScannedAt.After(e.Scan.ScannedAt):
			res.Kept++
			return nil
		}
	}
	if err := s.Put(e.Key, &e); err != nil {
		return fmt.Errorf("importing cache entries: %w", err)
	}
	res.Imported++
	return nil
}
