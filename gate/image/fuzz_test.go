package image

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/sylabs/sif/v2/pkg/sif"

	"github.com/scan-gate/scan-gate/internal/testimage"
)

// FuzzOpen feeds arbitrary bytes to the reader: it must refuse or accept them, never panic,
// never allocate without bound. The seeds are real SIFs the test generates, whole and cut.
func FuzzOpen(f *testing.F) {
	data := squashfsData(f)
	seeds := [][]testimage.Object{
		{testimage.PrimaryPartition(data)},
		{testimage.PrimaryPartition(data[:512]), {Data: make([]byte, 64), Type: sif.DataPartition,
			FS: sif.FsExt3, Part: sif.PartOverlay}},
		{{Data: []byte("{}"), Type: sif.DataOCIBlob}},
	}
	for _, objects := range seeds {
		raw, err := os.ReadFile(writeSIF(f, objects...))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
		f.Add(raw[:len(raw)/2])
		f.Add(raw[:200])
	}
	f.Add(data[:1024])

	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, raw []byte) {
		path := filepath.Join(dir, "fuzz.sif")
		if err := os.WriteFile(path, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		im, err := Open(path)
		if err != nil {
			return
		}
		defer im.Close()
		if _, _, err := im.Key(context.Background()); err != nil {
			return
		}
		for _, p := range im.Partitions {
			if p.Offset < 0 || p.Size < 0 || p.Offset+p.Size > int64(len(raw)) {
				t.Fatalf("accepted partition %+v outside a %d-byte file", p, len(raw))
			}
		}
	})
}
