package qscanner

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scan-gate/scan-gate/gate/finding"
	"github.com/scan-gate/scan-gate/gate/scanner"
	"github.com/scan-gate/scan-gate/internal/proc"
	"github.com/scan-gate/scan-gate/internal/scantest"
	"github.com/scan-gate/scan-gate/internal/testimage"
)

// These tests drive the backend against the QScanner double (testdata/qscanner-double),
// which behaves as the notes on QScanner document, scenario by scenario.

const (
	testToken = "qualys-token-7f3a9c1e55d04b2b"
	testUname = "Linux node17 6.1.0-18-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 " +
		"(2024-02-01) x86_64 GNU/Linux"
)

func reachable(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o755)
	return dir
}

func nobody(t *testing.T) *proc.Credential {
	t.Helper()
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	return &proc.Credential{UID: uint32(uid), GID: uint32(gid)}
}

// double installs the double with a scenario and returns its dir.
func double(t *testing.T, scenario string) string {
	t.Helper()
	dir := filepath.Join(reachable(t), "qs")
	scantest.InstallQScannerDouble(t, dir)
	if err := os.WriteFile(filepath.Join(dir, "scenario"), []byte(scenario+"\n"),
		0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func backend(t *testing.T, dir string, cfg Config) *Backend {
	t.Helper()
	cfg.Path = filepath.Join(dir, "qscanner")
	if cfg.Pod == "" && cfg.Mode != ModeInventoryOnly {
		cfg.Pod = "US2"
	}
	if cfg.Uname == "" {
		cfg.Uname = testUname
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = time.Minute
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func tree(t *testing.T, pkgs []testimage.Package) scanner.Target {
	t.Helper()
	dir := reachable(t)
	root := filepath.Join(dir, "rootfs")
	if err := testimage.WriteRootfs(root, pkgs); err != nil {
		t.Fatal(err)
	}
	scratch := filepath.Join(dir, "scratch")
	if err := os.Mkdir(scratch, 0o755); err != nil {
		t.Fatal(err)
	}
	return scanner.Target{Root: root, ScratchDir: scratch, Credential: nobody(t)}
}

type brief struct {
	ID       string
	Package  string
	Severity finding.Severity
	Qualys   int
}

func briefs(fs []finding.Finding) []brief {
	var out []brief
	for _, f := range fs {
		out = append(out, brief{f.ID, f.Package, f.Severity, f.QualysSeverity})
	}
	return out
}

// vulnerableFindings are what the double reports on testimage.Vulnerable: the same CVEs
// and packages as trivy and grype find there, at the Qualys levels of its knowledge base.
var vulnerableFindings = []brief{
	{"CVE-2023-38545", "curl", finding.Critical, 5},
	{"CVE-2023-38545", "libcurl4", finding.Critical, 5},
	{"CVE-2024-45491", "libexpat1", finding.Critical, 5},
	{"CVE-2024-45492", "libexpat1", finding.Critical, 5},
	{"CVE-2023-4863", "libwebp7", finding.High, 4},
	{"CVE-2023-4911", "libc6", finding.High, 4},
	{"CVE-2023-5363", "libssl3", finding.High, 4},
	{"CVE-2023-38546", "curl", finding.Low, 2},
	{"CVE-2023-38546", "libcurl4", finding.Low, 2},
}

func TestEvaluatePolicy(t *testing.T) {
	t.Setenv(TokenEnv, testToken)
	for _, verdict := range []string{"allow", "deny", "audit"} {
		t.Run(verdict, func(t *testing.T) {
			b := backend(t, double(t, verdict), Config{})
			scan, err := b.Scan(t.Context(), tree(t, testimage.Vulnerable))
			if err != nil {
				t.Fatal(err)
			}
			if scan.PlatformVerdict != verdict {
				t.Errorf("platform verdict %q, want %q", scan.PlatformVerdict, verdict)
			}
			if got := briefs(scan.Findings); !reflect.DeepEqual(got, vulnerableFindings) {
				t.Errorf("findings\n got %v\nwant %v", got, vulnerableFindings)
			}
			expat := scan.Findings[3]
			if !slices.Equal(expat.Aliases, []string{"QID-900103"}) ||
				!slices.Equal(expat.FixedVersions, []string{"2.5.0-1+deb12u1"}) ||
				expat.Installed != "2.5.0-1" || expat.Title == "" {
				t.Errorf("expat finding %+v: want the QID as alias, installed and fixed "+
					"versions, a title", expat)
			}
			if !strings.HasPrefix(scan.ScannerVersion, "sha256:") {
				t.Errorf("version %q, want the binary's content hash", scan.ScannerVersion)
			}
		})
	}
}

func TestGetReport(t *testing.T) {
	t.Setenv(TokenEnv, testToken)
	b := backend(t, double(t, "allow"), Config{Mode: ModeGetReport})
	scan, err := b.Scan(t.Context(), tree(t, testimage.Vulnerable))
	if err != nil {
		t.Fatal(err)
	}
	if scan.PlatformVerdict != "" || len(scan.Findings) != len(vulnerableFindings) {
		t.Errorf("get-report: verdict %q and %d findings, want none and %d",
			scan.PlatformVerdict, len(scan.Findings), len(vulnerableFindings))
	}

	clean, err := b.Scan(t.Context(), tree(t, testimage.Patched))
	if err != nil || len(clean.Findings) != 0 {
		t.Errorf("patched tree: %v, %v; want no findings", clean, err)
	}
}

// Every failure is an error, never a result: the gate makes it a "no decision".
func TestScanFailures(t *testing.T) {
	t.Setenv(TokenEnv, testToken)
	tests := []struct {
		scenario string
		cfg      Config
		want     string
	}{
		{"40", Config{}, "exit status 40 (QScanner could not get the vulnerability report"},
		{"41", Config{}, "exit status 41 (QScanner could not get the policy evaluation"},
		{"garbage", Config{}, "decoding SARIF report"},
		{"empty", Config{}, "empty report"},
		{"noreport", Config{}, "without writing a vulnerability report"},
		{"crash", Config{}, "signal: aborted"},
		{"allow", Config{Mode: ModeGetReport, ExitCodes: ExitCodes{Allow: []int{1},
			Deny: []int{0}}}, "exit status 0 means DENY, which only mode evaluate-policy"},
		{"allow", Config{ExtraArgs: []string{"--bogus"}},
			"exit status 2 (an invalid parameter)"},
		{"allow", Config{ExitCodes: ExitCodes{Allow: []int{3}}},
			"exit status 0 (a failed stage of the scan)"},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			b := backend(t, double(t, tt.scenario), tt.cfg)
			_, err := b.Scan(t.Context(), tree(t, testimage.Vulnerable))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v\nwant one saying %q", err, tt.want)
			}
		})
	}
}

// A run whose inventory shows it did not read the tree's packages is refused, not clean.
func TestBlindRun(t *testing.T) {
	t.Setenv(TokenEnv, testToken)
	for _, mode := range []string{ModeEvaluatePolicy, ModeGetReport, ModeInventoryOnly} {
		t.Run(mode, func(t *testing.T) {
			b := backend(t, double(t, "blind"), Config{Mode: mode})
			_, err := b.Scan(t.Context(), tree(t, testimage.Vulnerable))
			if !errors.Is(err, scanner.ErrIncomplete) || !strings.Contains(err.Error(),
				"qscanner's SBOM lists no distribution packages") {
				t.Fatalf("error %v, want ErrIncomplete", err)
			}
		})
	}
	if os.Geteuid() != 0 {
		return
	}
	// A directory the scanning user may not list is refused before qscanner starts.
	dir := double(t, "allow")
	target := tree(t, testimage.Vulnerable)
	os.Mkdir(filepath.Join(target.Root, "opt"), 0o700)
	_, err := backend(t, dir, Config{}).Scan(t.Context(), target)
	if !errors.Is(err, scanner.ErrIncomplete) || !strings.Contains(err.Error(),
		"may not read opt") {
		t.Fatalf("error %v, want ErrIncomplete for opt", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "invocations.jsonl")); err == nil {
		t.Error("qscanner was started on a tree it cannot read")
	}
}

func TestNoOSFound(t *testing.T) {
	t.Setenv(TokenEnv, testToken)
	b := backend(t, double(t, "allow"), Config{})
	target := tree(t, testimage.Vulnerable)
	os.Remove(filepath.Join(target.Root, "etc/os-release"))
	_, err := b.Scan(t.Context(), target)
	if err == nil || !strings.Contains(err.Error(), "exit status 15 (the OS of the image was "+
		"not found)") {
		t.Fatalf("error %v, want exit status 15", err)
	}
}

// A hang is killed at the deadline with its whole process group: the helper the double
// started dies with it.
func TestHangKilledWithGroup(t *testing.T) {
	t.Setenv(TokenEnv, testToken)
	dir := double(t, "hang")
	b := backend(t, dir, Config{Timeout: time.Second})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	start := time.Now()
	_, err := b.Scan(ctx, tree(t, testimage.Vulnerable))
	if err == nil || !strings.Contains(err.Error(), "killed with its process group") {
		t.Fatalf("error %v, want a kill", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("took %s", took)
	}
	data, err := os.ReadFile(filepath.Join(dir, "pids"))
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range strings.Fields(string(data)) {
		pid, _ := strconv.Atoi(field)
		if alive(pid) {
			t.Errorf("process %d of the hung qscanner is still running", pid)
		}
	}
}

// alive reports whether pid runs (a zombie waiting for its parent does not count).
func alive(pid int) bool {
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return false
		}
		if _, rest, ok := strings.Cut(string(stat), ") "); ok && strings.HasPrefix(rest, "Z") {
			return false
		}
		if syscall.Kill(pid, 0) != nil {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

type invocationLog struct {
	Argv        []string `json:"argv"`
	Env         []string `json:"env"`
	TokenSHA256 string   `json:"token_sha256"`
	UID         int      `json:"uid"`
}

func invocations(t *testing.T, dir string) []invocationLog {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "invocations.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []invocationLog
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var inv invocationLog
		if err := json.Unmarshal(sc.Bytes(), &inv); err != nil {
			t.Fatal(err)
		}
		out = append(out, inv)
	}
	return out
}

// The command line is the documented one, the token is in the environment only, and the
// environment holds nothing else of the caller's.
func TestCommandLine(t *testing.T) {
	t.Setenv(TokenEnv, testToken)
	t.Setenv("SECRET_OF_THE_CALLER", "x")
	dir := double(t, "allow")
	b := backend(t, dir, Config{ScanTypes: []string{"pkg", "secret"},
		PolicyTags: []string{"hpc", "prod"}, ExcludeDirs: []string{"/opt/data"},
		OfflineScan: true, ExtraArgs: []string{"--log-level", "debug"}})
	target := tree(t, testimage.Patched)
	if _, err := b.Scan(t.Context(), target); err != nil {
		t.Fatal(err)
	}

	invs := invocations(t, dir)
	if len(invs) != 1 {
		t.Fatalf("%d invocations, want 1", len(invs))
	}
	argv := invs[0].Argv
	sum := sha256.Sum256([]byte(testToken))
	if invs[0].TokenSHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("qscanner did not get the token in %s", TokenEnv)
	}
	if strings.Contains(strings.Join(argv, " "), testToken) {
		t.Errorf("the token is in qscanner's argv: %q", argv)
	}
	env := slices.Sorted(slices.Values(invs[0].Env))
	if want := []string{"HOME", "PATH", TokenEnv, "TMPDIR"}; !slices.Equal(env, want) {
		t.Errorf("environment %v, want only %v", env, want)
	}
	if nobody(t) != nil && invs[0].UID == 0 {
		t.Error("qscanner ran as root")
	}

	work := filepath.Dir(argv[slices.Index(argv, "--output-dir")+1])
	want := []string{filepath.Join(dir, "qscanner"), "rootfs", target.Root,
		"--mode", "evaluate-policy",
		"--output-dir", filepath.Join(work, "out"),
		"--format", "json,spdx,cyclonedx",
		"--shell-commands", "uname -a=" + strings.ReplaceAll(testUname, ",", " "),
		"--scan-timeout", "60s",
		"--pod", "US2",
		"--report-format", "sarif",
		"--scan-types", "pkg,secret",
		"--policy-tags", "hpc,prod",
		"--exclude-dirs", "/opt/data",
		"--cache-dir", filepath.Join(work, "cache"),
		"--offline-scan",
		"--log-level", "debug"}
	if !slices.Equal(argv, want) {
		t.Errorf("argv\n got %q\nwant %q", argv, want)
	}
}

func TestTokenFile(t *testing.T) {
	t.Setenv(TokenEnv, "")
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(path, mode)
		return path
	}

	good := write("good", testToken+"\n", 0o600)
	if tok, err := LoadToken(good); err != nil || tok != testToken {
		t.Errorf("0600 file: %q, %v", tok, err)
	}
	envStyle := write("env", TokenEnv+"=\""+testToken+"\"\n", 0o400)
	if tok, err := LoadToken(envStyle); err != nil || tok != testToken {
		t.Errorf("QUALYS_ACCESS_TOKEN= line: %q, %v", tok, err)
	}

	refused := map[string]string{
		write("open", testToken, 0o644):     "mode 0644 lets others read it",
		write("group", testToken, 0o640):    "mode 0640 lets others read it",
		write("empty", "\n", 0o600):         "holds no token",
		write("two", "a\nb\n", 0o600):       "more than one line",
		filepath.Join(dir, "missing"):       "no such file",
		filepath.Join(dir, "link"):          "symbolic link",
		filepath.Join(dir):                  "not a regular file",
		write("spaced", "a token\n", 0o600): "more than one line",
	}
	os.Symlink(good, filepath.Join(dir, "link"))
	if os.Geteuid() == 0 {
		other := write("other", testToken, 0o600)
		os.Chown(other, 65534, 65534)
		refused[other] = "owned by uid 65534, not by the user running the gate (uid 0)"
	}
	for path, want := range refused {
		tok, err := LoadToken(path)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: token %q, error %v; want an error saying %q", filepath.Base(path),
				tok, err, want)
		}
		if err != nil && strings.Contains(err.Error(), testToken) {
			t.Errorf("%s: the error shows the token: %v", filepath.Base(path), err)
		}
	}

	if _, err := LoadToken(""); err == nil || !strings.Contains(err.Error(), TokenEnv) {
		t.Errorf("no token anywhere: %v, want an error naming %s", err, TokenEnv)
	}
	t.Setenv(TokenEnv, testToken)
	if tok, err := LoadToken(""); err != nil || tok != testToken {
		t.Errorf("from the environment: %q, %v", tok, err)
	}
}

