package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/scan-gate/scan-gate/gate/extract"
	"github.com/scan-gate/scan-gate/gate/image"
	"github.com/scan-gate/scan-gate/internal/proc"
	"github.com/scan-gate/scan-gate/internal/testimage"
)

func seconds(d time.Duration) float64 { return d.Seconds() }

// measureHit times a cache-hit check as a whole process against the exec of a no-op Go
// binary, interleaved, many times a round; the ratio of the round medians is one sample.
func measureHit(ctx context.Context, b *bench) ([]row, error) {
	policy, err := b.policy("hit", b.trivy, "")
	if err != nil {
		return nil, err
	}
	gates := []struct{ name, bin string }{{"", b.gate}}
	if b.staticGate != "" {
		gates = append(gates, struct{ name, bin string }{" (static build)", b.staticGate})
	}
	for _, g := range gates {
		b.check(g.bin, policy, b.small) // fills the cache
		_, out, err := b.check(g.bin, policy, "--json", b.small)
		if err != nil || !bytes.Contains(out, []byte(`"cache": "hit"`)) {
			return nil, fmt.Errorf("no cache hit: %v\n%s", err, out)
		}
	}

	perRound := 40
	rounds := 2 * b.rounds
	if b.quick {
		perRound, rounds = 10, 3
	}
	// Each gate is timed doing a hit, and doing nothing (`help`): the startup alone.
	type sample struct{ ratios, times []float64 }
	hits := make([]sample, len(gates))
	starts := make([]sample, len(gates))
	var noops []float64
	for range rounds {
		var noop []float64
		hit := make([][]float64, len(gates))
		start := make([][]float64, len(gates))
		for range perRound {
			d, err := timed(exec.Command(b.noop))
			if err != nil {
				return nil, err
			}
			noop = append(noop, seconds(d))
			for i, g := range gates {
				d, err := timed(exec.Command(g.bin, "check", "--policy", policy, b.small))
				if err != nil {
					return nil, err
				}
				hit[i] = append(hit[i], seconds(d))
				if d, err = timed(exec.Command(g.bin, "help")); err != nil {
					return nil, err
				}
				start[i] = append(start[i], seconds(d))
			}
		}
		n := summarize(noop).median
		noops = append(noops, n)
		for i := range gates {
			h, s := summarize(hit[i]).median, summarize(start[i]).median
			hits[i].times, hits[i].ratios = append(hits[i].times, h), append(hits[i].ratios, h/n)
			starts[i].times = append(starts[i].times, s)
			starts[i].ratios = append(starts[i].ratios, s/n)
		}
	}
	ref := fmt.Sprintf("exec of a no-op Go binary (%.1f ms)", summarize(noops).median*1000)
	var rows []row
	for i, g := range gates {
		r := summarize(hits[i].ratios)
		rows = append(rows, row{
			what:      "cache-hit `scan-gate check`, whole process" + g.name,
			reference: ref,
			result: r.format("%.2f×") + fmt.Sprintf(" (%.1f ms)",
				summarize(hits[i].times).median*1000),
			goal: "≤ 1.5×", met: met(r.median <= 1.5),
		}, row{
			what:      "of which starting the binary: `scan-gate help`" + g.name,
			reference: ref,
			result: summarize(starts[i].ratios).format("%.2f×") + fmt.Sprintf(" (%.1f ms)",
				summarize(starts[i].times).median*1000),
			goal: "(explains the above)", met: "-",
		})
	}
	return rows, nil
}

