package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gofrs/flock"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/scan-gate/scan-gate/internal/testimage"
)

// Commands of the hostile_*.txtar scripts. Each hostile image's links and planted
// executables point at $WORK/outside, a directory the scanning user may write to, as
// /tmp is: a gate that is fooled leaves a trace there.

// scanningUID is the policy's default scanning user, nobody.
const scanningUID = 65534

// cmdHostile builds a hostile image: hostile KIND OUT. It prepares $WORK/outside with a
// world-writable victim file and a directory the scanning user owns.
func cmdHostile(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: hostile KIND OUT")
	}
	outside := ts.MkAbs("outside")
	prepareOutside(ts, outside)
	out := ts.MkAbs(args[1])
	ts.Check(testimage.Hostile(context.Background(), args[0], out, outside))
	ts.Check(os.Chmod(out, 0o644))
}

func prepareOutside(ts *testscript.TestScript, outside string) {
	if _, err := os.Stat(outside); err == nil {
		return
	}
	ts.Check(os.MkdirAll(filepath.Join(outside, "sub"), 0o755))
	ts.Check(os.Chmod(outside, 0o777))
	victim := filepath.Join(outside, "victim")
	ts.Check(os.WriteFile(victim, []byte("original\n"), 0o666))
	ts.Check(os.Chmod(victim, 0o666))
	if os.Geteuid() == 0 {
		ts.Check(os.Chown(filepath.Join(outside, "sub"), scanningUID, scanningUID))
	}
}

// cmdSnapshot records what a fooled gate could change: snapshot NAME. See hostState.
func cmdSnapshot(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: snapshot NAME")
	}
	ts.Check(os.WriteFile(ts.MkAbs(".snapshot-"+args[0]), []byte(hostState(ts)), 0o644))
}

// cmdUnchanged fails when the host differs from the snapshot: unchanged NAME.
func cmdUnchanged(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: unchanged NAME")
	}
	before := strings.Split(ts.ReadFile(".snapshot-"+args[0]), "\n")
	after := strings.Split(hostState(ts), "\n")
	var diff []string
	for _, line := range after {
		if !slices.Contains(before, line) {
			diff = append(diff, "+ "+line)
		}
	}
	for _, line := range before {
		if !slices.Contains(after, line) {
			diff = append(diff, "- "+line)
		}
	}
	if len(diff) > 0 {
		ts.Fatalf("the host changed outside the gate's scratch directory:\n%s",
			strings.Join(diff, "\n"))
	}
}

// hostState lists, one line each: everything in $WORK/outside (type, mode, owner, size,
// content digest); every device node, FIFO, socket, setuid or setgid file under $WORK; and
// the entries of /tmp, /var/tmp and /dev/shm that the scanning user owns.
func hostState(ts *testscript.TestScript) string {
	var lines []string
	work := ts.Getenv("WORK")
	outside := filepath.Join(work, "outside")
	filepath.WalkDir(work, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		info, err := os.Lstat(path)
		if err != nil {
			return nil
		}
		st := info.Sys().(*syscall.Stat_t)
		mode := info.Mode()
		special := mode&(fs.ModeDevice|fs.ModeCharDevice|fs.ModeNamedPipe|fs.ModeSocket|
			fs.ModeSetuid|fs.ModeSetgid) != 0
		if path != outside && !strings.HasPrefix(path, outside+"/") && !special {
			return nil
		}
		line := fmt.Sprintf("%s %v uid=%d size=%d", path, mode, st.Uid, info.Size())
		if mode.IsRegular() && path != outside {
			data, _ := os.ReadFile(path)
			line += fmt.Sprintf(" sha256=%x", sha256.Sum256(data))
		}
		lines = append(lines, line)
		return nil
	})
	for _, shared := range []string{"/tmp", "/var/tmp", "/dev/shm"} {
		entries, _ := os.ReadDir(shared)
		for _, e := range entries {
			info, err := e.Info()
			if err != nil {
				continue
			}
			// Run directories belong to gates, this one's or others' running meanwhile.
			if strings.HasPrefix(e.Name(), "scan-gate-run-") {
				continue
			}
			if st := info.Sys().(*syscall.Stat_t); st.Uid == scanningUID {
				lines = append(lines, fmt.Sprintf("%s owned by the scanning user",
					filepath.Join(shared, e.Name())))
			}
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// cmdStamp records the time: stamp NAME.
func cmdStamp(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: stamp NAME")
	}
	ts.Setenv("STAMP_"+args[0], strconv.FormatInt(time.Now().UnixNano(), 10))
}

// cmdWithin fails when more than DURATION passed since stamp NAME: within NAME DURATION.
func cmdWithin(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: within NAME DURATION")
	}
	start, err := strconv.ParseInt(ts.Getenv("STAMP_"+args[0]), 10, 64)
	ts.Check(err)
	limit, err := time.ParseDuration(args[1])
	ts.Check(err)
	if took := time.Since(time.Unix(0, start)); took > limit {
		ts.Fatalf("took %s since stamp %s, more than %s", took.Round(time.Millisecond),
			args[0], limit)
	}
}

