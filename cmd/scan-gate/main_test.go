package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/sylabs/sif/v2/pkg/sif"

	"github.com/scan-gate/scan-gate/internal/testimage"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"scan-gate": func() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) },
		// A process that chroots into os.Args[1] and sleeps (launch point tests).
		"scan-gate-chroot": chrootMain,
		// Writes an image while the gate checks it (hostile_test.go).
		"slowwrite": func() { os.Exit(slowWrite(os.Args[1:])) },
	})
}

// trivyPath finds the real trivy the tests drive: $SCAN_GATE_TRIVY, PATH, or GOPATH/bin.
func trivyPath() string {
	if p := os.Getenv("SCAN_GATE_TRIVY"); p != "" {
		return p
	}
	if p, err := exec.LookPath("trivy"); err == nil {
		abs, _ := filepath.Abs(p)
		return abs
	}
	gopath, err := exec.Command("go", "env", "GOPATH").Output()
	if err == nil {
		p := filepath.Join(strings.TrimSpace(string(gopath)), "bin", "trivy")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

var (
	trivyOnce      sync.Once
	reachableTrivy string
	trivyErr       error
)

// requireTrivy skips a test that needs trivy, or fails it when CI says scanners must be
// present. It returns a trivy the unprivileged scanning user can run: when the binary lives
// where that user cannot reach (root's GOPATH under /root), a copy in a reachable place.
func requireTrivy(t testing.TB) string {
	t.Helper()
	p := trivyPath()
	if p == "" {
		if os.Getenv("SCAN_GATE_REQUIRE_SCANNERS") == "1" {
			t.Fatal("trivy not found and SCAN_GATE_REQUIRE_SCANNERS=1 (run make tools)")
		}
		t.Skip("trivy not found (run make tools)")
	}
	if os.Geteuid() != 0 {
		return p
	}
	trivyOnce.Do(func() {
		if othersCanReach(p) {
			reachableTrivy = p
			return
		}
		dir, err := os.MkdirTemp("", "scan-gate-test-trivy-")
		if err == nil {
			os.Chmod(dir, 0o755)
			reachableTrivy = filepath.Join(dir, "trivy")
			err = exec.Command("cp", p, reachableTrivy).Run()
		}
		trivyErr = err
	})
	if trivyErr != nil {
		t.Fatalf("making trivy reachable for the scanning user: %v", trivyErr)
	}
	return reachableTrivy
}

var (
	fixtureOnce sync.Once
	fixtureDB   string
	fixtureErr  error
)

// buildFixtureDB writes the fixture vulnerability DB once per test binary, into dir (which the
// scanning user must be able to read), with the given DB date.
func buildFixtureDB(dir, updated string) error {
	cmd := exec.Command("go", "run", ".", "-o", dir, "-updated", updated)
	cmd.Dir = filepath.Join(repoRoot(), "testdata", "trivydb")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("building fixture DB: %v: %s", err, out)
	}
	return filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil {
			mode := fi.Mode() | 0o444
			if fi.IsDir() {
				mode |= 0o111
			}
			os.Chmod(p, mode)
		}
		return err
	})
}

// othersCanReach reports whether every directory above path lets others through.
func othersCanReach(path string) bool {
	for dir := filepath.Dir(path); ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		if dir == "/" {
			return true
		}
	}
}

func repoRoot() string {
	wd, _ := os.Getwd()
	return filepath.Clean(filepath.Join(wd, "..", ".."))
}

// reachableTempDir returns a temporary directory that the unprivileged scanning user can
// traverse, as /var/tmp is on a node.
func reachableTempDir(t testing.TB) string {
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o755)
	return dir
}

