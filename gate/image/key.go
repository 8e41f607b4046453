package image

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/cespare/xxhash/v2"
	"golang.org/x/sys/unix"
)

// hashBufferSize is large enough that hashing runs at the speed of the disk.
const hashBufferSize = 1 << 20

// Key computes the content key with no secret; see KeyWith. Use it only where keys are
// shown, never where a key decides which cached scan applies.
func (im *Image) Key(ctx context.Context) (key string, bytesRead int64, err error) {
	return im.KeyWith(ctx, nil)
}

// KeyWith computes the content key: xxhash64 over what the runtime mounts. For a SIF that is
// each mounted partition's type and data, never the signature objects or the header, so
// signing an image does not change its key. For a bare squashfs it is the whole file. For a
// sandbox directory it is every entry's path, identity (device, inode), type, mode, size,
// link target and change times, so that a change to any file changes the key without
// reading file contents.
//
// xxhash is fast, not collision resistant: whoever knows how a key is computed can build
// two images with one key and have the clean one's verdict applied to the other. The
// secret closes that: the key is two xxhash64 digests seeded from it (128 bits), which no
// one without the secret can aim at. It returns the key and the number of image bytes read.
func (im *Image) KeyWith(ctx context.Context, secret []byte) (key string, bytesRead int64,
	err error) {
	if err := im.Identify(); err != nil {
		return "", 0, err
	}
	seedA, seedB := seeds(secret)
	digests := pair{xxhash.NewWithSeed(seedA), xxhash.NewWithSeed(seedB)}
	if im.Kind == Sandbox {
		err = hashTree(ctx, im.Resolved, digests)
	} else {
		bytesRead, err = im.hashPartitions(ctx, digests)
	}
	if err != nil {
		return "", bytesRead, err
	}
	if secret == nil {
		return fmt.Sprintf("%016x", digests[0].Sum64()), bytesRead, nil
	}
	return fmt.Sprintf("%016x%016x", digests[0].Sum64(), digests[1].Sum64()), bytesRead, nil
}

// seeds derives two xxhash seeds from the secret; no secret gives seed 0 (plain xxhash64).
func seeds(secret []byte) (uint64, uint64) {
	if secret == nil {
		return 0, 0
	}
	sum := sha256.Sum256(secret)
	return binary.LittleEndian.Uint64(sum[0:8]), binary.LittleEndian.Uint64(sum[8:16])
}

// pair writes to two digests at once.
type pair [2]*xxhash.Digest

func (p pair) Write(b []byte) (int, error) {
	p[0].Write(b)
	p[1].Write(b)
	return len(b), nil
}

func (p pair) WriteString(s string) (int, error) {
	p[0].WriteString(s)
	p[1].WriteString(s)
	return len(s), nil
}

func (im *Image) hashPartitions(ctx context.Context, digest pair) (int64, error) {
	buf := make([]byte, hashBufferSize)
	var total int64
	fmt.Fprintf(digest, "scan-gate image v1 %s\n", im.Kind)
	for _, p := range im.Partitions {
		fmt.Fprintf(digest, "%s %s %d\n", p.Role, p.FS, p.Size)
		section := io.NewSectionReader(im.file, p.Offset, p.Size)
		n, err := copyWithContext(ctx, digest, section, buf)
		total += n
		if err != nil {
			return total, fmt.Errorf("hashing %s partition of %s: %w", p.Role, im.Path, err)
		}
		if n != p.Size {
			return total, fmt.Errorf("hashing %s partition of %s: %w: read %d of %d bytes "+
				"(file shrank while being read?)", p.Role, im.Path, ErrMalformed, n, p.Size)
		}
	}
	return total, nil
}

// copyWithContext copies like io.CopyBuffer and stops between blocks when ctx is done.
func copyWithContext(ctx context.Context, dst io.Writer, src io.Reader, buf []byte) (int64, error) {
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, err := src.Read(buf)
		if n > 0 {
			dst.Write(buf[:n]) // an xxhash digest never fails to write
			total += int64(n)
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

func hashTree(ctx context.Context, root string, digest pair) error {
	fmt.Fprintf(digest, "scan-gate sandbox v2\n")
	var record [8 * 6]byte
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, walkErr error) error {
		if walkErr != nil {
			return fmt.Errorf("walking sandbox %s: %w", root, walkErr)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			return fmt.Errorf("walking sandbox %s: %w", root, &os.PathError{
				Op: "lstat", Path: path, Err: err})
		}
		rel, _ := filepath.Rel(root, path)
		digest.WriteString(strconv.Quote(rel))
		le := binary.LittleEndian
		le.PutUint64(record[0:], uint64(st.Mode))
		le.PutUint64(record[8:], uint64(st.Size))
		le.PutUint64(record[16:], uint64(st.Mtim.Nano()))
		le.PutUint64(record[24:], uint64(st.Ctim.Nano()))
		// The inode makes two directories with equal metadata differ, and a file replaced by
		// another differ from itself.
		le.PutUint64(record[32:], st.Dev)
		le.PutUint64(record[40:], st.Ino)
		digest.Write(record[:])
		if d.Type()&fs.ModeSymlink != 0 {
			target, err := os.Readlink(path)
			if err != nil {
				return fmt.Errorf("walking sandbox %s: %w", root, err)
			}
			digest.WriteString(" -> " + strconv.Quote(target))
		}
		digest.WriteString("\n")
		return nil
	})
}
