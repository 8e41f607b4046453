package testimage

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sylabs/sif/v2/pkg/sif"
	"golang.org/x/sys/unix"
)

// HostileKinds lists the hostile images Hostile builds, each an attack on the gate or on the
// node it runs on:
//
//	fifo-pkgdb       FIFOs and a socket where the dpkg, rpm and apk databases belong
//	devices          block and character device nodes under /dev: the host's disks and memory
//	device-pkgdb     a character device node where the dpkg database belongs
//	symlinks         absolute and relative symbolic links pointing out of the tree
//	symlink-pkgdb    the dpkg database reached only through a symbolic link
//	overlay-escape   a squashfs overlay that writes through the primary partition's links
//	many-files       100 000 small files
//	deep             64 levels of directories
//	non-utf8         file names that are not UTF-8, hold newlines or terminal escapes
//	unreadable-dir   a directory the scanning user may not list
//	unreadable-file  a file the scanning user may not read
//	unreadable-pkgdb the dpkg database unreadable to the scanning user
//	planted-exec     executables at every path a careless gate might run
//	past-end         a SIF whose partition descriptor points past the end of the file
//	huge-count       a SIF header that claims 2^40 descriptors
//	ext3-overlay     a SIF with an ext3 overlay partition
//	oci-sif          an OCI-SIF: OCI blobs instead of a system partition
//	encrypted        a SIF whose primary partition is encrypted
//
// A SIF being written while it is checked is made from any of them by the caller, which
// writes the file while the gate reads it.
var HostileKinds = []string{
	"fifo-pkgdb", "devices", "device-pkgdb", "symlinks", "symlink-pkgdb", "overlay-escape",
	"many-files", "deep", "non-utf8", "unreadable-dir", "unreadable-file",
	"unreadable-pkgdb", "planted-exec", "past-end", "huge-count", "ext3-overlay", "oci-sif",
	"encrypted",
}

// MarkerName is the file a planted executable creates in the outside directory when it
// runs. A gate that never executes image content never creates it.
const MarkerName = "EXECUTED"

// Hostile writes the hostile SIF image kind to out (see HostileKinds). Every image holds
// the Vulnerable packages unless its attack removes them. outside is an absolute directory
// on the host that the image's links and planted executables point at: nothing may ever be
// created or changed in it. Scratch files go into a temporary directory in /dev/shm, or
// next to out.
func Hostile(ctx context.Context, kind, out, outside string) error {
	if !filepath.IsAbs(outside) {
		return fmt.Errorf("hostile image %s: outside directory %q is not absolute", kind,
			outside)
	}
	work, err := os.MkdirTemp(scratchBase(out), ".hostile-")
	if err != nil {
		return err
	}
	defer removeAll(work)
	b := hostileBuild{ctx: ctx, work: work, root: filepath.Join(work, "rootfs"), out: out,
		outside: outside}
	if err := WriteRootfs(b.root, Vulnerable); err != nil {
		return err
	}
	if err := b.build(kind); err != nil {
		return fmt.Errorf("building hostile image %s: %w", kind, err)
	}
	return nil
}

type hostileBuild struct {
	ctx                      context.Context
	work, root, out, outside string
}

