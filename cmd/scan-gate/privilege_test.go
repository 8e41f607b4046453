package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scan-gate/scan-gate/cache"
	"github.com/scan-gate/scan-gate/internal/testimage"
)

// Privilege tests: a gate run as root trusts no cache another user could write, keeps its
// scratch directories to the scanning user, and never runs image content (the last is
// hostile_exec.txtar; the Qualys token is qscanner_token.txtar).

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the gate's privileges are what is tested")
	}
}

// TestCacheWritableByOthersRefused makes the node cache, one of its directories, or a
// directory above it writable by another user. A root gate then uses no cache at all: each
// check is a no decision naming the problem, and nothing is written there.
func TestCacheWritableByOthersRefused(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name  string
		spoil func(f processFixture) error
		want  string
	}{
		{"cache directory mode 0777", func(f processFixture) error {
			return os.Chmod(filepath.Join(f.dir, "cache"), 0o777)
		}, "is writable by group or others"},
		{"cache directory owned by nobody", func(f processFixture) error {
			return os.Chown(filepath.Join(f.dir, "cache"), scanningUID, scanningUID)
		}, "is owned by uid 65534"},
		{"entries directory group-writable", func(f processFixture) error {
			return os.Chmod(filepath.Join(f.dir, "cache", "entries"), 0o775)
		}, "is writable by group or others"},
		{"parent directory writable by others", func(f processFixture) error {
			return os.Chmod(f.dir, 0o777)
		}, "above the cache directory, is writable by group or others"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newProcessFixture(t)
			f.assertVerdict(t, "miss") // creates the cache
			entries, _ := filepath.Glob(filepath.Join(f.dir, "cache", "entries", "*"))
			if err := tt.spoil(f); err != nil {
				t.Fatal(err)
			}
			code, _, stderr := runStatus(f.check(f.image))
			if code != exitBlocked || !noDecision(stderr) || !strings.Contains(stderr, tt.want) {
				t.Fatalf("check: exit %d, stderr %q; want a no decision saying %q", code,
					stderr, tt.want)
			}
			after, _ := filepath.Glob(filepath.Join(f.dir, "cache", "entries", "*"))
			if len(after) != len(entries) {
				t.Errorf("the gate wrote to a cache it refused: %v", after)
			}
		})
	}
}

