package image

import (
	"context"
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

// Key computes the content key: xxhash64 over what the runtime mounts. For a SIF that is
// each mounted partition's type and data, never the signature objects or the header, so
// signing an image does not change its key. For a bare squashfs it is the whole file. For a
// sandbox directory it is every entry's path, type, mode, size, link target and change
// times, so that a change to any file changes the key without reading file contents.
//
// It returns the key and the number of image bytes it read.
func (im *Image) Key(ctx context.Context) (key string, bytesRead int64, err error) {
	digest := xxhash.New()
	if im.Kind == Sandbox {
		err = hashTree(ctx, im.Path, digest)
	} else {
		bytesRead, err = im.hashPartitions(ctx, digest)
	}
	if err != nil {
		return "", bytesRead, err
	}
	return fmt.Sprintf("%016x", digest.Sum64()), bytesRead, nil
}

func (im *Image) hashPartitions(ctx context.Context, digest *xxhash.Digest) (int64, error) {
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

func hashTree(ctx context.Context, root string, digest *xxhash.Digest) error {
	fmt.Fprintf(digest, "scan-gate sandbox v1\n")
	var record [8 * 4]byte
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

func openSandbox(path string, st *unix.Stat_t) (*Image, error) {
	return &Image{Path: path, Kind: Sandbox, ID: FileIDOf(st)}, nil
}