// measureHitBytes checks, with strace, that a hit on an unchanged 1 GiB SIF reads none of
// its bytes, and that the audit line is one write with no fsync.
func measureHitBytes(ctx context.Context, b *bench) ([]row, error) {
	if _, err := exec.LookPath("strace"); err != nil {
		return []row{{"hit on an unchanged 1 GiB SIF: image bytes read", "-",
			"not measured: strace is not installed", "0", "-"}}, nil
	}
	size := int64(1 << 30)
	if b.quick {
		size = 64 << 20
	}
	img, err := b.bigImage(size)
	if err != nil {
		return nil, err
	}
	policy, err := b.policy("hitbytes", b.trivy, "")
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if _, out, err := b.check(b.gate, policy, "--json", img); err != nil ||
		!bytes.Contains(out, []byte(`"cache": "miss"`)) {
		return nil, fmt.Errorf("first check: %v\n%s", err, out)
	}
	fmt.Fprintf(os.Stderr, "   miss of the %d MiB image: %s\n", size>>20,
		time.Since(start).Round(time.Millisecond))

	trace := filepath.Join(b.dir, "run-hitbytes", "strace.txt")
	var imageBytes, allBytes []float64
	var writes, syncs, auditBytes int
	for range b.rounds {
		cmd := exec.Command("strace", "-f", "-y", "-qq", "-o", trace, "-e",
			"trace=read,pread64,readv,preadv,preadv2,mmap,sendfile,splice,copy_file_range,"+
				"write,pwrite64,fsync,fdatasync,sync_file_range,syncfs",
			b.gate, "check", "--policy", policy, "--json", img)
		out, _ := cmd.Output()
		if !bytes.Contains(out, []byte(`"cache": "hit"`)) {
			return nil, fmt.Errorf("not a hit:\n%s", out)
		}
		t, err := parseTrace(trace, img, filepath.Join(filepath.Dir(policy), "audit.jsonl"))
		if err != nil {
			return nil, err
		}
		imageBytes = append(imageBytes, float64(t.imageBytes))
		allBytes = append(allBytes, float64(t.readBytes))
		writes, syncs, auditBytes = t.auditWrites, t.syncs, t.auditBytes
	}
	ib, all := summarize(imageBytes), summarize(allBytes)
	return []row{{
		what: fmt.Sprintf("hit on an unchanged %d MiB SIF: image bytes read (strace)",
			size>>20),
		reference: fmt.Sprintf("the image: %d MiB", size>>20),
		result: fmt.Sprintf("%.0f bytes, every run (the process read %.1f KiB in all: "+
			"policy, cache entry, stat record, DB metadata)", ib.high, all.median/1024),
		goal: "0", met: met(ib.high == 0),
	}, {
		what:      "audit line of a decision (strace)",
		reference: "-",
		result: fmt.Sprintf("%d write(2) of %d bytes to the log, %d fsync", writes,
			auditBytes, syncs),
		goal: "one append, no fsync", met: met(writes == 1 && syncs == 0),
	}}, nil
}

// traceSummary is what parseTrace counts in an strace log.
type traceSummary struct {
	imageBytes, readBytes   int64
	auditWrites, auditBytes int
	syncs                   int
}

// traceCall matches `pread64(3</path/x.sif>, ..., 4096, 0) = 4096` and the like.
var traceCall = regexp.MustCompile(`^(?:\d+ +)?(\w+)\((\d+)<([^>]*)>.*\) += (-?\d+)`)

func parseTrace(path, image, audit string) (traceSummary, error) {
	var t traceSummary
	resolvedImage, _ := filepath.EvalSymlinks(image)
	resolvedAudit, _ := filepath.EvalSymlinks(audit)
	f, err := os.Open(path)
	if err != nil {
		return t, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, sync := range []string{"fsync(", "fdatasync(", "sync_file_range(", "syncfs("} {
			if strings.Contains(line, sync) {
				t.syncs++
			}
		}
		m := traceCall.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		call, file := m[1], m[3]
		n, _ := strconv.ParseInt(m[4], 10, 64)
		if n < 0 {
			continue
		}
		switch {
		case strings.HasPrefix(call, "write") || strings.HasPrefix(call, "pwrite"):
			if file == resolvedAudit {
				t.auditWrites++
				t.auditBytes += int(n)
			}
		case call == "mmap":
			if file == resolvedImage {
				t.imageBytes++ // a mapping of the image counts as reading it
			}
		default:
			t.readBytes += n
			if file == resolvedImage {
				t.imageBytes += n
			}
		}
	}
	return t, sc.Err()
}

