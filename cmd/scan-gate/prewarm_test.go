package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/scan-gate/scan-gate/internal/testimage"
)

// cmdMkimages writes N distinct SIF images into DIR, half of them in DIR/more, for the
// prewarm scripts: mkimages DIR N. Image i (from 1) is corrupt when i is a multiple of 5
// (cut in half, or for 10, 30, ... not an image at all), blocked (the vulnerable packages)
// when i is a multiple of 3, and clean (the patched packages) otherwise. Each image holds
// a file naming its number, so that no two share a content key. A file that is not an
// image and an empty directory are added for the walk to pass over.
func cmdMkimages(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: mkimages DIR N")
	}
	dir := ts.MkAbs(args[0])
	n, err := strconv.Atoi(args[1])
	ts.Check(err)
	ts.Check(os.MkdirAll(filepath.Join(dir, "more", "empty"), 0o755))
	ts.Check(os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not an image\n"), 0o644))
	for i := 1; i <= n; i++ {
		out := imagePath(dir, i, n)
		switch {
		case i%10 == 0:
			ts.Check(os.WriteFile(out, []byte("this is not a SIF\n"), 0o644))
			continue
		case i%3 == 0 && i%5 != 0:
			ts.Check(buildVariant(ts, out, testimage.Vulnerable, i))
		default:
			ts.Check(buildVariant(ts, out, testimage.Patched, i))
		}
		if i%5 == 0 {
			data, err := os.ReadFile(out)
			ts.Check(err)
			ts.Check(os.WriteFile(out, data[:len(data)/2], 0o644))
		}
		os.Chmod(out, 0o644)
	}
}

// imagePath is where mkimages puts image i of n: the first half in DIR, the rest below.
func imagePath(dir string, i, n int) string {
	name := fmt.Sprintf("img%02d.sif", i)
	if i > n/2 {
		return filepath.Join(dir, "more", name)
	}
	return filepath.Join(dir, name)
}

// buildVariant builds a SIF holding pkgs and a file that makes its content its own.
func buildVariant(ts *testscript.TestScript, out string, pkgs []testimage.Package,
	variant int) error {
	work, err := os.MkdirTemp(filepath.Dir(out), ".variant-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	root := filepath.Join(work, "rootfs")
	if err := testimage.WriteRootfs(root, pkgs); err != nil {
		return err
	}
	marker := filepath.Join(root, "etc", "scan-gate-test-variant")
	if err := os.WriteFile(marker, []byte(strconv.Itoa(variant)+"\n"), 0o644); err != nil {
		return err
	}
	squash := filepath.Join(work, "rootfs.squashfs")
	if err := testimage.Squashfs(context.Background(), root, squash); err != nil {
		return err
	}
	data, err := os.ReadFile(squash)
	if err != nil {
		return err
	}
	return testimage.SIF(out, testimage.PrimaryPartition(data))
}

// cmdWaitEntries waits until the cache in DIR holds at least N entries:
// waitentries DIR N TIMEOUT.
func cmdWaitEntries(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: waitentries DIR N TIMEOUT")
	}
	want, err := strconv.Atoi(args[1])
	ts.Check(err)
	timeout, err := time.ParseDuration(args[2])
	ts.Check(err)
	deadline := time.Now().Add(timeout)
	for {
		matches, _ := filepath.Glob(filepath.Join(ts.MkAbs(args[0]), "entries", "*.entry"))
		if len(matches) >= want {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("%d entries in %s after %s, want %d", len(matches), args[0], timeout,
				want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cmdScannedOnce checks the prewarm lines of an audit log: every image has at most one
// successful scan, and N images have one: scannedonce AUDITLOG N.
func cmdScannedOnce(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: scannedonce AUDITLOG N")
	}
	want, err := strconv.Atoi(args[1])
	ts.Check(err)
	f, err := os.Open(ts.MkAbs(args[0]))
	ts.Check(err)
	defer f.Close()
	scans := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var line struct {
			Msg, Image, Error string
			Durations         struct{ Scan float64 } `json:"durations_ms"`
		}
		ts.Check(json.Unmarshal(sc.Bytes(), &line))
		if line.Msg == "prewarm" && line.Error == "" && line.Durations.Scan > 0 {
			scans[line.Image]++
		}
	}
	var twice []string
	for image, n := range scans {
		if n > 1 {
			twice = append(twice, fmt.Sprintf("%s (%d times)", image, n))
		}
	}
	if len(twice) > 0 {
		ts.Fatalf("scanned more than once: %s", strings.Join(twice, ", "))
	}
	if len(scans) != want {
		ts.Fatalf("%d images scanned, want %d", len(scans), want)
	}
}
