package extract

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/scan-gate/scan-gate/gate/image"
	"github.com/scan-gate/scan-gate/internal/proc"
	"golang.org/x/sys/unix"
)

// source is how a child reads the image: through the gate's own descriptor, passed as
// descriptor 3, or through a private copy when the scanning user may not read the file.
type source struct {
	path   string
	files  []*os.File
	copied bool
}

// offset is where p starts in the source.
func (s source) offset(p image.Partition) int64 {
	if s.copied {
		return 0
	}
	return p.Offset
}

func fdSource(im *image.Image) source {
	return source{path: "/proc/self/fd/3", files: []*os.File{im.File()}}
}

// readableSource returns a source the credential's user can open. Reopening /proc/self/fd/3
// checks the file's permissions again, so an image only its owner may read is copied, from
// the same descriptor, into the run directory first.
func readableSource(ctx context.Context, im *image.Image, run *RunDir, cred *proc.Credential) (
	source, func(), error) {
	noop := func() {}
	if cred == nil || readableBy(im, cred) {
		return fdSource(im), noop, nil
	}
	if len(im.Partitions) != 1 {
		return source{}, noop, fmt.Errorf("extracting %s: the scanning user cannot read the "+
			"image, and images with overlays are not copied", im.Path)
	}
	p := im.Partitions[0]
	path := filepath.Join(run.Path, "partition.img")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return source{}, noop, fmt.Errorf("copying %s for the scanning user: %w", im.Path, err)
	}
	defer f.Close()
	if _, err := io.Copy(f, io.NewSectionReader(im.File(), p.Offset, p.Size)); err != nil {
		return source{}, noop, fmt.Errorf("copying %s for the scanning user: %w", im.Path, err)
	}
	if err := f.Chown(int(cred.UID), int(cred.GID)); err != nil {
		return source{}, noop, fmt.Errorf("copying %s for the scanning user: %w", im.Path, err)
	}
	return source{path: path, copied: true}, func() { os.Remove(path) }, nil
}

func readableBy(im *image.Image, cred *proc.Credential) bool {
	var st unix.Stat_t
	if err := unix.Fstat(int(im.File().Fd()), &st); err != nil {
		return false
	}
	switch {
	case st.Uid == cred.UID:
		return st.Mode&0o400 != 0
	case st.Gid == cred.GID:
		return st.Mode&0o040 != 0
	}
	return st.Mode&0o004 != 0
}

// fitsTmpfs checks that dir is a tmpfs with room for size bytes and some to spare.
func fitsTmpfs(dir string, size int64) bool {
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil || fs.Type != unix.TMPFS_MAGIC {
		return false
	}
	free := int64(fs.Bavail) * fs.Bsize
	return size+size/4 < free
}
