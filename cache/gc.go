package cache

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// SkippedError is returned by List, together with the entries it could read, when some entry
// files could not be read or trusted.
type SkippedError struct {
	// Misses holds one error per skipped file, each naming the file and the reason.
	Misses []error
}

// Error implements error.
func (e *SkippedError) Error() string {
	if len(e.Misses) == 1 {
		return fmt.Sprintf("skipped 1 unusable cache entry: %v", e.Misses[0])
	}
	return fmt.Sprintf("skipped %d unusable cache entries, the first: %v",
		len(e.Misses), e.Misses[0])
}

// List returns every usable entry, ordered by scanner, content and settings. When some
// entry files are unusable it returns the usable entries together with a *SkippedError.
func (s *Store) List() ([]Entry, error) {
	if s.absent {
		return nil, nil
	}
	dir := filepath.Join(s.dir, entriesDir)
	dirents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing cache entries: %w", err)
	}

	var entries []Entry
	var misses []error
	for _, d := range dirents {
		stem, ok := strings.CutSuffix(d.Name(), entrySuffix)
		if !ok || strings.HasPrefix(d.Name(), tempPrefix) {
			continue
		}
		path := filepath.Join(dir, d.Name())
		e, err := s.readEntry(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed since ReadDir
		}
		if err == nil && e.Key.Name() != stem {
			err = fmt.Errorf("%w: %s holds the entry for another key", ErrMiss, path)
		}
		if err != nil {
			misses = append(misses, err)
			continue
		}
		entries = append(entries, *e)
	}

	slices.SortFunc(entries, func(a, b Entry) int {
		return cmp.Or(cmp.Compare(a.Key.Scanner, b.Key.Scanner),
			cmp.Compare(a.Key.Content, b.Key.Content),
			cmp.Compare(a.Key.Settings, b.Key.Settings))
	})
	if len(misses) > 0 {
		return entries, &SkippedError{Misses: misses}
	}
	return entries, nil
}

// Removed counts the files GC or Purge deleted, by kind.
type Removed struct {
	// Entries counts scan results (entries/), what `cache ls` lists.
	Entries int
	// Stats counts stat records (stat/), the shortcuts from a file's metadata to its key.
	Stats int
	// Temps counts temporary files left by writers that died.
	Temps int
}

// GC removes the entries and stat records not written or marked used (Touch, a LookupStat
// hit) for unusedFor before now, and temporary files left for more than an hour by writers
// that died. It never touches lock files. unusedFor must be positive.
//
// GC takes no lock: an entry used at the very moment GC judges it unused may be dropped,
// which costs one rescan.
func (s *Store) GC(unusedFor time.Duration, now time.Time) (Removed, error) {
	if s.readOnly {
		return Removed{}, ErrReadOnly
	}
	if unusedFor <= 0 {
		return Removed{}, fmt.Errorf("collecting cache garbage: age %v is not positive",
			unusedFor)
	}
	unusedBefore := now.Add(-unusedFor)
	return s.sweep(now, func(fi fs.FileInfo) bool { return fi.ModTime().Before(unusedBefore) })
}

// Purge removes every entry and stat record, and temporary files left for more than an hour
// (younger ones may belong to a writer at work). It never touches lock files. removed counts
// the files it deleted.
func (s *Store) Purge() (Removed, error) {
	if s.readOnly {
		return Removed{}, ErrReadOnly
	}
	return s.sweep(time.Now(), func(fs.FileInfo) bool { return true })
}

// sweep removes from entries/ and stat/ the cache files for which doomed is true and the
// temporary files older than staleTemp before now. Other files, and locks/, are left alone.
func (s *Store) sweep(now time.Time, doomed func(fs.FileInfo) bool) (Removed, error) {
	tempBefore := now.Add(-staleTemp)
	var removed Removed
	for _, sub := range []struct {
		dir, suffix string
		count       *int
	}{
		{entriesDir, entrySuffix, &removed.Entries},
		{statDir, statSuffix, &removed.Stats},
	} {
		dir := filepath.Join(s.dir, sub.dir)
		dirents, err := os.ReadDir(dir)
		if err != nil {
			return removed, fmt.Errorf("collecting cache garbage: %w", err)
		}

		for _, d := range dirents {
			if !d.Type().IsRegular() {
				continue
			}
			fi, err := d.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return removed, fmt.Errorf("collecting cache garbage: %w", err)
			}

			name := d.Name()
			var remove bool
			count := sub.count
			switch {
			case strings.HasPrefix(name, tempPrefix):
				remove, count = fi.ModTime().Before(tempBefore), &removed.Temps
			case strings.HasSuffix(name, sub.suffix):
				remove = doomed(fi)
			}
			if !remove {
				continue
			}

			err = os.Remove(filepath.Join(dir, name))
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return removed, fmt.Errorf("collecting cache garbage: %w", err)
			}
			*count++
		}
	}
	return removed, nil
}
