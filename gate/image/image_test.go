package image

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sylabs/sif/v2/pkg/sif"

	"github.com/scan-gate/scan-gate/internal/testimage"
)

// squashfsData builds a real squashfs of a small Debian tree once per test binary.
var squashfsCache []byte

func squashfsData(t testing.TB) []byte {
	t.Helper()
	if squashfsCache != nil {
		return squashfsCache
	}
	dir := t.TempDir()
	if err := testimage.WriteRootfs(filepath.Join(dir, "root"), testimage.Vulnerable); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "fs.squashfs")
	root := filepath.Join(dir, "root")
	if err := testimage.Squashfs(context.Background(), root, out); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	squashfsCache = data
	return data
}

func writeSIF(t testing.TB, objects ...testimage.Object) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "image.sif")
	if err := testimage.SIF(path, objects...); err != nil {
		t.Fatal(err)
	}
	return path
}

func mustKey(t *testing.T, path string) string {
	t.Helper()
	im, err := Open(path)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	defer im.Close()
	key, _, err := im.Key(context.Background())
	if err != nil {
		t.Fatalf("Key(%s): %v", path, err)
	}
	return key
}

func TestOpenSIF(t *testing.T) {
	data := squashfsData(t)
	path := writeSIF(t, testimage.PrimaryPartition(data))
	im, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	if im.Kind != SIF || len(im.Partitions) != 1 || im.Unscannable != "" {
		t.Fatalf("got kind %s, partitions %+v, unscannable %q", im.Kind, im.Partitions,
			im.Unscannable)
	}
	p := im.Partitions[0]
	if p.FS != "squashfs" || p.Role != "primary" || p.Size != int64(len(data)) {
		t.Fatalf("partition %+v, want primary squashfs of %d bytes", p, len(data))
	}
	raw, _ := os.ReadFile(path)
	if !bytes.Equal(raw[p.Offset:p.Offset+p.Size], data) {
		t.Fatal("partition offset does not point at the squashfs data")
	}
}

func TestSignatureDoesNotChangeKey(t *testing.T) {
	data := squashfsData(t)
	unsigned := writeSIF(t, testimage.PrimaryPartition(data))
	signed := filepath.Join(t.TempDir(), "signed.sif")
	raw, _ := os.ReadFile(unsigned)
	if err := os.WriteFile(signed, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := testimage.AddSignatureObject(signed); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(signed)
	if bytes.Equal(raw, after) {
		t.Fatal("adding a signature object left the file unchanged")
	}
	if a, b := mustKey(t, unsigned), mustKey(t, signed); a != b {
		t.Fatalf("signed copy has key %s, unsigned %s", b, a)
	}
}

func TestKeyChangesWithContent(t *testing.T) {
	data := squashfsData(t)
	other := bytes.Clone(data)
	other[len(other)-1] ^= 0xff
	a := mustKey(t, writeSIF(t, testimage.PrimaryPartition(data)))
	b := mustKey(t, writeSIF(t, testimage.PrimaryPartition(other)))
	if a == b {
		t.Fatal("different partition data gave the same key")
	}
}

func TestOpenRefusals(t *testing.T) {
	data := squashfsData(t)
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.sif")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	devLink := filepath.Join(dir, "zero.sif")
	if err := os.Symlink("/dev/zero", devLink); err != nil {
		t.Fatal(err)
	}
	notImage := filepath.Join(dir, "notes.txt")
	os.WriteFile(notImage, []byte("hello, this is not an image at all, not even close\n"), 0o644)
	empty := filepath.Join(dir, "empty.sif")
	os.WriteFile(empty, nil, 0o644)

	good := writeSIF(t, testimage.PrimaryPartition(data))
	raw, _ := os.ReadFile(good)
	truncated := filepath.Join(dir, "truncated.sif")
	os.WriteFile(truncated, raw[:len(raw)/2], 0o644)
	cutShort := filepath.Join(dir, "cut.sif")
	os.WriteFile(cutShort, raw[:len(raw)-100], 0o644)
	headerOnly := filepath.Join(dir, "header.sif")
	os.WriteFile(headerOnly, raw[:100], 0o644)

	tests := []struct {
		name string
		path string
		want error
		text string
	}{
		{"fifo", fifo, ErrNotRegular, "a FIFO"},
		{"link to /dev/zero", devLink, ErrNotRegular, "character device"},
		{"text file", notImage, ErrNotImage, "not a SIF"},
		{"empty file", empty, ErrNotImage, "not a SIF"},
		{"truncated SIF", truncated, ErrMalformed, "past the end"},
		{"data cut short", cutShort, ErrMalformed, "outside"},
		{"header only", headerOnly, ErrMalformed, "header"},
		{"two primaries", twoPrimaries(t, data), ErrMalformed, "2 primary"},
		{"no partition", writeSIF(t, testimage.Object{Data: []byte("{}"),
			Type: sif.DataGenericJSON}), ErrMalformed, "no primary"},
		{"OCI-SIF", writeSIF(t, testimage.Object{Data: []byte("{}"),
			Type: sif.DataOCIBlob}), ErrMalformed, "OCI-SIF"},
		{"missing", filepath.Join(dir, "nope.sif"), os.ErrNotExist, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			im, err := Open(tt.path)
			if err == nil {
				im.Close()
				t.Fatalf("Open(%s) succeeded, want %v", tt.path, tt.want)
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open(%s) = %v, want %v", tt.path, err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("error %q does not say %q", err, tt.text)
			}
			if !strings.Contains(err.Error(), tt.path) {
				t.Fatalf("error %q does not name the file", err)
			}
		})
	}
}