// A scanner that prints the token (no real one is known to) finds it redacted in every
// message and report the gate keeps.
func TestTokenRedacted(t *testing.T) {
	t.Setenv(TokenEnv, testToken)
	reports := t.TempDir()
	ctx := scanner.WithReportDir(t.Context(), reports)
	b := backend(t, double(t, "echo-token"), Config{})
	_, err := b.Scan(ctx, tree(t, testimage.Vulnerable))
	if err == nil || !strings.Contains(err.Error(), "authentication failed for token "+
		"[redacted]") {
		t.Fatalf("error %v, want the scanner's log line, redacted", err)
	}
	if strings.Contains(err.Error(), testToken) {
		t.Errorf("the error shows the token: %v", err)
	}
	entries, _ := os.ReadDir(reports)
	if len(entries) == 0 {
		t.Fatal("no report kept")
	}
	for _, e := range entries {
		data, _ := os.ReadFile(filepath.Join(reports, e.Name()))
		if strings.Contains(string(data), testToken) {
			t.Errorf("kept report %s holds the token", e.Name())
		}
	}
}

func TestNoTokenNoScan(t *testing.T) {
	t.Setenv(TokenEnv, "")
	dir := double(t, "allow")
	b := backend(t, dir, Config{})
	_, err := b.Scan(t.Context(), tree(t, testimage.Vulnerable))
	if err == nil || !strings.Contains(err.Error(), "no Qualys access token") {
		t.Fatalf("error %v, want no token", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "invocations.jsonl")); err == nil {
		t.Error("qscanner was started without a token")
	}
}