func (b hostileBuild) build(kind string) error {
	switch kind {
	case "fifo-pkgdb":
		if err := os.Remove(b.path("var/lib/dpkg/status")); err != nil {
			return err
		}
		if err := b.mkdirs("var/lib/rpm", "lib/apk/db"); err != nil {
			return err
		}
		return b.primary("var/lib/dpkg/status i 644 0 0 f", "var/lib/rpm/Packages i 644 0 0 f",
			"lib/apk/db/installed i 644 0 0 s")
	case "devices":
		if err := b.mkdirs("dev/disk/by-id"); err != nil {
			return err
		}
		return b.primary("dev/null c 666 0 0 1 3", "dev/sda b 660 0 6 8 0",
			"dev/mem c 640 0 15 1 1", "dev/kmsg c 644 0 0 1 11",
			"dev/disk/by-id/host-disk b 660 0 6 8 1")
	case "device-pkgdb":
		if err := os.Remove(b.path("var/lib/dpkg/status")); err != nil {
			return err
		}
		return b.primary("var/lib/dpkg/status c 666 0 0 1 3")
	case "symlinks":
		return b.symlinks()
	case "symlink-pkgdb":
		// The packages are in the image, and dpkg inside the container reads them through
		// the link; a scanner that does not follow links sees no package database.
		status := b.path("var/lib/dpkg/status")
		if err := os.Rename(status, b.path("usr/share/dpkg-status")); err != nil {
			return err
		}
		if err := os.Symlink("../../../usr/share/dpkg-status", status); err != nil {
			return err
		}
		return b.primary()
	case "overlay-escape":
		return b.overlayEscape()
	case "many-files":
		return b.manyFiles(100_000)
	case "deep":
		return b.deep(64)
	case "non-utf8":
		return b.nonUTF8()
	case "unreadable-dir":
		err := b.write("usr/lib/private/secret-package/METADATA", "Name: hidden\n", 0o644)
		if err != nil {
			return err
		}
		return b.primary("usr/lib/private m 000 0 0")
	case "unreadable-file":
		return b.unreadableFile()
	case "unreadable-pkgdb":
		return b.primary("var/lib/dpkg/status m 000 0 0")
	case "planted-exec":
		return b.plantedExec()
	case "past-end":
		if err := b.primary(); err != nil {
			return err
		}
		return SetDescriptorBounds(b.out, 0, 4096, 1<<40)
	case "huge-count":
		if err := b.primary(); err != nil {
			return err
		}
		return setHeaderField(b.out, descriptorsTotalAt, 1<<40)
	case "ext3-overlay", "oci-sif", "encrypted":
		return b.oddSIF(kind)
	}
	return fmt.Errorf("unknown kind (want one of %s)", strings.Join(HostileKinds, ", "))
}

// path is the absolute path of rel inside the rootfs.
func (b hostileBuild) path(rel string) string { return filepath.Join(b.root, rel) }

func (b hostileBuild) mkdirs(rels ...string) error {
	for _, rel := range rels {
		if err := os.MkdirAll(b.path(rel), 0o755); err != nil {
			return err
		}
	}
	return nil
}

func (b hostileBuild) write(rel, content string, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(b.path(rel)), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(b.path(rel), []byte(content), mode); err != nil {
		return err
	}
	return os.Chmod(b.path(rel), mode)
}

// squash packs dir with the pseudo definitions and returns the squashfs bytes.
func (b hostileBuild) squash(dir string, pseudo ...string) ([]byte, error) {
	out := filepath.Join(b.work, filepath.Base(dir)+".squashfs")
	// Without -no-duplicates, mksquashfs compares every pair of same-sized files: minutes
	// for the 100 000 files of many-files.
	if err := mksquashfs(b.ctx, dir, out, []string{"-no-duplicates"}, pseudo); err != nil {
		return nil, err
	}
	return os.ReadFile(out)
}

// primary packs the rootfs into a SIF with one primary partition.
func (b hostileBuild) primary(pseudo ...string) error {
	data, err := b.squash(b.root, pseudo...)
	if err != nil {
		return err
	}
	return SIF(b.out, PrimaryPartition(data))
}

// symlinks adds links out of the tree, absolute and relative, to the host's files and to the
// outside directory, at the paths a scanner reads and elsewhere.
func (b hostileBuild) symlinks() error {
	up := strings.Repeat("../", 32)
	links := map[string]string{
		"etc/shadow-host":             "/etc/shadow",
		"etc/passwd-host":             up + "etc/passwd",
		"usr/share/escape-abs":        b.outside,
		"usr/share/escape-rel":        up + strings.TrimPrefix(b.outside, "/"),
		"usr/share/escape-file":       filepath.Join(b.outside, "victim"),
		"var/lib/dpkg/status.d":       filepath.Join(b.outside, "status.d"),
		"usr/lib/os-release":          "/etc/os-release",
		"var/lib/rpm":                 "/var/lib/dpkg",
		"lib/apk/db":                  up + "var/lib/dpkg",
		"usr/lib/python3/site":        "/usr/lib/python3",
		"root/.cache":                 b.outside,
		"tmp/loop":                    "loop",
		"usr/share/doc/escape-nested": "../../../../../../../../../../../../" + "proc/self/root",
	}
	for rel, target := range links {
		if err := os.MkdirAll(filepath.Dir(b.path(rel)), 0o755); err != nil {
			return err
		}
		if err := os.Symlink(target, b.path(rel)); err != nil {
			return err
		}
	}
	return b.primary()
}