func TestUnscannablePartitions(t *testing.T) {
	data := squashfsData(t)
	tests := []struct {
		name string
		obj  []testimage.Object
	}{
		{"encrypted", []testimage.Object{{Data: data, Type: sif.DataPartition,
			FS: sif.FsEncryptedSquashfs, Part: sif.PartPrimSys}}},
		{"ext3 overlay", []testimage.Object{testimage.PrimaryPartition(data),
			{Data: make([]byte, 4096), Type: sif.DataPartition, FS: sif.FsExt3,
				Part: sif.PartOverlay}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			im, err := Open(writeSIF(t, tt.obj...))
			if err != nil {
				t.Fatal(err)
			}
			defer im.Close()
			if im.Unscannable == "" {
				t.Fatal("image is not marked unscannable")
			}
		})
	}
}

func TestOverlayIsPartOfKey(t *testing.T) {
	data := squashfsData(t)
	plain := mustKey(t, writeSIF(t, testimage.PrimaryPartition(data)))
	withOverlay := mustKey(t, writeSIF(t, testimage.PrimaryPartition(data),
		testimage.Object{Data: make([]byte, 4096), Type: sif.DataPartition, FS: sif.FsExt3,
			Part: sif.PartOverlay}))
	if plain == withOverlay {
		t.Fatal("an overlay partition did not change the key")
	}
}

func TestSandboxKey(t *testing.T) {
	dir := t.TempDir()
	if err := testimage.WriteRootfs(dir, testimage.Patched); err != nil {
		t.Fatal(err)
	}
	before := mustKey(t, dir)
	if again := mustKey(t, dir); again != before {
		t.Fatalf("unchanged sandbox: key %s then %s", before, again)
	}
	status := filepath.Join(dir, "var/lib/dpkg/status")
	f, _ := os.OpenFile(status, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("\n")
	f.Close()
	if after := mustKey(t, dir); after == before {
		t.Fatal("changing a file did not change the sandbox key")
	}
}

func TestBareSquashfs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "image.squashfs")
	os.WriteFile(path, squashfsData(t), 0o644)
	im, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	if im.Kind != Squashfs || im.Partitions[0].Offset != 0 {
		t.Fatalf("got %s %+v", im.Kind, im.Partitions)
	}
	_, n, err := im.Key(context.Background())
	if err != nil || n != int64(len(squashfsData(t))) {
		t.Fatalf("Key read %d bytes, err %v; want the whole file", n, err)
	}
}

func twoPrimaries(t *testing.T, data []byte) string {
	second := testimage.PrimaryPartition(data)
	second.Part = sif.PartSystem
	path := writeSIF(t, testimage.PrimaryPartition(data), second)
	if err := testimage.ForcePartType(path, 1, sif.PartPrimSys); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestResolvedPath(t *testing.T) {
	data := squashfsData(t)
	real := writeSIF(t, testimage.PrimaryPartition(data))
	dir := t.TempDir()
	link := filepath.Join(dir, "link.sif")
	os.Symlink(real, link)
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	for _, path := range []string{link, filepath.Join(dir, "sub", "..", "link.sif")} {
		im, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		im.Close()
		if im.Resolved != real {
			t.Errorf("Open(%s).Resolved = %s, want %s", path, im.Resolved, real)
		}
	}
}

// TestPartitionMustHoldSquashfs refuses partitions whose squashfs reaches past them: the
// key would cover less than unsquashfs reads.
func TestPartitionMustHoldSquashfs(t *testing.T) {
	data := squashfsData(t)
	tests := []struct {
		name string
		data []byte
		text string
	}{
		{"tiny partition", data[:50], "too small for a squashfs superblock"},
		{"cut partition", data[:binary.LittleEndian.Uint64(data[40:])-1],
			"but its partition has only"},
		{"not squashfs", bytes.Repeat([]byte{1}, 4096), "has no squashfs magic"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeSIF(t, testimage.PrimaryPartition(tt.data))
			im, err := Open(path)
			if err == nil {
				im.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("Open = %v, want ErrMalformed saying %q", err, tt.text)
			}
		})
	}
}

func TestSecretKeys(t *testing.T) {
	path := writeSIF(t, testimage.PrimaryPartition(squashfsData(t)))
	im, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	ctx := context.Background()
	plain, _, _ := im.Key(ctx)
	a1, _, _ := im.KeyWith(ctx, []byte("node secret A"))
	a2, _, _ := im.KeyWith(ctx, []byte("node secret A"))
	b, _, _ := im.KeyWith(ctx, []byte("node secret B"))
	if a1 != a2 || len(a1) != 32 {
		t.Fatalf("keyed keys %q and %q: want equal 128-bit keys", a1, a2)
	}
	if a1 == b || a1[:16] == plain {
		t.Fatalf("the secret does not change the key: %s %s %s", plain, a1, b)
	}
}

func TestSandboxCopiesDiffer(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	if err := testimage.WriteRootfs(a, testimage.Patched); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", a, b).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v %s", err, out)
	}
	if mustKey(t, a) == mustKey(t, b) {
		t.Fatal("two sandbox directories share a key")
	}
}