func TestModesWithoutFindings(t *testing.T) {
	t.Setenv(TokenEnv, testToken)
	for _, mode := range []string{ModeScanOnly, ModeInventoryOnly} {
		t.Run(mode, func(t *testing.T) {
			reports := t.TempDir()
			ctx := scanner.WithReportDir(t.Context(), reports)
			b := backend(t, double(t, "allow"), Config{Mode: mode})
			_, err := b.Scan(ctx, tree(t, testimage.Vulnerable))
			if !errors.Is(err, scanner.ErrNoFindings) {
				t.Fatalf("error %v, want ErrNoFindings", err)
			}
			// The inventory and SBOMs are kept all the same.
			for _, pattern := range []string{"*-ScanResult.json", "*.cyclonedx.json",
				"*.spdx.json"} {
				if m, _ := filepath.Glob(filepath.Join(reports, pattern)); len(m) != 1 {
					t.Errorf("%s kept: %v, want one", pattern, m)
				}
			}
		})
	}
}

// Inventory-only mode with a matcher: QScanner's SBOM, matched by a real grype or trivy
// against its fixture DB, gives the same findings as the scanners give on the tree.
func TestInventoryMatched(t *testing.T) {
	for _, name := range []string{"grype", "trivy"} {
		t.Run(name, func(t *testing.T) {
			m := matcher(t, name)
			b := backend(t, double(t, "allow"), Config{Mode: ModeInventoryOnly, Matcher: m})
			scan, err := b.Scan(t.Context(), tree(t, testimage.Vulnerable))
			if err != nil {
				t.Fatal(err)
			}
			var got []brief
			for _, f := range scan.Findings {
				got = append(got, brief{f.ID, f.Package, f.Severity, 0})
			}
			var want []brief
			for _, f := range vulnerableFindings {
				want = append(want, brief{f.ID, f.Package, f.Severity, 0})
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("findings\n got %v\nwant %v", got, want)
			}
			if !strings.Contains(scan.ScannerVersion, "+"+name+"-") || scan.OS == "" ||
				scan.DBUpdatedAt.IsZero() {
				t.Errorf("scan %s on %q with DB %s: want the matcher in the version, an OS "+
					"and the matcher's DB date", scan.ScannerVersion, scan.OS, scan.DBUpdatedAt)
			}

			id, err := b.Identify(t.Context())
			if err != nil || id.Version != scan.ScannerVersion ||
				!id.DBUpdatedAt.Equal(scan.DBUpdatedAt) {
				t.Errorf("identity %+v, %v; want version %s and the scan's DB date", id, err,
					scan.ScannerVersion)
			}
		})
	}
}