// overlayEscape builds a SIF whose primary partition holds links to the outside directory
// and one of its files, and whose squashfs overlay partition holds a directory and a file
// under the same names: extracting the overlay on top of the primary would write through
// the links.
func (b hostileBuild) overlayEscape() error {
	for rel, target := range map[string]string{
		"usr/share/escape":   b.outside,
		"etc/escape-victim":  filepath.Join(b.outside, "victim"),
		"usr/local/bin/esc2": filepath.Join(b.outside, "sub"),
	} {
		if err := os.MkdirAll(filepath.Dir(b.path(rel)), 0o755); err != nil {
			return err
		}
		if err := os.Symlink(target, b.path(rel)); err != nil {
			return err
		}
	}
	primary, err := b.squash(b.root)
	if err != nil {
		return err
	}

	upper := filepath.Join(b.work, "overlay")
	for rel, content := range map[string]string{
		"usr/share/escape/ESCAPED":   "written through a link in the primary partition\n",
		"etc/escape-victim":          "overwritten through a link in the primary partition\n",
		"usr/local/bin/esc2/ESCAPED": "written through a link in the primary partition\n",
	} {
		path := filepath.Join(upper, rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			return err
		}
	}
	overlay, err := b.squash(upper)
	if err != nil {
		return err
	}
	return SIF(b.out, PrimaryPartition(primary), Object{Data: overlay, Type: sif.DataPartition,
		FS: sif.FsSquash, Part: sif.PartOverlay})
}

// manyFiles adds n small files in directories of 1000.
func (b hostileBuild) manyFiles(n int) error {
	for i := range n {
		dir := b.path(fmt.Sprintf("usr/share/many/%03d", i/1000))
		if i%1000 == 0 {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
		}
		name := filepath.Join(dir, strconv.Itoa(i))
		if err := os.WriteFile(name, []byte(strconv.Itoa(i)), 0o644); err != nil {
			return err
		}
	}
	return b.primary()
}

// deep adds a chain of levels nested directories, with a file at the bottom.
func (b hostileBuild) deep(levels int) error {
	parts := make([]string, levels)
	for i := range parts {
		parts[i] = fmt.Sprintf("level%02d", i)
	}
	rel := filepath.Join(append([]string{"opt/deep"}, parts...)...)
	if err := b.write(filepath.Join(rel, "bottom.txt"), "the bottom\n", 0o644); err != nil {
		return err
	}
	return b.primary()
}

