package image

import (
	"encoding/binary"
	"fmt"

	"github.com/sylabs/sif/v2/pkg/sif"
)

// Fields of the SIF global header that bound what the library will read. They are checked
// before the library sees the file: it allocates room for DescriptorsTotal descriptors, and a
// hostile header could otherwise ask for terabytes.
const (
	sifHeaderSize          = 128
	sifDescriptorsTotalAt  = 88
	sifDescriptorsOffsetAt = 96
	sifDescriptorsSizeAt   = 104
	sifRawDescriptorSize   = 585
)

func (im *Image) readSIF() error {
	if err := im.checkSIFHeader(); err != nil {
		return err
	}

	fimg, err := sif.LoadContainer(im.file, sif.OptLoadWithCloseOnUnload(false))
	if err != nil {
		return fmt.Errorf("reading SIF header of %s: %w: %w", im.Path, ErrMalformed, err)
	}
	defer fimg.UnloadContainer()

	var (
		primary  []Partition
		overlays []Partition
		problems []string
	)
	fileSize := im.ID.Size
	fimg.WithDescriptors(func(d sif.Descriptor) bool {
		off, size := d.Offset(), d.Size()
		if off < 0 || size < 0 || off > fileSize || size > fileSize-off {
			problems = append(problems, fmt.Sprintf(
				"descriptor %d (%s) at offset %d size %d lies outside the %d-byte file",
				d.ID(), d.DataType(), off, size, fileSize))
			return false
		}
		if d.DataType() != sif.DataPartition {
			return false
		}
		fs, pt, _, err := d.PartitionMetadata()
		if err != nil {
			problems = append(problems, fmt.Sprintf(
				"descriptor %d: reading partition metadata: %v", d.ID(), err))
			return false
		}
		p := Partition{Offset: off, Size: size, FS: fsName(fs)}
		switch pt {
		case sif.PartPrimSys:
			p.Role = "primary"
			primary = append(primary, p)
		case sif.PartOverlay:
			p.Role = "overlay"
			overlays = append(overlays, p)
		}
		return false
	})

	if len(problems) > 0 {
		return fmt.Errorf("image %s: %w: %s", im.Path, ErrMalformed, problems[0])
	}
	switch len(primary) {
	case 0:
		if hasOCIBlobs(fimg) {
			return fmt.Errorf("image %s: %w: an OCI-SIF (OCI blobs, no system partition) "+
				"is not supported", im.Path, ErrMalformed)
		}
		return fmt.Errorf("image %s: %w: no primary system partition", im.Path, ErrMalformed)
	case 1:
	default:
		return fmt.Errorf("image %s: %w: %d primary system partitions (the runtime "+
			"mounts one)", im.Path, ErrMalformed, len(primary))
	}

	im.Partitions = append(primary, overlays...)
	for _, p := range im.Partitions {
		switch p.FS {
		case "squashfs":
			if err := im.checkSquashfs(p); err != nil {
				return err
			}
		case "encrypted-squashfs":
			im.Unscannable = fmt.Sprintf("%s partition is encrypted: its contents cannot "+
				"be read without the key", p.Role)
		default:
			im.Unscannable = fmt.Sprintf("%s partition is %s: only squashfs partitions "+
				"can be extracted without mounting", p.Role, p.FS)
		}
		if im.Unscannable != "" {
			break
		}
	}
	return nil
}

// checkSIFHeader refuses a header whose descriptor table does not fit in the file.
func (im *Image) checkSIFHeader() error {
	header := make([]byte, sifHeaderSize)
	if _, err := im.file.ReadAt(header, 0); err != nil {
		return fmt.Errorf("reading SIF header of %s: %w: %w", im.Path, ErrMalformed, err)
	}
	le := binary.LittleEndian
	total := int64(le.Uint64(header[sifDescriptorsTotalAt:]))
	offset := int64(le.Uint64(header[sifDescriptorsOffsetAt:]))
	size := int64(le.Uint64(header[sifDescriptorsSizeAt:]))
	fileSize := im.ID.Size

	switch {
	case total < 0 || offset < 0 || size < 0:
		return fmt.Errorf("reading SIF header of %s: %w: negative descriptor table bounds",
			im.Path, ErrMalformed)
	case offset > fileSize || size > fileSize-offset:
		return fmt.Errorf("reading SIF header of %s: %w: descriptor table (offset %d, "+
			"size %d) lies past the end of the %d-byte file", im.Path, ErrMalformed,
			offset, size, fileSize)
	case total > size/sifRawDescriptorSize:
		return fmt.Errorf("reading SIF header of %s: %w: %d descriptors do not fit in a "+
			"%d-byte table", im.Path, ErrMalformed, total, size)
	}
	return nil
}

func hasOCIBlobs(fimg *sif.FileImage) bool {
	ds, err := fimg.GetDescriptors(sif.WithDataType(sif.DataOCIBlob))
	return err == nil && len(ds) > 0
}

func fsName(fs sif.FSType) string {
	switch fs {
	case sif.FsSquash:
		return "squashfs"
	case sif.FsExt3:
		return "ext3"
	case sif.FsEncryptedSquashfs:
		return "encrypted-squashfs"
	case sif.FsImmuObj:
		return "archive"
	case sif.FsRaw:
		return "raw"
	}
	return fmt.Sprintf("unknown filesystem type %d", int32(fs))
}
