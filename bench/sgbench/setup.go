package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sylabs/sif/v2/pkg/sif"
	"golang.org/x/sys/unix"

	"github.com/scan-gate/scan-gate/internal/testimage"
)

// nobody is the scanning user of the default policy.
const nobody = 65534

// bench holds the work directory's layout and the images, built once.
type bench struct {
	config
	db     string // the fixture vulnerability DB
	small  string // the vulnerable test image, 36 KiB
	images map[string]string
}

func newBench(c config) (*bench, error) {
	b := &bench{config: c, images: map[string]string{}}
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.Chmod(c.dir, 0o755); err != nil {
		return nil, err
	}
	b.db = filepath.Join(c.dir, "trivy-db")
	if _, err := os.Stat(filepath.Join(b.db, "db", "metadata.json")); err != nil {
		return nil, fmt.Errorf("no fixture DB in %s (bench/run writes it): %w", b.db, err)
	}
	b.small = filepath.Join(c.dir, "images", "small.sif")
	if err := os.MkdirAll(filepath.Dir(b.small), 0o755); err != nil {
		return nil, err
	}
	if _, err := os.Stat(b.small); err != nil {
		err := testimage.Build(context.Background(), b.small, testimage.Vulnerable)
		if err != nil {
			return nil, err
		}
		os.Chmod(b.small, 0o644)
	}
	return b, nil
}