// nonUTF8 adds names that are invalid UTF-8, or hold a newline, a terminal escape, or a
// long run of bytes, in the places a scanner walks.
func (b hostileBuild) nonUTF8() error {
	names := []string{
		"usr/share/doc/\xff\xfe\xfd",
		"usr/share/doc/latin1-caf\xe9",
		"usr/share/doc/new\nline",
		"usr/share/doc/\x1b[31mred\x1b[0m",
		"usr/share/doc/" + strings.Repeat("\xc3", 250),
		"var/lib/dpkg/info/\xff.list",
		"usr/lib/python3/dist-packages/\xfe-1.0.dist-info/METADATA",
	}
	for _, name := range names {
		if err := b.write(name, "not UTF-8\n", 0o644); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(b.path("usr/share/\xff\xfe-dir/sub"), 0o755); err != nil {
		return err
	}
	return b.primary()
}

// unreadableFile adds a Python package whose metadata the scanning user may not read: an
// analyzer wants it and fails to open it.
func (b hostileBuild) unreadableFile() error {
	meta := "usr/lib/python3/dist-packages/requests-2.25.0.dist-info/METADATA"
	content := "Metadata-Version: 2.1\nName: requests\nVersion: 2.25.0\n"
	if err := b.write(meta, content, 0o644); err != nil {
		return err
	}
	return b.primary(meta + " m 000 0 0")
}

// plantedExecPaths are where a careless gate might find something to run: a shell, tools it
// calls (uname, find, chmod, the scanners, unsquashfs), package managers and the dynamic
// linker's configuration.
var plantedExecPaths = []string{
	"bin/sh", "bin/bash", "bin/dash", "usr/bin/env", "bin/uname", "usr/bin/uname",
	"usr/bin/find", "bin/chmod", "usr/bin/chmod", "usr/bin/dpkg", "usr/bin/dpkg-query",
	"usr/bin/rpm", "sbin/apk", "usr/bin/python3", "usr/bin/unsquashfs", "usr/local/bin/trivy",
	"usr/bin/trivy", "usr/local/bin/qscanner", "usr/bin/grype", "sbin/ldconfig",
	"usr/bin/ldd", "bin/ls", "usr/bin/id", "usr/bin/getent", "usr/bin/git",
	".singularity.d/runscript", ".singularity.d/env/90-environment.sh",
	".singularity.d/actions/exec", "usr/share/.trivy-hook",
}

// plantedExec installs, at every planted path, a setuid script that creates the marker in the
// outside directory, and points the dynamic linker at a planted library.
func (b hostileBuild) plantedExec() error {
	marker := filepath.Join(b.outside, MarkerName)
	script := fmt.Sprintf("#!/bin/sh\necho \"$0 $*\" >> %s\n", marker)
	var pseudo []string
	for _, rel := range plantedExecPaths {
		if err := b.write(rel, script, 0o755); err != nil {
			return err
		}
		pseudo = append(pseudo, rel+" m 4755 0 0")
	}
	if err := b.write("etc/ld.so.preload", "/usr/lib/libplanted.so\n", 0o644); err != nil {
		return err
	}
	if err := b.write("usr/lib/libplanted.so", script, 0o755); err != nil {
		return err
	}
	return b.primary(pseudo...)
}

// oddSIF builds the SIFs whose partitions the gate cannot extract without mounting.
func (b hostileBuild) oddSIF(kind string) error {
	data, err := b.squash(b.root)
	if err != nil {
		return err
	}
	primary := PrimaryPartition(data)
	switch kind {
	case "encrypted":
		primary.FS = sif.FsEncryptedSquashfs
		return SIF(b.out, primary)
	case "ext3-overlay":
		return SIF(b.out, primary, Object{Data: make([]byte, 64<<10), Type: sif.DataPartition,
			FS: sif.FsExt3, Part: sif.PartOverlay})
	}
	return SIF(b.out, Object{Data: []byte(`{"schemaVersion":2,"manifests":[]}`),
		Type: sif.DataOCIRootIndex}, Object{Data: data, Type: sif.DataOCIBlob})
}

// More offsets into the on-disk SIF layout: the global header's descriptor count, and where a
// descriptor's data offset and size stand (after type, used flag, id, group and link).
const (
	descriptorsTotalAt = 88
	offsetInDescriptor = 4 + 1 + 4 + 4 + 4
)

// SetDescriptorBounds rewrites the data offset and size of the index-th descriptor of the SIF
// at path, which the sif library would never write.
func SetDescriptorBounds(path string, index int, offset, size int64) error {
	at, err := descriptorAt(path, index)
	if err != nil {
		return err
	}
	var v [16]byte
	binary.LittleEndian.PutUint64(v[0:], uint64(offset))
	binary.LittleEndian.PutUint64(v[8:], uint64(size))
	return writeAt(path, at+offsetInDescriptor, v[:])
}

func descriptorAt(path string, index int) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var off [8]byte
	if _, err := f.ReadAt(off[:], descriptorsOffsetAt); err != nil {
		return 0, fmt.Errorf("patching %s: %w", path, err)
	}
	return int64(binary.LittleEndian.Uint64(off[:])) + int64(index)*rawDescriptorSize, nil
}

func setHeaderField(path string, at int64, value uint64) error {
	var v [8]byte
	binary.LittleEndian.PutUint64(v[:], value)
	return writeAt(path, at, v[:])
}

func writeAt(path string, at int64, data []byte) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(data, at); err != nil {
		f.Close()
		return fmt.Errorf("patching %s: %w", path, err)
	}
	return f.Close()
}

// scratchBase is where the tree is built: in memory when /dev/shm is there, as writing the
// 100 000 files of many-files to disk takes long on a busy machine.
func scratchBase(out string) string {
	if err := unix.Access("/dev/shm", unix.W_OK); err == nil {
		return "/dev/shm"
	}
	return filepath.Dir(out)
}

// removeAll removes a build directory even where a test image made a directory unwritable.
func removeAll(dir string) {
	if os.RemoveAll(dir) == nil {
		return
	}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(p, 0o755)
		}
		return nil
	})
	os.RemoveAll(dir)
}
