package main

// Commands for the scripts that test the launch points (wrapper_*, hook_*, watch_*): images
// unpacked into directories and OCI bundles, processes chrooted into them, loop mounts.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/scan-gate/scan-gate/gate/image"
)

// chrootMain is the scan-gate-chroot command: chroot into os.Args[1], say "ready" on
// stdout, and sleep until killed. It is a stand-in for a container's process; nothing from
// the tree is executed.
func chrootMain() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: scan-gate-chroot DIR")
		os.Exit(2)
	}
	if err := syscall.Chroot(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "chroot:", err)
		os.Exit(1)
	}
	os.Chdir("/")
	fmt.Println("ready")
	for {
		time.Sleep(time.Hour)
	}
}

// primaryPartition returns where a SIF's (or squashfs file's) root filesystem is.
func primaryPartition(ts *testscript.TestScript, path string) image.Partition {
	im, err := image.Open(path)
	ts.Check(err)
	defer im.Close()
	for _, p := range im.Partitions {
		if p.Role == "primary" {
			return p
		}
	}
	ts.Fatalf("%s has no primary partition", path)
	return image.Partition{}
}

// cmdUnsif unpacks a SIF's root filesystem with the real unsquashfs: unsif SIF DIR.
func cmdUnsif(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: unsif SIF DIR")
	}
	sifPath, dir := ts.MkAbs(args[0]), ts.MkAbs(args[1])
	part := primaryPartition(ts, sifPath)
	out, err := exec.Command("unsquashfs", "-no-progress", "-no-xattrs", "-offset",
		strconv.FormatInt(part.Offset, 10), "-d", dir, sifPath).CombinedOutput()
	if err != nil {
		ts.Fatalf("unsquashfs: %v\n%s", err, out)
	}
	ts.Check(os.Chmod(dir, 0o755))
}

// cmdGoStatic builds a static Go program: gostatic SRCDIR OUT.
func cmdGoStatic(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: gostatic SRCDIR OUT")
	}
	cmd := exec.Command("go", "build", "-o", ts.MkAbs(args[1]), ".")
	cmd.Dir = ts.MkAbs(args[0])
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		ts.Fatalf("go build: %v\n%s", err, out)
	}
}

// cmdOCIBundle makes an OCI bundle whose root filesystem is unpacked from a SIF and whose
// process is PROGRAM, copied in as /hello: ocibundle SIF DIR PROGRAM.
func cmdOCIBundle(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: ocibundle SIF DIR PROGRAM")
	}
	dir := ts.MkAbs(args[1])
	ts.Check(os.MkdirAll(dir, 0o755))
	cmdUnsif(ts, false, []string{args[0], filepath.Join(dir, "rootfs")})
	program, err := os.ReadFile(ts.MkAbs(args[2]))
	ts.Check(err)
	ts.Check(os.WriteFile(filepath.Join(dir, "rootfs", "hello"), program, 0o755))

	if out, err := exec.Command("runc", "spec", "--bundle", dir).CombinedOutput(); err != nil {
		ts.Fatalf("runc spec: %v\n%s", err, out)
	}
	path := filepath.Join(dir, "config.json")
	data, err := os.ReadFile(path)
	ts.Check(err)
	var config map[string]any
	ts.Check(json.Unmarshal(data, &config))
	process := config["process"].(map[string]any)
	process["terminal"] = false
	process["args"] = []string{"/hello"}
	data, err = json.MarshalIndent(config, "", "\t")
	ts.Check(err)
	ts.Check(os.WriteFile(path, data, 0o644))
}

var chrooted sync.Map // *testscript.TestScript -> *exec.Cmd