// spyTrivy runs the real trivy after recording, as the scanning user, what the tree it is
// given holds that extraction must never create (device nodes, setuid and setgid files),
// and the owner and mode of the directories around it.
const spyTrivy = `#!/bin/sh
for arg; do root=$arg; done
if [ "$1" = rootfs ]; then
  {
    echo "scan $root"
    stat -c 'dir %%a %%u %%n' "$(dirname "$root")" "$root"
    find "$root" \( -type b -o -type c -o -perm /6000 \) -printf 'special %%M %%p\n'
  } >> %s 2>&1
fi
exec %s "$@"
`

// cmdSpyPolicy points policy.toml at a spying trivy wrapper (see spyTrivy, which logs to
// $WORK/spy/log) and sets both the scan and the wait timeout: spypolicy [TIMEOUT].
func cmdSpyPolicy(ts *testscript.TestScript, neg bool, args []string) {
	timeout := "60s"
	if len(args) == 1 {
		timeout = args[0]
	}
	spy := ts.MkAbs("spy")
	ts.Check(os.MkdirAll(spy, 0o777))
	ts.Check(os.Chmod(spy, 0o777))
	wrapper := filepath.Join(spy, "trivy")
	script := fmt.Sprintf(spyTrivy, filepath.Join(spy, "log"), ts.Getenv("TRIVY"))
	ts.Check(os.WriteFile(wrapper, []byte(script), 0o755))

	policy := ts.ReadFile("policy.toml")
	policy = strings.Replace(policy, fmt.Sprintf("path = %q", ts.Getenv("TRIVY")),
		fmt.Sprintf("path = %q", wrapper), 1)
	policy += fmt.Sprintf("\n[timeouts]\nscan = %q\nwait = %q\n", timeout, timeout)
	ts.Check(os.WriteFile(ts.MkAbs("policy.toml"), []byte(policy), 0o644))
}

// slowWrite is the slowwrite program the scripts start in the background, to change an image
// while the gate checks it:
//
//	slowwrite copy SRC DST DURATION   write SRC to DST in 64 pieces over DURATION
//	slowwrite append FILE DURATION    append a byte to FILE every 5ms for DURATION
func slowWrite(args []string) int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "slowwrite:", err)
		return 1
	}
	if len(args) < 3 {
		return fail(fmt.Errorf("usage: slowwrite copy SRC DST DURATION | append FILE DURATION"))
	}
	d, err := time.ParseDuration(args[len(args)-1])
	if err != nil {
		return fail(err)
	}
	switch args[0] {
	case "copy":
		data, err := os.ReadFile(args[1])
		if err != nil {
			return fail(err)
		}
		f, err := os.OpenFile(args[2], os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
		if err != nil {
			return fail(err)
		}
		defer f.Close()
		const pieces = 64
		for i := range pieces {
			piece := data[i*len(data)/pieces : (i+1)*len(data)/pieces]
			if _, err := f.Write(piece); err != nil {
				return fail(err)
			}
			time.Sleep(d / pieces)
		}
	case "append":
		f, err := os.OpenFile(args[1], os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return fail(err)
		}
		defer f.Close()
		for end := time.Now().Add(d); time.Now().Before(end); {
			if _, err := f.Write([]byte{0}); err != nil {
				return fail(err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	default:
		return fail(fmt.Errorf("unknown mode %q", args[0]))
	}
	return 0
}

// cmdNoLeftovers fails when DIR holds a run directory that no live gate holds the lock of:
// what a gate that died, or forgot to clean up, leaves behind. noleftovers DIR
func cmdNoLeftovers(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: noleftovers DIR")
	}
	entries, err := os.ReadDir(ts.MkAbs(args[0]))
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	ts.Check(err)
	for _, e := range entries {
		name := strings.TrimSuffix(e.Name(), ".lock")
		lock := flock.New(ts.MkAbs(filepath.Join(args[0], name+".lock")))
		if ok, err := lock.TryRLock(); err == nil && !ok {
			continue // a live run
		}
		lock.Unlock()
		ts.Fatalf("%s left behind in %s", e.Name(), args[0])
	}
}
