package extract

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/scan-gate/scan-gate/gate/image"
	"github.com/scan-gate/scan-gate/internal/proc"
	"github.com/scan-gate/scan-gate/internal/testimage"
)

// nobody is the unprivileged user of Debian machines.
var nobody = &proc.Credential{UID: 65534, GID: 65534}

// credential returns nobody when the test runs as root, as the gate does, else nil.
func credential() *proc.Credential {
	if os.Geteuid() == 0 {
		return nobody
	}
	return nil
}

// hostileSIF builds a SIF whose tree holds a device node, a setuid file and a FIFO.
func hostileSIF(t *testing.T, mode os.FileMode) string {
	t.Helper()
	dir := scratch(t)
	root := filepath.Join(dir, "root")
	if err := testimage.WriteRootfs(root, testimage.Vulnerable); err != nil {
		t.Fatal(err)
	}
	squash := filepath.Join(dir, "fs.squashfs")
	err := testimage.Squashfs(context.Background(), root, squash,
		"dev/null c 666 0 0 1 3", "dev/sda b 660 0 0 8 0",
		"bin/su f 4755 0 0 echo setuid", "var/lib/dpkg/pipe i 644 0 0 f")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(squash)
	out := filepath.Join(dir, "image.sif")
	if err := testimage.SIF(out, testimage.PrimaryPartition(data)); err != nil {
		t.Fatal(err)
	}
	os.Chmod(out, mode)
	return out
}

func extractFile(t *testing.T, path string, opts Options) *Tree {
	t.Helper()
	im, err := image.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	tree, err := Extract(context.Background(), im, opts)
	if err != nil {
		t.Fatalf("Extract: %v", err)
	}
	return tree
}

// scratch returns a temporary directory the scanning user can reach, as /var/tmp is.
func scratch(t *testing.T) string {
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o755)
	return dir
}

func TestExtractHostileTree(t *testing.T) {
	for _, mode := range []os.FileMode{0o644, 0o600} {
		t.Run(mode.String(), func(t *testing.T) {
			opts := Options{ScratchDir: scratch(t), Credential: credential()}
			tree := extractFile(t, hostileSIF(t, mode), opts)
			defer tree.Remove()

			status, err := os.ReadFile(filepath.Join(tree.Root, "var/lib/dpkg/status"))
			if err != nil || !strings.Contains(string(status), "libc6") {
				t.Fatalf("dpkg status not extracted: %v", err)
			}
			for _, dev := range []string{"dev/null", "dev/sda"} {
				if _, err := os.Lstat(filepath.Join(tree.Root, dev)); err == nil &&
					os.Geteuid() == 0 {
					t.Errorf("%s was created", dev)
				}
			}
			fi, err := os.Lstat(filepath.Join(tree.Root, "bin/su"))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode()&(os.ModeSetuid|os.ModeSetgid) != 0 {
				t.Errorf("bin/su kept mode %v", fi.Mode())
			}
			if cred := credential(); cred != nil {
				st := fi.Sys().(*syscall.Stat_t)
				if st.Uid != cred.UID {
					t.Errorf("bin/su owned by uid %d, want %d", st.Uid, cred.UID)
				}
			}
			if tree.UnpackedSize == 0 && mode == 0o644 {
				t.Error("unpacked size is zero")
			}
		})
	}
}

func TestRemoveAndSweep(t *testing.T) {
	base := scratch(t)
	opts := Options{ScratchDir: base, Credential: credential()}
	tree := extractFile(t, hostileSIF(t, 0o644), opts)
	if err := tree.Remove(); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(base); len(entries) != 0 {
		t.Fatalf("scratch not empty after Remove: %v", entries)
	}

	// A run that died leaves its directory and an unlocked lock file.
	dead := filepath.Join(base, runPrefix+"dead")
	os.MkdirAll(filepath.Join(dead, "rootfs/etc"), 0o755)
	os.WriteFile(dead+".lock", nil, 0o644)
	live, err := NewRunDir(base, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Remove()
	n, err := Sweep(base)
	if err != nil || n != 1 {
		t.Fatalf("Sweep removed %d, err %v; want 1", n, err)
	}
	if _, err := os.Stat(dead); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("dead run directory survived the sweep")
	}
	if _, err := os.Stat(live.Path); err != nil {
		t.Fatal("sweep removed a live run directory")
	}
}