// measureHash compares the content hashing of a 1 GiB SIF, by a check that finds no stat
// record and no cached result (and, by policy, blocks instead of scanning), with
// `cat FILE >/dev/null`: in the page cache, and evicted from it before each run.
func measureHash(ctx context.Context, b *bench) ([]row, error) {
	size := int64(1 << 30)
	if b.quick {
		size = 64 << 20
	}
	img, err := b.bigImage(size)
	if err != nil {
		return nil, err
	}
	policy, err := b.policy("hash", b.trivy, "\n[on]\nmiss = \"block\"\n")
	if err != nil {
		return nil, err
	}
	forget(policy)
	_, out, err := b.check(b.gate, policy, "--json", img)
	if err != nil || !bytes.Contains(out, []byte(fmt.Sprintf(`"hashed_bytes": %d`, size))) {
		// The partition, not the whole file, is hashed: accept any large count.
		if !regexp.MustCompile(`"hashed_bytes": [1-9][0-9]{6,}`).Match(out) {
			return nil, fmt.Errorf("the check did not hash the image: %v\n%s", err, out)
		}
	}
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	defer devNull.Close()

	var rows []row
	for _, cold := range []bool{false, true} {
		var ratios, catRates, gateRates []float64
		for range b.rounds {
			if cold {
				evict(img)
			}
			cat := exec.Command("cat", img)
			cat.Stdout = devNull
			tc, err := timed(cat)
			if err != nil {
				return nil, err
			}
			if err := forget(policy); err != nil {
				return nil, err
			}
			if cold {
				evict(img)
			}
			tg, err := timed(exec.Command(b.gate, "check", "--policy", policy, img))
			if err != nil {
				return nil, err
			}
			ratios = append(ratios, seconds(tc)/seconds(tg))
			catRates = append(catRates, float64(size)/seconds(tc)/(1<<30))
			gateRates = append(gateRates, float64(size)/seconds(tg)/(1<<30))
		}
		r := summarize(ratios)
		where := "in the page cache"
		if cold {
			where = "evicted from the page cache before each run"
		}
		rows = append(rows, row{
			what: fmt.Sprintf("cold content hashing of a %d MiB SIF (no stat record), "+
				"whole `check`, file %s", size>>20, where),
			reference: fmt.Sprintf("`cat FILE >/dev/null` (%.2f GiB/s)",
				summarize(catRates).median),
			result: r.format("%.2f×") + fmt.Sprintf(" the throughput (%.2f GiB/s)",
				summarize(gateRates).median),
			goal: "≥ 0.9×", met: met(r.median >= 0.9),
		})
	}
	return rows, nil
}

// evict drops a file's pages from the page cache, and nothing else.
func evict(path string) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
}

