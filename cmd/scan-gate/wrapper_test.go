package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/scan-gate/scan-gate/internal/testimage"
)

// argvShapes are command lines from Apptainer's documented CLI (the user guide's bind,
// environment, GPU, overlay, fakeroot, instance and OCI pages), with the quoting users
// write. Each starts a patched image or starts nothing, so the wrapper must hand every one
// to the real apptainer exactly as it came.
var argvShapes = [][]string{
	{"exec", "patched.sif", "cat", "/etc/os-release"},
	{"run", "patched.sif"},
	{"shell", "patched.sif"},
	{"test", "patched.sif"},
	{"exec", "--bind", "/data:/mnt", "patched.sif", "ls", "/mnt"},
	{"exec", "-B", "/scratch,/data:/data:ro", "patched.sif", "ls"},
	{"exec", "--bind=/opt/a:/a", "patched.sif", "true"},
	{"exec", "-B", "/path with space:/mnt", "patched.sif", "ls", "/mnt/a b"},
	{"run", "--nv", "patched.sif", "python", "train.py", "--epochs", "10"},
	{"exec", "--nv", "--bind", "/gpfs:/gpfs", "patched.sif", "nvidia-smi", "-L"},
	{"exec", "--env", "FOO=bar", "--env", "MSG=hello world", "patched.sif", "printenv"},
	{"exec", "--env-file", "job.env", "--cleanenv", "patched.sif", "env"},
	{"exec", "--overlay", "overlay.img", "patched.sif", "touch", "/data/x"},
	{"exec", "--overlay", "overlay.img:ro", "-o", "extra.sqsh", "patched.sif", "ls"},
	{"shell", "--writable-tmpfs", "--fakeroot", "patched.sif"},
	{"exec", "--containall", "--home", "/tmp/h:/home/u", "patched.sif", "id"},
	{"exec", "-C", "-e", "-H", "/tmp/h", "patched.sif", "id", "-u"},
	{"exec", "--pwd", "/work", "--workdir", "/tmp/w", "patched.sif", "pwd"},
	{"run", "--app", "foo", "patched.sif", "arg1", ""},
	{"exec", "--", "patched.sif", "echo", "--", "--not-an-option"},
	{"exec", "patched.sif", "sh", "-c", `echo "$HOME" && ls -la | wc -l`},
	{"-d", "exec", "patched.sif", "true"},
	{"--quiet", "--nocolor", "run", "patched.sif", "x=1", "-v"},
	{"-s", "exec", "--mount", "type=bind,src=/data,dst=/data", "patched.sif", "ls"},
	{"instance", "start", "--bind", "/data", "patched.sif", "web1"},
	{"instance", "run", "--pid-file", "web2.pid", "patched.sif", "web2", "--port", "8080"},
	{"exec", "instance://web1", "ps", "aux"},
	{"exec", "docker://alpine:3.19", "cat", "/etc/alpine-release"},
	{"pull", "alpine.sif", "docker://alpine:3.19"},
	{"exec", "sandbox/", "ls", "/"},
	{"shell", "-s", "/bin/bash", "--no-home", "patched.sif"},
	{"exec", "--security", "seccomp:profile.json", "--add-caps", "CAP_NET_ADMIN",
		"patched.sif", "ip", "a"},
	{"exec", "--userns", "--pid", "--ipc", "--uts", "--hostname", "box", "-cB", "/x:/y",
		"patched.sif", "hostname"},
	{"exec", "--unsquash", "--cwd", "/tmp", "--memory", "1G", "--cpus", "2", "patched.sif",
		"printf", "%s\\n", "ünïcödé", "line1\nline2", "'quoted'", `"double"`, "$HOME"},
}

// standIn records its argv (NUL-terminated) and the name of its parent process, then exits
// with $STANDIN_EXIT.
const standIn = `#!/bin/sh
printf '%s\0' "$@" > "$RECORD"
cat /proc/$PPID/comm > "$RECORD.parent"
exit "${STANDIN_EXIT:-0}"
`

type wrapperFixture struct {
	dir, wrapper string
	env          []string
}

func newWrapperFixture(t *testing.T) wrapperFixture {
	trivy := requireTrivy(t)
	self, err := exec.LookPath("scan-gate")
	if err != nil {
		t.Fatal(err)
	}
	dir := reachableTempDir(t)
	db := filepath.Join(dir, "trivy-db")
	if err := buildFixtureDB(db, "2026-11-30T00:00:00Z"); err != nil {
		t.Fatal(err)
	}
	if err := writeBasePolicy(dir, trivy, db); err != nil {
		t.Fatal(err)
	}
	// Images the runtime fetches itself are let through with a warning under this policy.
	f, _ := os.OpenFile(filepath.Join(dir, "policy.toml"), os.O_APPEND|os.O_WRONLY, 0)
	fmt.Fprintf(f, "\n[on]\nunscannable = \"warn\"\n")
	f.Close()

	if err := testimage.Build(t.Context(), filepath.Join(dir, "patched.sif"),
		testimage.Patched); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(dir, "patched.sif"), 0o644)
	if err := testimage.WriteRootfs(filepath.Join(dir, "sandbox"),
		testimage.Patched); err != nil {
		t.Fatal(err)
	}
	real := filepath.Join(dir, "real-apptainer")
	os.WriteFile(real, []byte(standIn), 0o755)
	bin := filepath.Join(dir, "bin")
	os.Mkdir(bin, 0o755)
	wrapper := filepath.Join(bin, "apptainer")
	if err := os.Symlink(filepath.Join(repoRoot(), "contrib", "apptainer",
		"apptainer-wrapper.sh"), wrapper); err != nil {
		t.Fatal(err)
	}
	return wrapperFixture{dir: dir, wrapper: wrapper,
		env: append(os.Environ(), "SCAN_GATE="+self, "SCAN_GATE_REAL="+real,
			"SCAN_GATE_POLICY="+filepath.Join(dir, "policy.toml"))}
}

// TestWrapperPassesArgvUnchanged runs the wrapper on each shape, all at once, and compares
// what the stand-in apptainer received, byte for byte.
func TestWrapperPassesArgvUnchanged(t *testing.T) {
	f := newWrapperFixture(t)
	if len(argvShapes) < 30 {
		t.Fatalf("only %d shapes", len(argvShapes))
	}
	for i, shape := range argvShapes {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			t.Parallel()
			record := filepath.Join(f.dir, "argv-"+strconv.Itoa(i))
			cmd := exec.Command(f.wrapper, shape...)
			cmd.Dir, cmd.Env = f.dir, append(slices.Clone(f.env), "RECORD="+record)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("apptainer %q: %v\n%s", shape, err, &stderr)
			}
			data, err := os.ReadFile(record)
			if err != nil {
				t.Fatalf("apptainer %q: the real apptainer did not run: %v\n%s", shape, err,
					&stderr)
			}
			got := strings.Split(strings.TrimSuffix(string(data), "\x00"), "\x00")
			if !slices.Equal(got, shape) {
				t.Errorf("apptainer %q reached the real apptainer as %q", shape, got)
			}
			// Only the docker:// shape warns; every other one proceeds silently.
			if isDocker := slices.Contains(shape, "docker://alpine:3.19") &&
				shape[0] == "exec"; isDocker != (stderr.Len() > 0) {
				t.Errorf("apptainer %q: stderr %q", shape, &stderr)
			}
			parent, _ := os.ReadFile(record + ".parent")
			if strings.TrimSpace(string(parent)) == "apptainer" {
				t.Errorf("apptainer %q: the real apptainer is a child of the wrapper, not "+
					"exec'd in its place", shape)
			}
		})
	}
}