func TestScripts(t *testing.T) {
	trivy := requireTrivy(t)
	root := reachableTempDir(t)
	fixtureOnce.Do(func() {
		fixtureDB = filepath.Join(root, "trivy-db")
		fixtureErr = buildFixtureDB(fixtureDB, "2026-11-30T00:00:00Z")
	})
	if fixtureErr != nil {
		t.Fatal(fixtureErr)
	}
	scanners := setupScanners(t) // grype and the QScanner double (scanners_test.go)
	testscript.Run(t, testscript.Params{
		Dir:         filepath.Join(repoRoot(), "testdata", "script"),
		WorkdirRoot: root,
		Setup: func(env *testscript.Env) error {
			env.Setenv("TRIVY", trivy)
			env.Setenv("TRIVY_DB", fixtureDB)
			env.Setenv("REPO", repoRoot())
			scanners.setenv(env)
			self, err := exec.LookPath("scan-gate")
			if err != nil {
				return err
			}
			env.Setenv("SCAN_GATE", self)
			return writeBasePolicy(env.WorkDir, trivy, fixtureDB)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"mkimage": cmdMkimage,
			"expand":  cmdExpand,
			"fixturedb": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 2 {
					ts.Fatalf("usage: fixturedb DIR UPDATED")
				}
				ts.Check(buildFixtureDB(ts.MkAbs(args[0]), args[1]))
			},
			"mkfifo": func(ts *testscript.TestScript, neg bool, args []string) {
				ts.Check(exec.Command("mkfifo", ts.MkAbs(args[0])).Run())
			},
			"age": cmdAge,
			// Commands of the prewarm scripts (prewarm_test.go).
			"mkimages":    cmdMkimages,
			"waitentries": cmdWaitEntries,
			"scannedonce": cmdScannedOnce,
			// Commands of the launch point scripts (launchpoints_test.go).
			"unsif":      cmdUnsif,
			"ocibundle":  cmdOCIBundle,
			"gostatic":   cmdGoStatic,
			"chrootproc": cmdChrootProc,
			"loopmount":  cmdLoopMount,
			"waitfor":    cmdWaitFor,
			// Commands of the grype and QScanner scripts (scanners_test.go).
			"qscanner": cmdQScanner,
			"gone":     cmdGone,
			// Commands of the hostile image scripts (hostile_test.go).
			"hostile":     cmdHostile,
			"snapshot":    cmdSnapshot,
			"unchanged":   cmdUnchanged,
			"stamp":       cmdStamp,
			"within":      cmdWithin,
			"spypolicy":   cmdSpyPolicy,
			"noleftovers": cmdNoLeftovers,
		},
		Condition: func(cond string) (bool, error) {
			if cond == "root" {
				return os.Geteuid() == 0, nil
			}
			if cond == "loop" { // launchpoints_test.go
				return loopMountPermitted(), nil
			}
			if cond == "grype" { // scanners_test.go
				return scanners.grype != "", nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
	})
}

// basePolicy is the policy every script starts with: defaults, all paths in the work dir.
const basePolicy = `# written by the test harness
[scanner.trivy]
path = "%s"
db_dir = "%s"

[extract]
scratch_dir = "%s/scratch"
# Not a tmpfs: extraction falls back to scratch_dir, where the scripts can see leftovers.
tmpfs_dir = "%s/no-tmpfs"

[cache]
dir = "%s/cache"

[audit]
log = "%s/audit.jsonl"
`

func writeBasePolicy(work, trivy, db string) error {
	text := fmt.Sprintf(basePolicy, trivy, db, work, work, work, work)
	return os.WriteFile(filepath.Join(work, "policy.toml"), []byte(text), 0o644)
}

// cmdExpand copies a file, expanding $VARS from the script's environment: expand IN OUT.
func cmdExpand(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: expand IN OUT")
	}
	text := ts.ReadFile(args[0])
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), []byte(os.Expand(text, ts.Getenv)), 0o644))
}

// cmdAge sets a file's modification time some duration into the past: age DURATION FILE.
func cmdAge(ts *testscript.TestScript, neg bool, args []string) {
	d, err := time.ParseDuration(args[0])
	ts.Check(err)
	when := time.Now().Add(-d)
	ts.Check(os.Chtimes(ts.MkAbs(args[1]), when, when))
}

// cmdMkimage builds test images: mkimage KIND OUT, where KIND is vulnerable, patched,
// encrypted, ext3-overlay, two-primaries, oci, sandbox (OUT is a directory), sign (adds a
// signature object to the SIF OUT), or truncate (cuts OUT to half its size).
func cmdMkimage(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: mkimage KIND OUT")
	}
	kind, out := args[0], ts.MkAbs(args[1])
	ctx := context.Background()
	switch kind {
	case "vulnerable", "patched":
		pkgs := testimage.Vulnerable
		if kind == "patched" {
			pkgs = testimage.Patched
		}
		ts.Check(testimage.Build(ctx, out, pkgs))
	case "sandbox":
		ts.Check(testimage.WriteRootfs(out, testimage.Vulnerable))
	case "sign":
		ts.Check(testimage.AddSignatureObject(out))
	case "truncate":
		data, err := os.ReadFile(out)
		ts.Check(err)
		ts.Check(os.WriteFile(out, data[:len(data)/2], 0o644))
	case "encrypted", "ext3-overlay", "two-primaries", "oci":
		ts.Check(buildOddSIF(ctx, ts, kind, out))
	default:
		ts.Fatalf("mkimage: unknown kind %q", kind)
	}
	if fi, err := os.Stat(out); err == nil && fi.Mode().IsRegular() {
		os.Chmod(out, 0o644) // readable by the scanning user, as shared images are
	}
}

func buildOddSIF(ctx context.Context, ts *testscript.TestScript, kind, out string) error {
	work := ts.MkAbs(".odd-" + strconv.Itoa(os.Getpid()))
	defer os.RemoveAll(work)
	if err := testimage.WriteRootfs(filepath.Join(work, "root"), testimage.Patched); err != nil {
		return err
	}
	squash := filepath.Join(work, "fs.squashfs")
	if err := testimage.Squashfs(ctx, filepath.Join(work, "root"), squash); err != nil {
		return err
	}
	data, err := os.ReadFile(squash)
	if err != nil {
		return err
	}
	primary := testimage.PrimaryPartition(data)
	switch kind {
	case "encrypted":
		primary.FS = sif.FsEncryptedSquashfs
		return testimage.SIF(out, primary)
	case "ext3-overlay":
		return testimage.SIF(out, primary, testimage.Object{Data: make([]byte, 64<<10),
			Type: sif.DataPartition, FS: sif.FsExt3, Part: sif.PartOverlay})
	case "oci":
		return testimage.SIF(out, testimage.Object{Data: []byte(`{"schemaVersion":2}`),
			Type: sif.DataOCIRootIndex}, testimage.Object{Data: data, Type: sif.DataOCIBlob})
	}
	second := primary
	second.Part = sif.PartSystem
	if err := testimage.SIF(out, primary, second); err != nil {
		return err
	}
	return testimage.ForcePartType(out, 1, sif.PartPrimSys)
}