// measureExtract times the gate's extraction (extract.Extract: listing, unsquashfs as the
// scanning user, clearing setuid bits) of a real Debian tree against plain unsquashfs of the
// same partition as the same user, and against the classic approach: loop-mount the image
// and stream the tree through tar -c | tar -x.
func measureExtract(ctx context.Context, b *bench) ([]row, error) {
	img, err := b.realImage()
	if err != nil {
		return nil, err
	}
	offset, err := partitionOffset(img)
	if err != nil {
		return nil, err
	}
	fi, _ := os.Stat(img)
	// The trees go to memory, all three alike: on disk, writeback and the neighbours' I/O
	// swamp the difference measured, the work done around unsquashfs.
	base := filepath.Join(b.shm(), "scan-gate-bench-extract")
	os.RemoveAll(base)
	if err := os.MkdirAll(base, 0o755); err != nil {
		return nil, err
	}
	defer os.RemoveAll(base)
	nobodyDir := filepath.Join(base, "plain")
	os.Mkdir(nobodyDir, 0o700)
	os.Chown(nobodyDir, nobody, nobody)
	mnt := filepath.Join(base, "mnt")
	os.Mkdir(mnt, 0o755)

	gateRun := func() (time.Duration, error) {
		im, err := image.Open(img)
		if err != nil {
			return 0, err
		}
		defer im.Close()
		start := time.Now()
		tree, err := extract.Extract(ctx, im, extract.Options{
			ScratchDir: filepath.Join(base, "gate"),
			Credential: &proc.Credential{UID: nobody, GID: nobody}})
		d := time.Since(start)
		if err != nil {
			return 0, err
		}
		return d, tree.Remove()
	}
	plainRun := func() (time.Duration, error) {
		dest := filepath.Join(nobodyDir, "root")
		d, err := timed(asNobody(exec.Command("unsquashfs", "-no-xattrs", "-no-progress",
			"-quiet", "-d", dest, "-offset", strconv.FormatInt(offset, 10), img)))
		os.RemoveAll(dest)
		return d, err
	}
	mountable := true
	tarRun := func() (time.Duration, error) {
		dest := filepath.Join(base, "tar")
		os.MkdirAll(dest, 0o755)
		defer os.RemoveAll(dest)
		start := time.Now()
		out, err := exec.Command("mount", "-t", "squashfs", "-o",
			"loop,ro,offset="+strconv.FormatInt(offset, 10), img, mnt).CombinedOutput()
		if err != nil {
			mountable = false
			return 0, fmt.Errorf("%v: %s", err, out)
		}
		err = exec.Command("sh", "-c", `tar -C "$1" -cf - . | tar -C "$2" -xf -`, "sh",
			mnt, dest).Run()
		exec.Command("umount", mnt).Run()
		return time.Since(start), err
	}

	var gateT, plainT, tarT, vsPlain, vsTar []float64
	mountErr := ""
	for round := range b.rounds {
		exec.Command("sync").Run()
		g, err := gateRun()
		if err != nil {
			return nil, fmt.Errorf("gate extraction: %w", err)
		}
		exec.Command("sync").Run()
		p, err := plainRun()
		if err != nil {
			return nil, fmt.Errorf("plain unsquashfs: %w", err)
		}
		if round%2 == 1 { // alternate which goes first
			exec.Command("sync").Run()
			g2, err := gateRun()
			if err != nil {
				return nil, err
			}
			g = g2
		}
		gateT = append(gateT, seconds(g))
		plainT = append(plainT, seconds(p))
		vsPlain = append(vsPlain, seconds(g)/seconds(p))
		if mountable {
			exec.Command("sync").Run()
			t, err := tarRun()
			if err != nil && !mountable {
				mountErr = err.Error()
			} else if err != nil {
				return nil, fmt.Errorf("mount and tar: %w", err)
			} else {
				tarT = append(tarT, seconds(t))
				vsTar = append(vsTar, seconds(g)/seconds(t))
			}
		}
	}
	r := summarize(vsPlain)
	what := fmt.Sprintf("extraction of a real Debian tree (%d MiB packed, %s) into %s",
		fi.Size()>>20, treeDescription(img), b.shm())
	rows := []row{{
		what: what,
		reference: fmt.Sprintf("plain `unsquashfs` of the same partition, same user "+
			"(%.2f s)", summarize(plainT).median),
		result: r.format("%.3f×") + fmt.Sprintf(" (%.2f s)", summarize(gateT).median),
		goal:   "≤ 1.05×", met: met(r.median <= 1.05),
	}}
	if len(vsTar) > 0 {
		t := summarize(vsTar)
		rows = append(rows, row{
			what: what, reference: fmt.Sprintf("loop mount + `tar -c | tar -x`, as root "+
				"(%.2f s)", summarize(tarT).median),
			result: t.format("%.2f×"), goal: "(comparison)", met: "-",
		})
	} else {
		rows = append(rows, row{what, "loop mount + `tar -c | tar -x`",
			"not measured: mounting is not permitted here (" + mountErr + ")",
			"(comparison)", "-"})
	}
	return rows, nil
}

// treeDescription counts the files of an image's tree from its listing.
func treeDescription(img string) string {
	offset, err := partitionOffset(img)
	if err != nil {
		return "?"
	}
	out, err := exec.Command("unsquashfs", "-lln", "-offset", strconv.FormatInt(offset, 10),
		img).Output()
	if err != nil {
		return "?"
	}
	var files, bytes int64
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) > 2 && strings.HasPrefix(f[0], "-") {
			files++
			n, _ := strconv.ParseInt(f[2], 10, 64)
			bytes += n
		}
	}
	return fmt.Sprintf("%d files, %d MiB unpacked", files, bytes>>20)
}

// countingTrivy counts the scans it is asked for, then runs the real trivy.
const countingTrivy = "#!/bin/sh\n[ \"$1\" = rootfs ] && echo run >> %s\nexec %s \"$@\"\n"

