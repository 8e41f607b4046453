package cache

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// crashDirEnv, when set, makes TestCrashWriter the child writer of
// TestKilledWriterLeavesNoPartialEntry, writing into the cache it names.
const crashDirEnv = "SCAN_GATE_CACHE_CRASH_DIR"

// crashFindings makes the child's entry large enough (about a megabyte) that a kill lands
// mid-write.
const crashFindings = 5000

// TestCrashWriter is not a test of its own: run by TestKilledWriterLeavesNoPartialEntry as
// a child process, it writes one large entry over and over until it is killed.
func TestCrashWriter(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("only runs as the child of TestKilledWriterLeavesNoPartialEntry")
	}
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	k := testKey(1)
	e := testEntry(k, crashFindings)
	for i := 0; ; i++ {
		e.Image = fmt.Sprintf("/images/%d.sif", i)
		if err := s.Put(k, e); err != nil {
			t.Fatal(err)
		}
	}
}

func TestKilledWriterLeavesNoPartialEntry(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	s := newStore(t, Options{})
	k := testKey(1)

	// Kill writers until two of them died mid-write, leaving a temporary file behind.
	const maxRounds, wantCaught = 10, 2
	caught, round := 0, 0
	for round = 0; round < maxRounds && caught < wantCaught; round++ {
		before := len(tempFiles(t, s))
		killMidWrite(t, s)
		if len(tempFiles(t, s)) > before {
			caught++
		}

		e, err := s.Get(k)
		if err != nil {
			t.Fatalf("round %d: Get after the writer was killed: %v", round, err)
		}
		if len(e.Scan.Findings) != crashFindings {
			t.Fatalf("round %d: entry has %d findings, want %d",
				round, len(e.Scan.Findings), crashFindings)
		}
	}
	t.Logf("%d of %d writers killed died mid-write", caught, round)
	if caught == 0 {
		t.Errorf("no writer was killed mid-write in %d rounds", maxRounds)
	}

	// The killed writers' temporary files are swept once stale; the entry stays.
	t.Logf("temporary files left by killed writers: %v", tempFiles(t, s))
	if _, err := s.GC(24*time.Hour, time.Now().Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if temps := tempFiles(t, s); len(temps) != 0 {
		t.Errorf("temporary files left after GC: %v", temps)
	}
	if _, err := s.Get(k); err != nil {
		t.Errorf("Get after GC: %v", err)
	}
}

// killMidWrite starts a child writer on s and kills it with SIGKILL as soon as it has stored
// the entry at least once and has started writing it again. It polls without sleeping, so
// that the kill lands while the temporary file is being written.
func killMidWrite(t *testing.T, s *Store) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashWriter$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+s.Dir())
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	dir := filepath.Join(s.Dir(), entriesDir)
	entry := entryPath(s, testKey(1))
	entryMtime := func() time.Time {
		fi, err := os.Stat(entry)
		if err != nil {
			return time.Time{}
		}
		return fi.ModTime()
	}
	leftBefore := len(tempFiles(t, s))
	start := entryMtime()
	stored := false
	deadline := time.Now().Add(30 * time.Second)
	for {
		if time.Now().After(deadline) {
			t.Log("did not see the writer mid-write; killing it anyway")
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("writer exited on its own: %v", err)
		default:
		}
		if !stored {
			mtime := entryMtime()
			stored = !mtime.IsZero() && !mtime.Equal(start)
			continue
		}
		dirents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if countTemps(dirents) > leftBefore {
			break
		}
	}

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-exited
}

func countTemps(dirents []os.DirEntry) int {
	n := 0
	for _, d := range dirents {
		if strings.HasPrefix(d.Name(), tempPrefix) {
			n++
		}
	}
	return n
}
