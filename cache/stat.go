package cache

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// statTouchAfter is how old a stat record's mark of use may grow before a hit renews it, so
// that GC keeps records in use without a write on every launch.
const statTouchAfter = time.Hour

// FileID is what the stat index compares to recognise an unchanged file without reading it.
// Users cannot set a file's ctime, so a file rewritten and given back its old mtime still
// differs. A change made through a shared writable mapping updates the times only when the
// kernel notices the write; the gate hashes from the descriptor it scans to cover that.
type FileID struct {
	Dev     uint64 `json:"dev"`
	Ino     uint64 `json:"ino"`
	Size    int64  `json:"size"`
	MtimeNs int64  `json:"mtime_ns"`
	CtimeNs int64  `json:"ctime_ns"`
}

// FileIDOf returns the identity of the file fi describes, or the zero FileID when fi does not
// come from a stat(2) call; the zero FileID never matches.
func FileIDOf(fi os.FileInfo) FileID {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return FileID{}
	}
	return FileID{
		Dev:     uint64(st.Dev),
		Ino:     uint64(st.Ino),
		Size:    st.Size,
		MtimeNs: st.Mtim.Nano(),
		CtimeNs: st.Ctim.Nano(),
	}
}

// statRecord is the content of a stat/<name>.stat file.
type statRecord struct {
	Path    string `json:"path"`
	ID      FileID `json:"id"`
	Content string `json:"content"`
}

// statName names the record for a file: one per (device, inode, path), so that a file
// reached by two names keeps two records rather than overwriting one in turn.
func statName(path string, id FileID) string {
	h := sha256.New()
	h.Write([]byte("scan-gate stat v1\x00"))
	h.Write(binary.BigEndian.AppendUint64(nil, id.Dev))
	h.Write(binary.BigEndian.AppendUint64(nil, id.Ino))
	h.Write([]byte(path))
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// LookupStat returns the content key recorded for the file at path, provided the file still
// has identity id: the same device, inode, size, mtime and ctime. Anything else — no record,
// a changed field, an unreadable or untrusted record — is a miss (ok false).
func (s *Store) LookupStat(path string, id FileID) (content string, ok bool) {
	if s.absent || id == (FileID{}) {
		return "", false
	}
	id = s.statID(id)
	recordPath := s.path(statDir, statName(path, id)+statSuffix)
	data, fi, err := s.readTrusted(recordPath)
	if err != nil {
		return "", false
	}
	var rec statRecord
	if err := decode(kindStat, data, &rec); err != nil {
		return "", false
	}
	if rec.Path != path || rec.ID != id || rec.Content == "" {
		return "", false
	}

	if !s.readOnly && time.Since(fi.ModTime()) > statTouchAfter {
		now := time.Now()
		// Only GC reads this mark, and a record it drops is rebuilt by one hash: an error
		// here must not turn a hit into a miss.
		_ = os.Chtimes(recordPath, now, now)
	}
	return rec.Content, true
}

// RecordStat records that the file at path, with identity id, has the given content key.
func (s *Store) RecordStat(path string, id FileID, content string) error {
	if s.readOnly {
		return ErrReadOnly
	}
	if id == (FileID{}) {
		return fmt.Errorf("recording the identity of %s: no stat information", path)
	}
	if content == "" {
		return errors.New("recording the identity of " + path + ": empty content key")
	}
	id = s.statID(id)

	data, err := encode(kindStat, statRecord{Path: path, ID: id, Content: content})
	if err != nil {
		return fmt.Errorf("encoding the stat record of %s: %w", path, err)
	}
	name := statName(path, id) + statSuffix
	if err := writeAtomic(s.path(statDir, ""), name, data, filePerm); err != nil {
		return fmt.Errorf("recording the identity of %s: %w", path, err)
	}
	return nil
}