// measureConcurrent starts 64 checks of one uncached image at once: the scanner must run
// once, and the last check end little later than one check alone.
func measureConcurrent(ctx context.Context, b *bench) ([]row, error) {
	img, err := b.realImage()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(b.dir, "run-concurrent")
	os.MkdirAll(filepath.Join(dir, "counter"), 0o777)
	os.Chmod(filepath.Join(dir, "counter"), 0o777)
	counter := filepath.Join(dir, "counter", "runs")
	wrapper := filepath.Join(dir, "trivy-counting")
	script := fmt.Sprintf(countingTrivy, counter, b.trivy)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		return nil, err
	}
	policy, err := b.policy("concurrent", wrapper, "")
	if err != nil {
		return nil, err
	}
	runs := func() int {
		data, _ := os.ReadFile(counter)
		return bytes.Count(data, []byte("run\n"))
	}
	// One check first: the scanner's version is remembered, as on any node in service.
	forget(policy)
	if code, out, err := b.check(b.gate, policy, "--json", img); err != nil || code > 1 ||
		bytes.Contains(out, []byte(`"error"`)) {
		return nil, fmt.Errorf("a check of %s: exit %d %v\n%s", img, code, err, out)
	}

	const checks = 64
	var ratios, singles, walls []float64
	var scannerRuns []int
	for range b.rounds {
		forget(policy)
		os.Remove(counter)
		single, err := timed(exec.Command(b.gate, "check", "--policy", policy, img))
		if err != nil {
			return nil, err
		}
		forget(policy)
		os.Remove(counter)
		cmds := make([]*exec.Cmd, checks)
		outs := make([]bytes.Buffer, checks)
		for i := range cmds {
			cmds[i] = exec.Command(b.gate, "check", "--policy", policy, img)
			cmds[i].Stderr = &outs[i]
		}
		start := time.Now()
		for _, cmd := range cmds {
			if err := cmd.Start(); err != nil {
				return nil, err
			}
		}
		var wg sync.WaitGroup
		for _, cmd := range cmds {
			wg.Go(func() { cmd.Wait() })
		}
		wg.Wait()
		wall := time.Since(start)
		for i := range cmds {
			if cmds[i].ProcessState.ExitCode() != cmds[0].ProcessState.ExitCode() ||
				outs[i].String() != outs[0].String() {
				return nil, fmt.Errorf("check %d differs: %q vs %q", i, outs[i].String(),
					outs[0].String())
			}
		}
		scannerRuns = append(scannerRuns, runs())
		singles = append(singles, seconds(single))
		walls = append(walls, seconds(wall))
		ratios = append(ratios, seconds(wall)/seconds(single))
	}
	once := true
	for _, n := range scannerRuns {
		once = once && n == 1
	}
	r := summarize(ratios)
	return []row{{
		what:      "64 simultaneous checks of one uncached image: scanner runs",
		reference: "-",
		result:    fmt.Sprintf("%v (one per round)", scannerRuns),
		goal:      "1", met: met(once),
	}, {
		what:      "64 simultaneous checks of one uncached image: wall time",
		reference: fmt.Sprintf("one check alone (%.2f s)", summarize(singles).median),
		result:    r.format("%.2f×") + fmt.Sprintf(" (%.2f s)", summarize(walls).median),
		goal:      "≤ 1.2×", met: met(r.median <= 1.2),
	}}, nil
}

// measureRSS reads the peak resident set of the gate's own process: on a hit, and while it
// hashes a 1 GiB and a 4 GiB image.
func measureRSS(ctx context.Context, b *bench) ([]row, error) {
	sizes := []int64{1 << 30, 4 << 30}
	if b.quick {
		sizes = []int64{64 << 20, 256 << 20}
	}
	hitPolicy, err := b.policy("rss-hit", b.trivy, "")
	if err != nil {
		return nil, err
	}
	hashPolicy, err := b.policy("rss-hash", b.trivy, "\n[on]\nmiss = \"block\"\n")
	if err != nil {
		return nil, err
	}
	peak := func(args ...string) (float64, error) {
		var highest int64
		for range max(3, b.rounds) {
			kib, err := peakRSS(exec.Command(args[0], args[1:]...))
			if err != nil {
				return 0, err
			}
			highest = max(highest, kib)
		}
		return float64(highest) / 1024, nil
	}
	noop, err := peak(b.noop)
	if err != nil {
		return nil, err
	}
	small, err := b.bigImage(sizes[0])
	if err != nil {
		return nil, err
	}
	b.check(b.gate, hitPolicy, small)
	hit, err := peak(b.gate, "check", "--policy", hitPolicy, small)
	if err != nil {
		return nil, err
	}
	var hashing []float64
	for _, size := range sizes {
		img, err := b.bigImage(size)
		if err != nil {
			return nil, err
		}
		var highest float64
		for range max(3, b.rounds) {
			forget(hashPolicy)
			kib, err := peakRSS(exec.Command(b.gate, "check", "--policy", hashPolicy, img))
			if err != nil {
				return nil, err
			}
			highest = max(highest, float64(kib)/1024)
		}
		hashing = append(hashing, highest)
	}
	ref := fmt.Sprintf("a no-op Go binary (%.1f MiB)", noop)
	flat := hashing[1]-hashing[0] < 1
	return []row{{
		what:      fmt.Sprintf("peak RSS of the gate, cache hit (%d MiB image)", sizes[0]>>20),
		reference: ref,
		result:    fmt.Sprintf("%.1f MiB (highest of %d runs)", hit, max(3, b.rounds)),
		goal:      "≤ 20 MiB", met: met(hit <= 20),
	}, {
		what: fmt.Sprintf("peak RSS of the gate while hashing a %d MiB and a %d MiB image",
			sizes[0]>>20, sizes[1]>>20),
		reference: ref,
		result: fmt.Sprintf("%.1f MiB and %.1f MiB (highest of %d runs each)", hashing[0],
			hashing[1], max(3, b.rounds)),
		goal: "≤ 20 MiB, flat in image size",
		met:  met(hashing[1] <= 20 && flat),
	}}, nil
}