// TestPoisonedCacheIgnored forges cache files that would let a vulnerable image through: an
// entry with its findings removed, and a stat-index record giving the vulnerable image the
// patched image's content key. Written by root, the forgeries work, which shows they are
// real; owned by another user, or writable by others, they are ignored and the image is
// blocked after a fresh scan.
func TestPoisonedCacheIgnored(t *testing.T) {
	requireRoot(t)
	f := newProcessFixture(t)
	f.assertVerdict(t, "miss")
	cacheDir := filepath.Join(f.dir, "cache")

	forgeEntry := func() string {
		store, err := cache.Open(cacheDir, cache.Options{})
		if err != nil {
			t.Fatal(err)
		}
		entries, err := store.List()
		if err != nil || len(entries) != 1 {
			t.Fatalf("cache holds %d entries (%v), want 1", len(entries), err)
		}
		e := entries[0]
		e.Scan.Findings = nil
		if err := store.Put(e.Key, &e); err != nil {
			t.Fatal(err)
		}
		return filepath.Join(cacheDir, "entries", e.Key.Name()+".entry")
	}
	allowed := func(why string) {
		t.Helper()
		if code, _, stderr := runStatus(f.check(f.image)); code != 0 {
			t.Fatalf("%s: the forgery did not work (exit %d, %q)", why, code, stderr)
		}
	}

	path := forgeEntry()
	allowed("entry written by root")
	if err := os.Chown(path, scanningUID, scanningUID); err != nil {
		t.Fatal(err)
	}
	f.assertVerdict(t, "miss")

	path = forgeEntry()
	allowed("entry written by root")
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	f.assertVerdict(t, "miss")

	// The stat index: the vulnerable file's identity mapped to the patched image's key.
	patched := filepath.Join(f.dir, "patched.sif")
	if err := testimage.Build(t.Context(), patched, testimage.Patched); err != nil {
		t.Fatal(err)
	}
	os.Chmod(patched, 0o644)
	_, out, _ := runStatus(f.check("--json", patched))
	var verdict struct {
		Results []struct{ Key, Image string }
	}
	if err := json.Unmarshal([]byte(out), &verdict); err != nil || len(verdict.Results) != 1 {
		t.Fatalf("check of the patched image: %v\n%s", err, out)
	}
	_, out, _ = runStatus(f.check("--json", f.image))
	var vulnerable struct {
		Results []struct{ Image string }
	}
	json.Unmarshal([]byte(out), &vulnerable)
	fi, err := os.Stat(f.image)
	if err != nil {
		t.Fatal(err)
	}
	store, err := cache.Open(cacheDir, cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The gate records the path it resolved, which --json reports as the image.
	recorded := f.image
	if len(vulnerable.Results) == 1 && vulnerable.Results[0].Image != "" {
		recorded = vulnerable.Results[0].Image
	}
	statFiles := func() map[string]bool {
		names, _ := filepath.Glob(filepath.Join(cacheDir, "stat", "*"))
		set := map[string]bool{}
		for _, n := range names {
			set[n] = true
		}
		return set
	}
	before := statFiles()
	if err := store.RecordStat(recorded, cache.FileIDOf(fi), verdict.Results[0].Key); err != nil {
		t.Fatal(err)
	}
	allowed("stat record written by root")
	var forged []string
	for name := range statFiles() {
		data, _ := os.ReadFile(name)
		if strings.Contains(string(data), verdict.Results[0].Key) &&
			strings.Contains(string(data), recorded) {
			forged = append(forged, name)
		}
	}
	if len(forged) != 1 {
		t.Fatalf("cannot tell the forged stat record among %v (before: %v)", forged, before)
	}
	if err := os.Chown(forged[0], scanningUID, scanningUID); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runStatus(f.check(f.image))
	if code != exitBlocked || !strings.Contains(stderr, "4 critical vulnerabilities") {
		t.Fatalf("check with a stat record owned by nobody: exit %d, %q", code, stderr)
	}
}

// TestScratchIsPrivate looks at the scratch directories while a scan runs, on disk and on
// tmpfs: each run directory belongs to the scanning user, mode 0700, in a base directory
// only root may write, and no other user can look inside.
func TestScratchIsPrivate(t *testing.T) {
	requireRoot(t)
	shm := reachableTempDir(t)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1200m,mode=0755",
		"scan-gate-test", shm).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s)", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() { exec.Command("umount", "-l", shm).Run() })

	for _, onTmpfs := range []bool{false, true} {
		t.Run(fmt.Sprintf("tmpfs=%v", onTmpfs), func(t *testing.T) {
			f := newWrappedFixture(t, blockingScanner, "")
			base := filepath.Join(f.dir, "scratch")
			if onTmpfs {
				// The gate's own directory on the shared tmpfs.
				base = filepath.Join(shm, "scan-gate-0")
				policy, _ := os.ReadFile(f.policy)
				text := strings.Replace(string(policy), fmt.Sprintf("tmpfs_dir = %q",
					filepath.Join(f.dir, "no-tmpfs")), fmt.Sprintf("tmpfs_dir = %q\n"+
					"memory_budget = \"32MiB\"", shm), 1)
				if err := os.WriteFile(f.policy, []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			checking := f.check(f.image)
			if err := checking.Start(); err != nil {
				t.Fatal(err)
			}
			defer checking.Wait()
			defer os.WriteFile(filepath.Join(f.state, "release"), nil, 0o644)
			waitFor(t, filepath.Join(f.state, "started"), 2*time.Minute)

			st := statOf(t, base)
			if st.Mode&0o022 != 0 || st.Uid != 0 {
				t.Errorf("scratch base %s: mode %o uid %d; want root's, not writable by "+
					"others", base, st.Mode&0o7777, st.Uid)
			}
			runs, _ := filepath.Glob(filepath.Join(base, "scan-gate-run-*[^k]"))
			if len(runs) != 1 {
				t.Fatalf("run directories in %s: %v", base, runs)
			}
			for _, dir := range []string{runs[0], filepath.Join(runs[0], "scan")} {
				st := statOf(t, dir)
				if st.Mode&0o7777 != 0o700 || st.Uid != scanningUID {
					t.Errorf("%s: mode %o uid %d; want 0700 and the scanning user", dir,
						st.Mode&0o7777, st.Uid)
				}
			}
			lock := statOf(t, runs[0]+".lock")
			if lock.Mode&0o022 != 0 {
				t.Errorf("run lock file mode %o is writable by others", lock.Mode&0o7777)
			}
			// Another unprivileged user cannot list the tree.
			peek := exec.Command("ls", filepath.Join(runs[0], "rootfs"))
			peek.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{
				Uid: 1, Gid: 1, Groups: []uint32{}}}
			if out, err := peek.CombinedOutput(); err == nil {
				t.Errorf("user 1 listed the scan tree:\n%s", out)
			}
		})
	}
}

func statOf(t *testing.T, path string) *syscall.Stat_t {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return &st
}
