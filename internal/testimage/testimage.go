// Package testimage builds real images for tests, benchmarks and the demo: a Debian 12 root
// filesystem tree with a dpkg database, packed by the real mksquashfs and wrapped in a real SIF
// by the sif library. Nothing here is used by the gate itself.
package testimage

import (
	"bytes"
	"context"
	"crypto"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/sylabs/sif/v2/pkg/sif"
)

// Package is one dpkg status stanza.
type Package struct {
	Name, Source, Version string
}

// Vulnerable lists real Debian 12 package versions that real public advisories affect
// (CVE-2023-4911 in glibc, CVE-2023-38545 in curl, CVE-2024-45491 in expat, CVE-2023-5363
// in openssl, CVE-2023-4863 in libwebp).
var Vulnerable = []Package{
	{"libc6", "glibc", "2.36-9+deb12u1"},
	{"curl", "curl", "7.88.1-10+deb12u1"},
	{"libcurl4", "curl", "7.88.1-10+deb12u1"},
	{"libexpat1", "expat", "2.5.0-1"},
	{"libssl3", "openssl", "3.0.9-1"},
	{"libwebp7", "libwebp", "1.2.4-0.2"},
}

// Patched lists the same packages at real Debian 12 versions that carry those fixes.
var Patched = []Package{
	{"libc6", "glibc", "2.36-9+deb12u14"},
	{"curl", "curl", "7.88.1-10+deb12u14"},
	{"libcurl4", "curl", "7.88.1-10+deb12u14"},
	{"libexpat1", "expat", "2.5.0-1+deb12u1"},
	{"libssl3", "openssl", "3.0.19-1~deb12u2"},
	{"libwebp7", "libwebp", "1.2.4-0.2+deb12u1"},
}

const osRelease = `PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
`

// WriteRootfs writes a minimal Debian 12 tree with pkgs installed into dir.
func WriteRootfs(dir string, pkgs []Package) error {
	var status strings.Builder
	for _, p := range pkgs {
		fmt.Fprintf(&status, "Package: %s\nStatus: install ok installed\n", p.Name)
		if p.Source != "" && p.Source != p.Name {
			fmt.Fprintf(&status, "Source: %s\n", p.Source)
		}
		fmt.Fprintf(&status, "Version: %s\nArchitecture: amd64\n"+
			"Maintainer: Debian <debian@example.org>\nDescription: %s\n\n", p.Version, p.Name)
	}
	files := map[string]string{
		"etc/debian_version":    "12.5\n",
		"etc/os-release":        osRelease,
		"var/lib/dpkg/status":   status.String(),
		"bin/hello":             "#!/bin/sh\necho hello\n",
		"usr/share/doc/README":  "scan-gate test image\n",
		"etc/hostname":          "container\n",
		"var/lib/dpkg/info/.ok": "",
	}
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("writing rootfs: %w", err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			return fmt.Errorf("writing rootfs: %w", err)
		}
	}
	for _, d := range []string{"proc", "sys", "dev", "tmp", "home"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return fmt.Errorf("writing rootfs: %w", err)
		}
	}
	return os.Chmod(filepath.Join(dir, "bin/hello"), 0o755)
}

// Squashfs packs dir into a squashfs file at out with the real mksquashfs. Each pseudo
// definition ("dev/null c 666 0 0 1 3") adds an entry that cannot be made unprivileged.
func Squashfs(ctx context.Context, dir, out string, pseudo ...string) error {
	return mksquashfs(ctx, dir, out, nil, pseudo)
}