// cmdChrootProc starts or stops a process chrooted into a tree, standing in for a
// container's process. "chrootproc start DIR" runs it directly; "chrootproc start DIR
// --child" runs it as the child of a shell, as Apptainer's starter runs the container's
// process. $CHROOT_PID is the process given to watch (the shell, with --child); the
// stand-in's stderr is $WORK/task.stderr. "chrootproc stop" ends it.
func cmdChrootProc(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) == 1 && args[0] == "stop" {
		if v, ok := chrooted.LoadAndDelete(ts); ok {
			cmd := v.(*exec.Cmd)
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			cmd.Wait()
		}
		return
	}
	if len(args) < 2 || args[0] != "start" || len(args) > 3 {
		ts.Fatalf("usage: chrootproc start DIR [--child] | chrootproc stop")
	}
	dir := ts.MkAbs(args[1])
	cmd := exec.Command("scan-gate-chroot", dir)
	if len(args) == 3 {
		cmd = exec.Command("sh", "-c", `scan-gate-chroot "$1"; exit 0`, "sh", dir)
	}
	stderr, err := os.OpenFile(ts.MkAbs("task.stderr"), os.O_WRONLY|os.O_CREATE|os.O_APPEND,
		0o644)
	ts.Check(err)
	defer stderr.Close()
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	ts.Check(err)
	ts.Check(cmd.Start())
	chrooted.Store(ts, cmd)
	ts.Defer(func() { cmdChrootProc(ts, false, []string{"stop"}) })
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
		ts.Fatalf("chrooted process: %q, %v", line, err)
	}
	ts.Setenv("CHROOT_PID", strconv.Itoa(cmd.Process.Pid))
}

var (
	loopOnce sync.Once
	loopOK   bool
)

// loopMountPermitted is the [loop] condition: this process may attach loop devices and
// mount squashfs filesystems (as root, outside a sandbox that forbids it).
func loopMountPermitted() bool {
	loopOnce.Do(func() {
		if os.Geteuid() != 0 {
			return
		}
		if _, err := os.Stat("/dev/loop-control"); err != nil {
			return
		}
		data, _ := os.ReadFile("/proc/filesystems")
		if !strings.Contains(string(data), "squashfs") {
			exec.Command("modprobe", "squashfs").Run()
			data, _ = os.ReadFile("/proc/filesystems")
		}
		if !strings.Contains(string(data), "squashfs") {
			return
		}
		dir, err := os.MkdirTemp("", "scan-gate-mount-probe-")
		if err != nil {
			return
		}
		defer os.Remove(dir)
		if exec.Command("mount", "-t", "tmpfs", "probe", dir).Run() != nil {
			return
		}
		exec.Command("umount", dir).Run()
		loopOK = exec.Command("losetup", "--find").Run() == nil
	})
	return loopOK
}

// cmdLoopMount mounts a SIF's root filesystem read-only from a loop device, as Apptainer
// does: loopmount SIF DIR. Scripts check the [loop] condition first.
func cmdLoopMount(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: loopmount SIF DIR")
	}
	sifPath, dir := ts.MkAbs(args[0]), ts.MkAbs(args[1])
	part := primaryPartition(ts, sifPath)
	out, err := exec.Command("losetup", "--find", "--show", "--read-only", "--offset",
		strconv.FormatInt(part.Offset, 10), "--sizelimit", strconv.FormatInt(part.Size, 10),
		sifPath).CombinedOutput()
	if err != nil {
		ts.Fatalf("losetup: %v: %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	ts.Defer(func() { exec.Command("losetup", "--detach", dev).Run() })
	ts.Check(os.MkdirAll(dir, 0o755))
	if out, err := exec.Command("mount", "-t", "squashfs", "-o", "ro", dev,
		dir).CombinedOutput(); err != nil {
		ts.Fatalf("mount: %v: %s", err, out)
	}
	ts.Defer(func() { exec.Command("umount", "--lazy", dir).Run() })
	ts.Setenv("LOOP_DEVICE", dev)
}

// cmdWaitFor waits up to two minutes for a file to match a regular expression:
// waitfor FILE REGEXP.
func cmdWaitFor(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: waitfor FILE REGEXP")
	}
	re, err := regexp.Compile("(?m)" + args[1])
	ts.Check(err)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		data, _ := os.ReadFile(ts.MkAbs(args[0]))
		if re.Match(data) {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("%s never matched %q; it holds:\n%s", args[0], args[1], data)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