func TestInventoryGarbageSBOM(t *testing.T) {
	b := backend(t, double(t, "garbage"), Config{Mode: ModeInventoryOnly,
		Matcher: matcher(t, "grype")})
	_, err := b.Scan(t.Context(), tree(t, testimage.Vulnerable))
	if err == nil || errors.Is(err, scanner.ErrNoFindings) {
		t.Fatalf("error %v, want the matcher to refuse the SBOM", err)
	}
}

func TestKeepsReports(t *testing.T) {
	t.Setenv(TokenEnv, testToken)
	reports := t.TempDir()
	ctx := scanner.WithReportDir(t.Context(), reports)
	b := backend(t, double(t, "deny"), Config{})
	if _, err := b.Scan(ctx, tree(t, testimage.Vulnerable)); err != nil {
		t.Fatal(err)
	}
	for _, pattern := range []string{"*-Report.sarif.json", "*-ScanResult.json",
		"*.cyclonedx.json", "*.spdx.json"} {
		if m, _ := filepath.Glob(filepath.Join(reports, pattern)); len(m) != 1 {
			t.Errorf("%s kept: %v, want one", pattern, m)
		}
	}
}

func TestNewRefuses(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{Path: "/bin/true"}, "needs a pod"},
		{Config{Path: "/bin/true", Mode: "upload", Pod: "US1"}, "unknown mode"},
		{Config{Path: "/bin/true", Pod: "US1", ExtraArgs: []string{"--access-token=x"}},
			`extra argument "--access-token" changes a flag`},
		{Config{Path: "/bin/true", Pod: "US1", ExtraArgs: []string{"--output-dir", "/x"}},
			"changes a flag"},
		{Config{Path: "/nonexistent/qscanner", Pod: "US1"}, "not an executable file"},
	}
	for _, tt := range tests {
		_, err := New(tt.cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%+v): %v, want an error saying %q", tt.cfg, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "=x") {
			t.Errorf("the error repeats an extra argument's value: %v", err)
		}
	}
}