// policy writes a policy for a measurement into its own directory and returns its path.
// Its cache, scratch and audit log live there; extra is appended (TOML tables).
func (b *bench) policy(name, trivy, extra string) (string, error) {
	dir := filepath.Join(b.dir, "run-"+name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	text := fmt.Sprintf(`[scanner.trivy]
path = %q
db_dir = %q

[extract]
scratch_dir = %q

[cache]
dir = %q

[audit]
log = %q
%s`, trivy, b.db, filepath.Join(dir, "scratch"), filepath.Join(dir, "cache"),
		filepath.Join(dir, "audit.jsonl"), extra)
	path := filepath.Join(dir, "policy.toml")
	return path, os.WriteFile(path, []byte(text), 0o644)
}

// forget removes a policy's cached results and stat index, keeping the scanner's version
// memo: the next check of an image is a miss that hashes it.
func forget(policy string) error {
	cache := filepath.Join(filepath.Dir(policy), "cache")
	for _, sub := range []string{"entries", "stat"} {
		entries, _ := os.ReadDir(filepath.Join(cache, sub))
		for _, e := range entries {
			if err := os.Remove(filepath.Join(cache, sub, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// check runs `scan-gate check` and returns its exit status.
func (b *bench) check(gate, policy string, args ...string) (int, []byte, error) {
	cmd := exec.Command(gate, append([]string{"check", "--policy", policy}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return 0, out, nil
	case errors.As(err, &exitErr):
		return exitErr.ExitCode(), out, nil
	}
	return -1, out, fmt.Errorf("%v: %s", err, stderr.Bytes())
}

// timed runs cmd and returns how long it took from start to exit.
func timed(cmd *exec.Cmd) (time.Duration, error) {
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		err = nil // a blocked check exits 1
	}
	return d, err
}

// peakRSS runs cmd and returns its own peak resident set in KiB (VmHWM, read from /proc
// while it runs: the rusage of a child counts its children too, such as a scanner).
func peakRSS(cmd *exec.Cmd) (int64, error) {
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	status := "/proc/" + strconv.Itoa(cmd.Process.Pid) + "/status"
	var peak int64
	for {
		select {
		case err := <-done:
			var exitErr *exec.ExitError
			if errors.As(err, &exitErr) {
				err = nil
			}
			return peak, err
		case <-time.After(time.Millisecond):
			peak = max(peak, vmHWM(status))
		}
	}
}

func vmHWM(status string) int64 {
	data, err := os.ReadFile(status)
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kib, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"),
				10, 64)
			return kib
		}
	}
	return 0
}

// bigImage returns a SIF whose primary partition holds size bytes of incompressible data,
// stored uncompressed: what matters is how many bytes there are to hash. It is built once,
// in the work directory, through a pseudo file so that the data is never on disk twice.
func (b *bench) bigImage(size int64) (string, error) {
	name := fmt.Sprintf("big-%dM.sif", size>>20)
	out := filepath.Join(b.dir, "images", name)
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	fmt.Fprintf(os.Stderr, "   building %s\n", name)
	work, err := os.MkdirTemp(b.dir, ".build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	root := filepath.Join(work, "root")
	if err := testimage.WriteRootfs(root, testimage.Patched); err != nil {
		return "", err
	}
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	squash := filepath.Join(work, "fs.squashfs")
	pseudo := fmt.Sprintf("usr/share/big.bin f 644 0 0 %s random %d", self, size)
	cmd := exec.Command("mksquashfs", root, squash, "-noappend", "-all-root", "-no-progress",
		"-quiet", "-noI", "-noD", "-noF", "-noX", "-no-duplicates", "-p", pseudo)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("mksquashfs: %v: %s", err, out)
	}
	if err := sifFromFile(squash, out); err != nil {
		return "", err
	}
	return out, os.Chmod(out, 0o644)
}

// realImage returns a SIF of a real Debian root filesystem: this machine's /etc, dpkg
// database, /usr/bin, /usr/sbin, Python and Node packages and documentation, hard-linked into
// a staging tree and packed with mksquashfs's defaults (gzip).
func (b *bench) realImage() (string, error) {
	out := filepath.Join(b.dir, "images", "debian-rootfs.sif")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	fmt.Fprintf(os.Stderr, "   building debian-rootfs.sif from this machine's files\n")
	work, err := os.MkdirTemp(b.dir, ".build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	root := filepath.Join(work, "root")
	parts := []string{"etc", "var/lib/dpkg", "usr/bin", "usr/sbin", "usr/lib/python3",
		"usr/lib/python3.11", "usr/lib/node_modules", "usr/share/doc", "usr/share/man"}
	if b.quick {
		parts = []string{"etc", "var/lib/dpkg", "usr/sbin", "usr/lib/python3"}
	}
	for _, part := range parts {
		src := "/" + part
		if _, err := os.Stat(src); err != nil {
			continue
		}
		dst := filepath.Join(root, part)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return "", err
		}
		// Hard links where the work directory shares the filesystem, copies elsewhere.
		cp := exec.Command("cp", "-al", src, dst)
		if err := cp.Run(); err != nil {
			os.RemoveAll(dst)
			if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
				return "", fmt.Errorf("copying %s: %v: %s", src, err, out)
			}
		}
	}
	squash := filepath.Join(work, "fs.squashfs")
	cmd := exec.Command("mksquashfs", root, squash, "-noappend", "-no-progress", "-quiet",
		"-processors", strconv.Itoa(runtime.NumCPU()))
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("mksquashfs: %v: %s", err, out)
	}
	if err := sifFromFile(squash, out); err != nil {
		return "", err
	}
	return out, os.Chmod(out, 0o644)
}

// sifFromFile wraps a squashfs file as the primary partition of a new SIF, streaming it.
func sifFromFile(squash, out string) error {
	f, err := os.Open(squash)
	if err != nil {
		return err
	}
	defer f.Close()
	di, err := sif.NewDescriptorInput(sif.DataPartition, f,
		sif.OptPartitionMetadata(sif.FsSquash, sif.PartPrimSys, "amd64"))
	if err != nil {
		return err
	}
	img, err := sif.CreateContainerAtPath(out, sif.OptCreateWithDescriptors(di))
	if err != nil {
		return err
	}
	return img.UnloadContainer()
}

// partitionOffset returns where the primary partition of a SIF starts.
func partitionOffset(path string) (int64, error) {
	img, err := sif.LoadContainerFromPath(path, sif.OptLoadWithFlag(os.O_RDONLY))
	if err != nil {
		return 0, err
	}
	defer img.UnloadContainer()
	d, err := img.GetDescriptor(sif.WithPartitionType(sif.PartPrimSys))
	if err != nil {
		return 0, err
	}
	return d.Offset(), nil
}

// shm is where trees are unpacked for the extraction measurement: /dev/shm when it is a
// tmpfs, else the work directory.
func (b *bench) shm() string {
	var fs unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &fs); err == nil && fs.Type == unix.TMPFS_MAGIC {
		return "/dev/shm"
	}
	return b.dir
}

// asNobody makes cmd run as the scanning user, with no supplementary groups.
func asNobody(cmd *exec.Cmd) *exec.Cmd {
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody,
		Gid: nobody, Groups: []uint32{}}}
	return cmd
}

// environment describes the machine, for the record under the table.
func (b *bench) environment() string {
	load, _ := os.ReadFile("/proc/loadavg")
	kernel, _ := exec.Command("uname", "-r").Output()
	version, _ := exec.Command(b.gate, "version").Output()
	first, _, _ := strings.Cut(string(version), "\n")
	return fmt.Sprintf("Measured %s on %d CPUs, Linux %s, load average %s; %s; %d rounds.",
		time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(),
		strings.TrimSpace(string(kernel)), strings.Join(strings.Fields(string(load))[:3], " "),
		strings.TrimSpace(first), b.rounds)
}
