package watch

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/scan-gate/scan-gate/cache"
	"github.com/scan-gate/scan-gate/gate"
	"github.com/scan-gate/scan-gate/gate/extract"
	"github.com/scan-gate/scan-gate/gate/finding"
	"github.com/scan-gate/scan-gate/gate/image"
	"github.com/scan-gate/scan-gate/gate/scanner"
	"github.com/scan-gate/scan-gate/internal/proc"
	"github.com/scan-gate/scan-gate/internal/testimage"
	"github.com/scan-gate/scan-gate/policy"
)

// The test binary doubles as the processes the tests watch.
const (
	envChroot  = "WATCH_TEST_CHROOT"  // chroot into this directory, say "ready", sleep
	envParent  = "WATCH_TEST_PARENT"  // start a chrooted child after a while, wait for it
	envInspect = "WATCH_TEST_INSPECT" // inspect this PID (run as an unprivileged user)
)

func TestMain(m *testing.M) {
	switch {
	case os.Getenv(envChroot) != "":
		chrootAndSleep(os.Getenv(envChroot))
	case os.Getenv(envParent) != "":
		time.Sleep(300 * time.Millisecond)
		child := exec.Command(os.Args[0])
		child.Env = []string{envChroot + "=" + os.Getenv(envParent)}
		child.Stdout = os.Stdout
		child.Run()
		os.Exit(0)
	case os.Getenv(envInspect) != "":
		inspectAsCaller(os.Getenv(envInspect))
	}
	os.Exit(m.Run())
}

func chrootAndSleep(dir string) {
	if err := syscall.Chroot(dir); err != nil {
		fmt.Println("chroot:", err)
		os.Exit(1)
	}
	os.Chdir("/")
	fmt.Println("ready")
	for {
		time.Sleep(time.Hour)
	}
}

// inspectAsCaller inspects a process with a gate that has no scanner and prints the result.
func inspectAsCaller(pidText string) {
	pid, _ := strconv.Atoi(pidText)
	p, err := Lookup(pid)
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	in := &Inspector{Gate: &gate.Gate{Policy: policy.Default(), Backend: &fakeScanner{}}}
	d, err := in.Inspect(context.Background(), p, policy.Subject{User: "nobody"})
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	json.NewEncoder(os.Stdout).Encode(d.Result)
	os.Exit(0)
}

// fakeScanner stands in for a scanner: it reports one critical finding for every file of
// the tree that holds the vulnerable curl version, and remembers what it saw.
type fakeScanner struct {
	mu    sync.Mutex
	files []string
	links map[string]string
	// large are the files over 1 MiB, not read whole: how they were copied.
	large map[string]largeFile
	runs  atomic.Int32
}

// largeFile is a large file of a copy: its apparent size, what it takes on disk, and the
// bytes at offset 1 GiB.
type largeFile struct {
	size, stored int64
	at1G         string
}

func (s *fakeScanner) Name() string     { return "fake" }
func (s *fakeScanner) Settings() string { return "v1" }

func (s *fakeScanner) Identify(context.Context) (scanner.Identity, error) {
	return scanner.Identity{Name: "fake", Version: "1"}, nil
}

func (s *fakeScanner) Scan(ctx context.Context, t scanner.Target) (*finding.Scan, error) {
	s.runs.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files, s.links, s.large = nil, map[string]string{}, map[string]largeFile{}
	scan := &finding.Scan{Scanner: "fake"}
	err := filepath.WalkDir(t.Root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(t.Root, path)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			s.links[rel], _ = os.Readlink(path)
		case d.Type().IsRegular():
			s.files = append(s.files, rel)
			if fi, err := d.Info(); err == nil && fi.Size() > 1<<20 {
				s.large[rel] = readLarge(path, fi)
				return nil
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if strings.Contains(string(data), "Version: 7.88.1-10+deb12u1\n") {
				scan.Findings = append(scan.Findings, finding.Finding{ID: "CVE-2023-38545",
					Package: "curl", Installed: "7.88.1-10+deb12u1",
					FixedVersions: []string{"7.88.1-10+deb12u4"}, FixState: finding.Fixed,
					Severity: finding.Critical, Location: rel})
			}
		}
		return nil
	})
	return scan, err
}

func readLarge(path string, fi fs.FileInfo) largeFile {
	lf := largeFile{size: fi.Size(), stored: fi.Sys().(*syscall.Stat_t).Blocks * 512}
	if f, err := os.Open(path); err == nil {
		buf := make([]byte, 5)
		n, _ := f.ReadAt(buf, 1<<30)
		lf.at1G = string(buf[:n])
		f.Close()
	}
	return lf
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("chroot, mounts and other users' processes need root")
	}
}

