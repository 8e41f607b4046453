package image

import (
	"encoding/binary"
	"fmt"
)

// Offsets in the squashfs 4.0 superblock: bytes_used, then the table starts that follow it.
// Only bounds are read here, to make sure the partition the key covers holds the whole
// filesystem the runtime mounts; unsquashfs does the parsing.
const (
	squashfsSuperblockSize = 96
	squashfsBytesUsedAt    = 40
	squashfsTablesAt       = 48 // six 8-byte table starts, each absent as all ones
	squashfsTables         = 6
)

// checkSquashfs refuses a partition whose squashfs superblock describes a filesystem that
// does not lie wholly inside the partition: the kernel, reading the partition through a
// loop device limited to its size, would see something other than what unsquashfs reads
// from the file and the key covers.
func (im *Image) checkSquashfs(p Partition) error {
	sb := make([]byte, squashfsSuperblockSize)
	if p.Size < squashfsSuperblockSize {
		return fmt.Errorf("image %s: %w: %s partition of %d bytes is too small for a squashfs "+
			"superblock", im.Path, ErrMalformed, p.Role, p.Size)
	}
	if _, err := im.file.ReadAt(sb, p.Offset); err != nil {
		return fmt.Errorf("reading squashfs superblock of %s: %w", im.Path, err)
	}
	if string(sb[:4]) != string(squashfsMagic) {
		return fmt.Errorf("image %s: %w: %s partition is marked squashfs but has no "+
			"squashfs magic", im.Path, ErrMalformed, p.Role)
	}
	le := binary.LittleEndian
	used := le.Uint64(sb[squashfsBytesUsedAt:])
	if used > uint64(p.Size) {
		return fmt.Errorf("image %s: %w: %s squashfs uses %d bytes but its partition has "+
			"only %d", im.Path, ErrMalformed, p.Role, used, p.Size)
	}
	for i := range squashfsTables {
		start := le.Uint64(sb[squashfsTablesAt+8*i:])
		if start != ^uint64(0) && start >= used {
			return fmt.Errorf("image %s: %w: %s squashfs has a table at %d, past the "+
				"%d bytes it uses", im.Path, ErrMalformed, p.Role, start, used)
		}
	}
	return nil
}