// measurePrewarm prewarms 40 small, distinct images with one worker and with two.
func measurePrewarm(ctx context.Context, b *bench) ([]row, error) {
	what := "prewarm of 40 small images, 2 workers"
	if out, _ := exec.Command(b.gate, "help", "prewarm").CombinedOutput(); !bytes.Contains(out,
		[]byte("workers")) {
		return []row{{what, "1 worker", "pending: this scan-gate has no `prewarm --workers`",
			"≥ 1.5×", "-"}}, nil
	}
	dir := filepath.Join(b.dir, "images", "prewarm")
	count := 40
	if b.quick {
		count = 8
	}
	if err := distinctImages(ctx, dir, count); err != nil {
		return nil, err
	}
	policy, err := b.policy("prewarm", b.trivy, "")
	if err != nil {
		return nil, err
	}
	prewarm := func(workers int) (time.Duration, error) {
		if err := forget(policy); err != nil {
			return 0, err
		}
		cmd := exec.Command(b.gate, "prewarm", "--policy", policy, "--workers",
			strconv.Itoa(workers), dir)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		start := time.Now()
		if err := cmd.Run(); err != nil {
			return 0, fmt.Errorf("prewarm --workers %d: %v\n%s", workers, err, out.String())
		}
		return time.Since(start), nil
	}
	prewarm(2) // the scanner's version remembered, as on any node in service
	var ones, twos, ratios []float64
	for round := range b.rounds {
		order := []int{1, 2}
		if round%2 == 1 {
			order = []int{2, 1}
		}
		var t [3]time.Duration
		for _, w := range order {
			d, err := prewarm(w)
			if err != nil {
				return nil, err
			}
			t[w] = d
		}
		ones = append(ones, seconds(t[1]))
		twos = append(twos, seconds(t[2]))
		ratios = append(ratios, seconds(t[1])/seconds(t[2]))
	}
	r := summarize(ratios)
	return []row{{
		what:      fmt.Sprintf("prewarm of %d small images, 2 workers", count),
		reference: fmt.Sprintf("1 worker (%.1f s)", summarize(ones).median),
		result:    r.format("%.2f×") + fmt.Sprintf(" faster (%.1f s)", summarize(twos).median),
		goal:      "≥ 1.5× on 2 cores", met: met(r.median >= 1.5),
	}}, nil
}

// distinctImages writes count small vulnerable images whose contents differ, so that each
// is a scan of its own.
func distinctImages(ctx context.Context, dir string, count int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for i := range count {
		out := filepath.Join(dir, fmt.Sprintf("image-%02d.sif", i))
		if _, err := os.Stat(out); err == nil {
			continue
		}
		work, err := os.MkdirTemp(dir, ".build-")
		if err != nil {
			return err
		}
		root := filepath.Join(work, "root")
		err = testimage.WriteRootfs(root, testimage.Vulnerable)
		if err == nil {
			err = os.WriteFile(filepath.Join(root, "etc/image-number"),
				[]byte(strconv.Itoa(i)), 0o644)
		}
		squash := filepath.Join(work, "fs.squashfs")
		if err == nil {
			err = testimage.Squashfs(ctx, root, squash)
		}
		var data []byte
		if err == nil {
			data, err = os.ReadFile(squash)
		}
		if err == nil {
			err = testimage.SIF(out, testimage.PrimaryPartition(data))
		}
		os.RemoveAll(work)
		if err != nil {
			return err
		}
		os.Chmod(out, 0o644)
	}
	return nil
}