func TestTmpfsBudget(t *testing.T) {
	shm := "/dev/shm"
	if !fitsTmpfs(shm, 1) {
		t.Skip("no tmpfs at /dev/shm")
	}
	path := hostileSIF(t, 0o644)
	tests := []struct {
		budget int64
		want   bool
	}{{1 << 30, true}, {10, false}}
	for _, tt := range tests {
		opts := Options{ScratchDir: scratch(t), TmpfsDir: shm, MemoryBudget: tt.budget,
			Credential: credential()}
		tree := extractFile(t, path, opts)
		if tree.OnTmpfs != tt.want || strings.HasPrefix(tree.Root, shm) != tt.want {
			t.Errorf("budget %d: on tmpfs %v at %s, want %v", tt.budget, tree.OnTmpfs,
				tree.Root, tt.want)
		}
		tree.Remove()
	}
}

func TestJudgeUnsquashfs(t *testing.T) {
	tests := []struct {
		name   string
		res    proc.Result
		wantOK bool
	}{
		{"clean", proc.Result{ExitCode: 0}, true},
		{"devices skipped", proc.Result{ExitCode: 2, Stderr: []byte(
			"create_inode: could not create character device /x/dev/null, because " +
				"you're not superuser!\n" +
				"create_inode: could not create block device /x/dev/disk/sda, because " +
				"you're not superuser!\n")}, true},
		{"device outside /dev", proc.Result{ExitCode: 2, Stderr: []byte(
			"create_inode: could not create character device /x/var/lib/dpkg/status, " +
				"because you're not superuser!\n")}, false},
		{"device beside /dev", proc.Result{ExitCode: 2, Stderr: []byte(
			"create_inode: could not create character device /x/devices/null, " +
				"because you're not superuser!\n")}, false},
		{"write failed", proc.Result{ExitCode: 2, Stderr: []byte(
			"write_file: failed to create file /x/etc/passwd, because No space left on " +
				"device\n")}, false},
		{"fatal", proc.Result{ExitCode: 1, Stderr: []byte("FATAL ERROR: bad superblock")},
			false},
	}
	for _, tt := range tests {
		err := judgeUnsquashfs(tt.res, "/x")
		if (err == nil) != tt.wantOK {
			t.Errorf("%s: got %v", tt.name, err)
		}
		if err != nil && !errors.Is(err, ErrIncomplete) {
			t.Errorf("%s: %v is not ErrIncomplete", tt.name, err)
		}
	}
}

func TestSumListing(t *testing.T) {
	out := []byte("drwxr-xr-x 0/0 49 2026-12-03 17:00 squashfs-root\n" +
		"-rwsr-xr-x 0/0 3 2026-12-03 17:00 squashfs-root/bin/x\n" +
		"crw-rw-rw- 0/0 1,  3 2026-12-03 17:00 squashfs-root/dev/null\n" +
		"-rw-r--r-- 0/0 1000 2026-12-03 17:00 squashfs-root/a file with spaces\n")
	if got := sumListing(out); got != 1003 {
		t.Fatalf("sumListing = %d, want 1003", got)
	}
}

func TestCheckRoom(t *testing.T) {
	dir := t.TempDir()
	if err := checkRoom(dir, 1<<20); err != nil {
		t.Fatalf("1 MiB does not fit: %v", err)
	}
	err := checkRoom(dir, 1<<60)
	if !errors.Is(err, ErrNoRoom) || !strings.Contains(err.Error(), "unpacks to") {
		t.Fatalf("checkRoom(1 EiB) = %v, want ErrNoRoom", err)
	}
}