// reachableDir is a temporary directory the unprivileged scanning user can traverse.
func reachableDir(t *testing.T) string {
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o755)
	return dir
}

type fixture struct {
	dir     string
	scanner *fakeScanner
	in      *Inspector
}

func newFixture(t *testing.T) *fixture {
	dir := reachableDir(t)
	store, err := cache.Open(filepath.Join(dir, "cache"), cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var cred *proc.Credential
	if os.Geteuid() == 0 {
		cred = &proc.Credential{UID: 65534, GID: 65534}
	}
	s := &fakeScanner{}
	g := &gate.Gate{Policy: policy.Default(), Node: store, Backend: s,
		Extract: extract.Options{ScratchDir: filepath.Join(dir, "scratch"), Credential: cred}}
	return &fixture{dir: dir, scanner: s, in: &Inspector{Gate: g}}
}

// startChrooted starts a process chrooted into root and waits until it is in there.
func startChrooted(t *testing.T, root string) Process {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = []string{envChroot + "=" + root}
	return startHelper(t, cmd)
}

func startHelper(t *testing.T, cmd *exec.Cmd) Process {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("helper: %q %v", line, err)
	}
	p, err := Lookup(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mountOn(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("mount", args...).CombinedOutput(); err != nil {
		t.Skipf("mount is not permitted here (%v: %s); the mount tests need it", err, out)
	}
	target := args[len(args)-1]
	t.Cleanup(func() { exec.Command("umount", "-l", target).Run() })
}

// TestWalkStaysOnTheRootFilesystem chroots a process into a patched tree with a bind mount
// (a user's home, holding a vulnerable package list), a tmpfs and an absolute link: the walk
// reads the tree but neither mount, the link points into the copy, and the verdict is the
// tree's own.
func TestWalkStaysOnTheRootFilesystem(t *testing.T) {
	requireRoot(t)
	f := newFixture(t)
	root := filepath.Join(f.dir, "root")
	if err := testimage.WriteRootfs(root, testimage.Patched); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(f.dir, "home")
	os.MkdirAll(home, 0o755)
	os.WriteFile(filepath.Join(home, "status"), []byte("Version: 7.88.1-10+deb12u1\n"), 0o644)
	os.MkdirAll(filepath.Join(root, "home", "alice"), 0o755)
	mountOn(t, "--bind", home, filepath.Join(root, "home", "alice"))
	mountOn(t, "-t", "tmpfs", "tmpfs", filepath.Join(root, "tmp"))
	os.WriteFile(filepath.Join(root, "tmp", "scratch"), []byte("x"), 0o644)
	os.Symlink("/etc/hostname", filepath.Join(root, "etc", "name"))
	os.Symlink("/etc/hostname", filepath.Join(root, "top-link"))

	p := startChrooted(t, root)
	d, err := f.in.Inspect(context.Background(), p, policy.Subject{User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if d.Method != MethodWalk || d.Ended || d.Result.Action != policy.Allow {
		t.Fatalf("decision: method %s, ended %v, action %s, message %q", d.Method, d.Ended,
			d.Result.Action, d.Result.Message)
	}
	// Named so that the audit log still makes sense once the process is gone.
	want := fmt.Sprintf("container root of PID %d (exe %s)", p.PID, self(t))
	if d.Result.Image != want {
		t.Errorf("result image %q, want %q", d.Result.Image, want)
	}
	skipped := strings.Join(d.Skipped, " ")
	if !strings.Contains(skipped, "/home/alice") || !strings.Contains(skipped, "/tmp") {
		t.Errorf("skipped mounts %q, want /home/alice and /tmp", skipped)
	}
	files := strings.Join(f.scanner.files, " ")
	if !strings.Contains(files, "var/lib/dpkg/status") {
		t.Errorf("the copy lacks the package list: %s", files)
	}
	if strings.Contains(files, "home/alice") || strings.Contains(files, "tmp/scratch") {
		t.Errorf("the walk left the root filesystem: %s", files)
	}
	if got := f.scanner.links["etc/name"]; got != "./../etc/hostname" {
		t.Errorf("etc/name -> %q, want ./../etc/hostname (inside the copy)", got)
	}
	if got := f.scanner.links["top-link"]; got != "./etc/hostname" {
		t.Errorf("top-link -> %q, want ./etc/hostname", got)
	}
	assertScratchEmpty(t, f)
}

// TestMountOverPackageDatabaseIsNotClean bind-mounts a vulnerable tree's package database
// over a patched tree's: the walk, which reads no other filesystem, would see the patched
// list only, so the root must not be called clean.
func TestMountOverPackageDatabaseIsNotClean(t *testing.T) {
	requireRoot(t)
	f := newFixture(t)
	root, vulnerable := filepath.Join(f.dir, "root"), filepath.Join(f.dir, "vulnerable")
	if err := testimage.WriteRootfs(root, testimage.Patched); err != nil {
		t.Fatal(err)
	}
	if err := testimage.WriteRootfs(vulnerable, testimage.Vulnerable); err != nil {
		t.Fatal(err)
	}
	mountOn(t, "--bind", filepath.Join(vulnerable, "var", "lib", "dpkg"),
		filepath.Join(root, "var", "lib", "dpkg"))

	p := startChrooted(t, root)
	d, err := f.in.Inspect(context.Background(), p, policy.Subject{User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	reason := "another filesystem is mounted on /var/lib/dpkg, over the package database " +
		"/var/lib/dpkg"
	if d.Result.Action != policy.Block || !d.Result.Verdict.Unscannable ||
		!strings.Contains(d.Result.Message, "the image could not be scanned") ||
		!strings.Contains(d.Result.Error, reason) {
		t.Fatalf("action %s, message %q, error %q; want an unscannable block because %s",
			d.Result.Action, d.Result.Message, d.Result.Error, reason)
	}
	assertScratchEmpty(t, f)
}

func TestHidesPackageDatabase(t *testing.T) {
	tests := []struct {
		mount string
		db    string
	}{
		{"/var/lib/dpkg", "/var/lib/dpkg"},
		{"/var", "/var/lib/dpkg"},
		{"/var/lib", "/var/lib/dpkg"},
		{"/var/lib/dpkg/status", "/var/lib/dpkg"},
		{"/usr", "/usr/lib/sysimage/rpm"},
		{"/lib/apk", "/lib/apk/db"},
		{"/var/lib/rpm/Packages", "/var/lib/rpm"},
		{"/var/tmp", ""},
		{"/home/alice", ""},
		{"/var/lib/dpkg-old", ""},
		{"/etc/hosts", ""},
	}
	for _, tt := range tests {
		db, ok := hidesPackageDatabase(tt.mount)
		if db != tt.db || ok != (tt.db != "") {
			t.Errorf("hidesPackageDatabase(%q) = %q, %v; want %q", tt.mount, db, ok, tt.db)
		}
	}
}

// TestWalkKeepsHoles walks a root holding a 3 GiB file with 5 bytes of data: the copy
// takes what the file stores, not what it claims.
func TestWalkKeepsHoles(t *testing.T) {
	requireRoot(t)
	f := newFixture(t)
	root := filepath.Join(f.dir, "root")
	if err := testimage.WriteRootfs(root, testimage.Patched); err != nil {
		t.Fatal(err)
	}
	big, err := os.Create(filepath.Join(root, "big"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := big.WriteAt([]byte("hello"), 1<<30); err != nil {
		t.Fatal(err)
	}
	if err := big.Truncate(3 << 30); err != nil {
		t.Fatal(err)
	}
	big.Close()

	p := startChrooted(t, root)
	d, err := f.in.Inspect(context.Background(), p, policy.Subject{User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if d.Result.Action != policy.Allow {
		t.Fatalf("action %s, message %q", d.Result.Action, d.Result.Message)
	}
	copied, ok := f.scanner.large["big"]
	if !ok || copied.size != 3<<30 || copied.stored > 1<<20 || copied.at1G != "hello" {
		t.Errorf("the copy of big: %+v (found %v); want 3 GiB apparent, under 1 MiB "+
			"stored, \"hello\" at 1 GiB", copied, ok)
	}
	assertScratchEmpty(t, f)
}

func TestAllPIDsByNumber(t *testing.T) {
	pids := allPIDs()
	if len(pids) == 0 || !slices.IsSorted(pids) {
		t.Errorf("allPIDs() = %v, want the PIDs in increasing order", pids)
	}
}

func TestWalkBlocksAVulnerableTree(t *testing.T) {
	requireRoot(t)
	f := newFixture(t)
	root := filepath.Join(f.dir, "root")
	if err := testimage.WriteRootfs(root, testimage.Vulnerable); err != nil {
		t.Fatal(err)
	}
	p := startChrooted(t, root)
	d, err := f.in.Inspect(context.Background(), p, policy.Subject{User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("container root of PID %d (exe %s) blocked: 1 critical "+
		"vulnerability at or above the \"critical\" threshold: CVE-2023-38545 in curl "+
		"7.88.1-10+deb12u1 (fixed in 7.88.1-10+deb12u4); next step: ask your admins",
		p.PID, self(t))
	if d.Result.Action != policy.Block || !strings.HasPrefix(d.Result.Message, want) {
		t.Fatalf("action %s, message %q;\nwant block, %q...", d.Result.Action,
			d.Result.Message, want)
	}
}

// TestProcessExitsMidWalk ends the process while its root is being copied: no verdict, not
// a clean one, and nothing left in the scratch directory.
func TestProcessExitsMidWalk(t *testing.T) {
	requireRoot(t)
	f := newFixture(t)
	root := filepath.Join(f.dir, "root")
	if err := testimage.WriteRootfs(root, testimage.Patched); err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		os.WriteFile(filepath.Join(root, "usr", "share", "doc", "f"+strconv.Itoa(i)),
			[]byte("data"), 0o644)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = []string{envChroot + "=" + root}
	p := startHelper(t, cmd)

	copied := 0
	f.in.afterFile = func(string) {
		if copied++; copied == 20 {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}
	d, err := f.in.Inspect(context.Background(), p, policy.Subject{User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if !d.Ended || d.Result.Action != "" {
		t.Fatalf("ended %v, action %q, message %q; want ended with no verdict", d.Ended,
			d.Result.Action, d.Result.Message)
	}
	if n := f.scanner.runs.Load(); n != 0 {
		t.Errorf("the scanner ran %d times on a partial copy", n)
	}
	assertScratchEmpty(t, f)
}

// TestVanishingEntries removes files while the walk runs: the walk goes on.
func TestVanishingEntries(t *testing.T) {
	requireRoot(t)
	f := newFixture(t)
	root := filepath.Join(f.dir, "root")
	if err := testimage.WriteRootfs(root, testimage.Vulnerable); err != nil {
		t.Fatal(err)
	}
	churn := filepath.Join(root, "var", "churn")
	os.MkdirAll(churn, 0o755)
	for i := range 50 {
		os.WriteFile(filepath.Join(churn, "f"+strconv.Itoa(i)), []byte("x"), 0o644)
	}
	p := startChrooted(t, root)
	removed := false
	f.in.afterFile = func(where string) {
		// Once the first file of the directory is copied, the rest of it goes away.
		if !removed && strings.HasPrefix(where, "/var/churn/") {
			removed = true
			os.RemoveAll(churn)
		}
	}
	d, err := f.in.Inspect(context.Background(), p, policy.Subject{User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if d.Result.Action != policy.Block {
		t.Fatalf("action %s, message %q; want block", d.Result.Action, d.Result.Message)
	}
	if !removed || d.Vanished != 49 {
		t.Errorf("%d entries vanished, want the 49 removed after the first was copied",
			d.Vanished)
	}
}

// TestUnreadableRootIsNotClean inspects a root-owned process as an unprivileged user: the
// root cannot be read, and the verdict is the policy's unscannable action (block).
func TestUnreadableRootIsNotClean(t *testing.T) {
	requireRoot(t)
	f := newFixture(t)
	root := filepath.Join(f.dir, "root")
	if err := testimage.WriteRootfs(root, testimage.Patched); err != nil {
		t.Fatal(err)
	}
	p := startChrooted(t, root)

	// The test binary, where the unprivileged user can run it.
	self := filepath.Join(f.dir, "watch.test")
	if out, err := exec.Command("cp", os.Args[0], self).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	cmd := exec.Command(self)
	cmd.Env = []string{envInspect + "=" + strconv.Itoa(p.PID)}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534,
		Gid: 65534}}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("inspecting as nobody: %v: %s", err, out)
	}
	var res gate.Result
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	// Nobody may not read the process's exe link: the name is the PID alone.
	want := fmt.Sprintf("container root of PID %d blocked: the image could not be scanned "+
		"(cannot inspect the container's root filesystem: reading the root of process %d: ",
		p.PID, p.PID)
	if res.Action != policy.Block || !strings.HasPrefix(res.Message, want) ||
		!strings.Contains(res.Message, "permission denied") {
		t.Fatalf("action %s, message %q;\nwant block, %q... permission denied", res.Action,
			res.Message, want)
	}
}

// TestLoopMountedRootUsesTheCache mounts a SIF's partition from a loop device as a
// process's root: the root is mapped back to the SIF, checked through the gate, and the
// second inspection is a cache hit.
func TestLoopMountedRootUsesTheCache(t *testing.T) {
	requireRoot(t)
	f := newFixture(t)
	sifPath := filepath.Join(f.dir, "app.sif")
	if err := testimage.Build(context.Background(), sifPath, testimage.Vulnerable); err != nil {
		t.Fatal(err)
	}
	os.Chmod(sifPath, 0o644)
	mnt := filepath.Join(f.dir, "mnt")
	os.Mkdir(mnt, 0o755)
	loopMount(t, sifPath, mnt)

	p := startChrooted(t, mnt)
	for i, wantCache := range []string{gate.CacheMiss, gate.CacheHit} {
		d, err := f.in.Inspect(context.Background(), p, policy.Subject{User: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		if d.Method != MethodImage || d.Root.Image != sifPath || d.Root.FSType != "squashfs" {
			t.Fatalf("inspection %d: method %s, root %+v", i, d.Method, d.Root)
		}
		if d.Result.Action != policy.Block || d.Result.Cache != wantCache {
			t.Fatalf("inspection %d: action %s, cache %s, want block, %s (%s)", i,
				d.Result.Action, d.Result.Cache, wantCache, d.Result.Error)
		}
		if !strings.HasPrefix(d.Result.Message, "image "+sifPath+" blocked: 1 critical") {
			t.Errorf("message %q", d.Result.Message)
		}
	}
	if n := f.scanner.runs.Load(); n != 1 {
		t.Errorf("scanner ran %d times, want 1", n)
	}
}

// loopMount attaches the SIF's primary partition to a loop device and mounts it read-only
// on dir, as Apptainer does.
func loopMount(t *testing.T, sifPath, dir string) {
	t.Helper()
	im, err := image.Open(sifPath)
	if err != nil {
		t.Fatal(err)
	}
	part := im.Partitions[0]
	im.Close()
	out, err := exec.Command("losetup", "--find", "--show", "--read-only",
		"--offset", strconv.FormatInt(part.Offset, 10),
		"--sizelimit", strconv.FormatInt(part.Size, 10), sifPath).CombinedOutput()
	if err != nil {
		t.Skipf("losetup is not permitted here (%v: %s); the loop test needs it", err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	mountOn(t, "-t", "squashfs", "-o", "ro", dev, dir)
}

// TestWatcherFollowsDescendants watches a task that starts a chrooted child later, as
// Apptainer's starter does: the child's root is inspected once, and the watch ends with the
// task.
func TestWatcherFollowsDescendants(t *testing.T) {
	requireRoot(t)
	f := newFixture(t)
	root := filepath.Join(f.dir, "root")
	if err := testimage.WriteRootfs(root, testimage.Vulnerable); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = []string{envParent + "=" + root}
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	task, err := Lookup(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}

	var decisions []Decision
	w := &Watcher{Inspector: f.in, Interval: 20 * time.Millisecond,
		OnDecision: func(d Decision) {
			decisions = append(decisions, d)
			for _, c := range task.Descendants() {
				syscall.Kill(c.PID, syscall.SIGKILL) // the task ends with its child
			}
		}}
	done := make(chan error, 1)
	go func() { done <- w.Run(context.Background(), task, policy.Subject{User: "alice"}) }()
	go bufio.NewReader(out).ReadString('\n')
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the watch did not end with the task")
	}
	if len(decisions) != 1 {
		t.Fatalf("%d decisions, want 1", len(decisions))
	}
	d := decisions[0]
	if d.Process.PID == task.PID || d.Result.Action != policy.Block {
		t.Errorf("decision for process %d (task %d): %s %q", d.Process.PID, task.PID,
			d.Result.Action, d.Result.Message)
	}
}

func TestHostRootIsNeverScanned(t *testing.T) {
	f := newFixture(t)
	self, err := Lookup(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.in.Inspect(context.Background(), self, policy.Subject{})
	if !errors.Is(err, ErrHostRoot) {
		t.Fatalf("inspecting a host process: %v, want ErrHostRoot", err)
	}
	if n := f.scanner.runs.Load(); n != 0 {
		t.Errorf("the scanner ran on the host root")
	}
}

func TestLookup(t *testing.T) {
	self, err := Lookup(os.Getpid())
	if err != nil || !self.Alive() || self.Start == 0 {
		t.Fatalf("Lookup(self) = %+v, %v", self, err)
	}
	if (Process{PID: self.PID, Start: self.Start + 1}).Alive() {
		t.Error("a process with another start time counts as alive")
	}
	if _, err := Lookup(1 << 30); !errors.Is(err, ErrGone) {
		t.Errorf("Lookup of a missing PID: %v, want ErrGone", err)
	}
}

func assertScratchEmpty(t *testing.T, f *fixture) {
	t.Helper()
	entries, _ := os.ReadDir(filepath.Join(f.dir, "scratch"))
	if len(entries) != 0 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("scratch directory not cleaned: %v", names)
	}
}

// self is the test binary, as /proc/PID/exe names it for the chrooted helpers.
func self(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}
