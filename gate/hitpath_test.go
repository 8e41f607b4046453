package gate

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sylabs/sif/v2/pkg/sif"

	"github.com/scan-gate/scan-gate/internal/testimage"
	"github.com/scan-gate/scan-gate/policy"
)

// readBytes is what this process has read through read(2) and friends so far.
func readBytes(t *testing.T) int64 {
	t.Helper()
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Skipf("no /proc/self/io: %v", err)
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "rchar: "); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(rest), 10, 64)
			return n
		}
	}
	t.Skip("no rchar in /proc/self/io")
	return 0
}

// TestHitReadsNoImageBytes: a check of an unchanged image found in the stat index and the
// cache reads the cache's files, a few KiB, and nothing of the image: reading only its SIF
// header and descriptor table would be 28 KiB.
func TestHitReadsNoImageBytes(t *testing.T) {
	f := newFixture(t)
	if res := f.check(t, f.vulnerable); res.Cache != CacheMiss || res.Action != policy.Block {
		t.Fatalf("first check: cache %s, action %s, error %q", res.Cache, res.Action,
			res.Error)
	}

	before := readBytes(t)
	res := f.check(t, f.vulnerable)
	read := readBytes(t) - before
	if res.Cache != CacheHit || res.Action != policy.Block || res.HashedBytes != 0 {
		t.Fatalf("second check: cache %s, action %s, hashed %d", res.Cache, res.Action,
			res.HashedBytes)
	}
	fi, err := os.Stat(f.vulnerable)
	if err != nil {
		t.Fatal(err)
	}
	if read >= 16<<10 {
		t.Errorf("a hit read %d bytes; the cache files are under 4 KiB and the image %d",
			read, fi.Size())
	}
	if res.Kind != "" {
		t.Errorf("a hit reports kind %q, which it could only know by reading the image",
			res.Kind)
	}
}

// TestUnscannableKnownToStatIndex: an encrypted image is refused as unscannable on every
// check, also once the stat index knows its key and the file is no longer read to key it.
func TestUnscannableKnownToStatIndex(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	if err := testimage.WriteRootfs(root, testimage.Patched); err != nil {
		t.Fatal(err)
	}
	squash := filepath.Join(dir, "fs.squashfs")
	if err := testimage.Squashfs(context.Background(), root, squash); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(squash)
	if err != nil {
		t.Fatal(err)
	}
	primary := testimage.PrimaryPartition(data)
	primary.FS = sif.FsEncryptedSquashfs
	encrypted := filepath.Join(dir, "encrypted.sif")
	if err := testimage.SIF(encrypted, primary); err != nil {
		t.Fatal(err)
	}

	for i, wantHashed := range []bool{true, false} {
		res := f.check(t, encrypted)
		if res.Action != policy.Block || !res.Verdict.NoDecision ||
			!strings.Contains(res.Error, "is unscannable: primary partition is encrypted") {
			t.Fatalf("check %d: action %s, error %q", i, res.Action, res.Error)
		}
		if (res.HashedBytes > 0) != wantHashed {
			t.Errorf("check %d hashed %d bytes", i, res.HashedBytes)
		}
		if res.Kind != "sif" {
			t.Errorf("check %d: kind %q, want sif", i, res.Kind)
		}
	}
	if n := f.backend.runs.Load(); n != 0 {
		t.Errorf("the scanner ran %d times", n)
	}
}