// mksquashfs runs the real mksquashfs with the options every test image shares, then extra.
func mksquashfs(ctx context.Context, dir, out string, extra, pseudo []string) error {
	args := []string{dir, out, "-noappend", "-all-root", "-no-progress", "-quiet",
		"-mkfs-time", "0", "-all-time", "0", "-comp", "gzip"}
	args = append(args, extra...)
	for _, p := range pseudo {
		args = append(args, "-p", p)
	}
	cmd := exec.CommandContext(ctx, "mksquashfs", args...)
	var stderr bytes.Buffer
	cmd.Stdout = &stderr
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("mksquashfs %s: %w: %s", dir, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// Object is one data object to put into a SIF.
type Object struct {
	Data []byte
	Type sif.DataType
	// FS and Part are set for partitions.
	FS   sif.FSType
	Part sif.PartType
}

// PrimaryPartition returns a primary system squashfs partition object.
func PrimaryPartition(data []byte) Object {
	return Object{Data: data, Type: sif.DataPartition, FS: sif.FsSquash, Part: sif.PartPrimSys}
}

// SIF writes a SIF file holding objects, in order.
func SIF(out string, objects ...Object) error {
	var inputs []sif.DescriptorInput
	for _, o := range objects {
		var opts []sif.DescriptorInputOpt
		if o.Type == sif.DataPartition {
			opts = append(opts, sif.OptPartitionMetadata(o.FS, o.Part, "amd64"))
		}
		di, err := sif.NewDescriptorInput(o.Type, bytes.NewReader(o.Data), opts...)
		if err != nil {
			return fmt.Errorf("writing SIF %s: %w", out, err)
		}
		inputs = append(inputs, di)
	}
	f, err := sif.CreateContainerAtPath(out,
		sif.OptCreateWithDescriptors(inputs...),
		sif.OptCreateWithTime(time.Unix(1700000000, 0)),
		sif.OptCreateWithID("6ecc8d1c-5f3a-4d6e-9c1e-000000000001"))
	if err != nil {
		return fmt.Errorf("writing SIF %s: %w", out, err)
	}
	return f.UnloadContainer()
}

// AddSignatureObject appends a signature-like object to the SIF at path, linked to its
// primary partition, the way `apptainer sign` adds one.
func AddSignatureObject(path string) error {
	f, err := sif.LoadContainerFromPath(path)
	if err != nil {
		return fmt.Errorf("signing %s: %w", path, err)
	}
	defer f.UnloadContainer()
	part, err := f.GetDescriptor(sif.WithPartitionType(sif.PartPrimSys))
	if err != nil {
		return fmt.Errorf("signing %s: %w", path, err)
	}
	sig := []byte("-----BEGIN PGP SIGNED MESSAGE-----\nnot a real signature\n")
	di, err := sif.NewDescriptorInput(sif.DataSignature, bytes.NewReader(sig),
		sif.OptLinkedID(part.ID()), sif.OptSignatureMetadata(crypto.SHA256, make([]byte, 20)))
	if err != nil {
		return fmt.Errorf("signing %s: %w", path, err)
	}
	if err := f.AddObject(di); err != nil {
		return fmt.Errorf("signing %s: %w", path, err)
	}
	return nil
}

// Build writes a rootfs with pkgs, packs it and wraps it as a SIF at out. Scratch files go
// into a temporary directory next to out.
func Build(ctx context.Context, out string, pkgs []Package) error {
	work, err := os.MkdirTemp(filepath.Dir(out), ".testimage-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	root := filepath.Join(work, "rootfs")
	if err := WriteRootfs(root, pkgs); err != nil {
		return err
	}
	squash := filepath.Join(work, "rootfs.squashfs")
	if err := Squashfs(ctx, root, squash); err != nil {
		return err
	}
	data, err := os.ReadFile(squash)
	if err != nil {
		return err
	}
	return SIF(out, PrimaryPartition(data))
}

// Offsets into the on-disk SIF layout, for building images the library refuses to write.
const (
	descriptorsOffsetAt  = 96
	rawDescriptorSize    = 585
	partTypeInDescriptor = 4 + 1 + 4 + 4 + 4 + 7*8 + 128 + 4 // Extra, then Fstype, Parttype
)

// ForcePartType rewrites the partition type of the index-th descriptor of the SIF at path,
// to make images such as one with two primary partitions, which the sif library refuses.
func ForcePartType(path string, index int, pt sif.PartType) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	var off [8]byte
	if _, err := f.ReadAt(off[:], descriptorsOffsetAt); err != nil {
		return fmt.Errorf("patching %s: %w", path, err)
	}
	at := int64(binary.LittleEndian.Uint64(off[:])) + int64(index)*rawDescriptorSize +
		partTypeInDescriptor
	var v [4]byte
	binary.LittleEndian.PutUint32(v[:], uint32(pt))
	if _, err := f.WriteAt(v[:], at); err != nil {
		return fmt.Errorf("patching %s: %w", path, err)
	}
	return nil
}
