package extract

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sylabs/sif/v2/pkg/sif"

	"github.com/scan-gate/scan-gate/gate/image"
	"github.com/scan-gate/scan-gate/internal/testimage"
)

// Hostile trees: what an image can do to extraction, and what extraction must refuse.

// outsideDir is a host directory the scanning user could write to, as hostile images want:
// world-writable, with a world-writable file and a subdirectory the scanning user owns.
func outsideDir(t *testing.T) string {
	t.Helper()
	dir := scratch(t)
	os.Chmod(dir, 0o777)
	os.WriteFile(filepath.Join(dir, "victim"), []byte("original\n"), 0o666)
	os.Chmod(filepath.Join(dir, "victim"), 0o666)
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	if cred := credential(); cred != nil {
		os.Chown(filepath.Join(dir, "sub"), int(cred.UID), int(cred.GID))
	}
	return dir
}

func assertOutsideUntouched(t *testing.T, dir string) {
	t.Helper()
	if data, _ := os.ReadFile(filepath.Join(dir, "victim")); string(data) != "original\n" {
		t.Errorf("victim outside the tree overwritten: %q", data)
	}
	if left, _ := os.ReadDir(filepath.Join(dir, "sub")); len(left) != 0 {
		t.Errorf("files created outside the tree: %v", left)
	}
	if fi, err := os.Stat(filepath.Join(dir, "sub")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("directory outside the tree changed: %v %v", fi.Mode(), err)
	}
}

// TestExtractRefusesEscapingOverlay is the regression test of an escape: a squashfs overlay
// partition whose paths run through symbolic links of the primary partition made
// unsquashfs -force write through them, creating and overwriting files outside the tree.
func TestExtractRefusesEscapingOverlay(t *testing.T) {
	outside := outsideDir(t)
	path := filepath.Join(scratch(t), "overlay-escape.sif")
	if err := testimage.Hostile(context.Background(), "overlay-escape", path,
		outside); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o644)
	base := scratch(t)
	im, err := image.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	tree, err := Extract(context.Background(), im, Options{ScratchDir: base,
		Credential: credential()})
	if err == nil {
		tree.Remove()
		t.Fatal("Extract accepted an overlay that writes through links")
	}
	if !errors.Is(err, ErrIncomplete) || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("Extract: %v, want ErrIncomplete naming the link", err)
	}
	assertOutsideUntouched(t, outside)
	if left, _ := os.ReadDir(base); len(left) != 0 {
		t.Errorf("scratch not cleaned up: %v", left)
	}
}

// TestExtractOverlay unpacks a benign squashfs overlay on top of its primary partition.
func TestExtractOverlay(t *testing.T) {
	dir := scratch(t)
	lower, upper := filepath.Join(dir, "lower"), filepath.Join(dir, "upper")
	if err := testimage.WriteRootfs(lower, testimage.Vulnerable); err != nil {
		t.Fatal(err)
	}
	os.Symlink("hostname", filepath.Join(lower, "etc/hostname-link"))
	os.MkdirAll(filepath.Join(upper, "etc"), 0o755)
	os.WriteFile(filepath.Join(upper, "etc/hostname"), []byte("overlay\n"), 0o644)
	os.WriteFile(filepath.Join(upper, "etc/added"), []byte("added\n"), 0o644)
	var parts [][]byte
	for _, tree := range []string{lower, upper} {
		out := tree + ".squashfs"
		if err := testimage.Squashfs(context.Background(), tree, out); err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(out)
		parts = append(parts, data)
	}
	path := filepath.Join(dir, "overlay.sif")
	err := testimage.SIF(path, testimage.PrimaryPartition(parts[0]), testimage.Object{
		Data: parts[1], Type: sif.DataPartition, FS: sif.FsSquash, Part: sif.PartOverlay})
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o644)
	tree := extractFile(t, path, Options{ScratchDir: scratch(t), Credential: credential()})
	defer tree.Remove()
	for rel, want := range map[string]string{"etc/hostname": "overlay\n",
		"etc/added": "added\n", "etc/hostname-link": "overlay\n"} {
		if got, _ := os.ReadFile(filepath.Join(tree.Root, rel)); string(got) != want {
			t.Errorf("%s = %q, want %q", rel, got, want)
		}
	}
}

// TestExtractRefusesDeviceOutsideDev: a device node skipped where a package database belongs
// would leave the scanner a tree without it.
func TestExtractRefusesDeviceOutsideDev(t *testing.T) {
	if credential() == nil && os.Geteuid() == 0 {
		t.Skip("root creates device nodes")
	}
	path := filepath.Join(scratch(t), "device-pkgdb.sif")
	err := testimage.Hostile(context.Background(), "device-pkgdb", path, outsideDir(t))
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o644)
	im, err := image.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	tree, err := Extract(context.Background(), im, Options{ScratchDir: scratch(t),
		Credential: credential()})
	if err == nil {
		tree.Remove()
		t.Fatal("Extract accepted a device node at var/lib/dpkg/status")
	}
	if !errors.Is(err, ErrIncomplete) || !strings.Contains(err.Error(), "var/lib/dpkg/status") {
		t.Errorf("Extract: %v, want ErrIncomplete naming the device", err)
	}
}
