// Command qscanner-double stands in for Qualys QScanner in scan-gate's tests, which cannot
// reach the Qualys cloud. It behaves as the project's notes on QScanner (qscanner.md) say
// the real one does, and no more:
//
//   - `qscanner [flags] COMMAND TARGET [flags]`, COMMAND one of image, rootfs, repo,
//     clear-local-cache; flags before or after the command, as --flag value or --flag=value.
//     It accepts exactly the documented flags; an unknown flag, a bad value or a missing
//     argument exits 2 (invalid parameter), as a CLI does.
//   - For rootfs it reads the tree (etc/os-release, var/lib/dpkg/status; it runs nothing in
//     it), matches the packages against a small built-in knowledge base of real Debian 12
//     advisories (the QIDs are made up), and writes into --output-dir, with a random prefix:
//     <prefix>-ScanResult.json (inventory), <prefix>.spdx.json and <prefix>.cyclonedx.json
//     (SBOMs, per --format), and in get-report and evaluate-policy modes
//     <prefix>-Report.sarif.json (per --report-format sarif).
//   - It exits 0 (evaluate-policy: ALLOW), 42 (DENY), 43 (AUDIT), 40 (no report), 41 (no
//     policy result), 15 (OS not found), 2 (invalid parameter).
//
// What it does is chosen by a scenario, the first word of the file "scenario" next to the
// executable, else $QSCANNER_DOUBLE_SCENARIO, else "allow":
//
//	allow, deny, audit  the platform's verdict in evaluate-policy mode (exit 0, 42, 43)
//	40, 41              the platform failures: no report (40), no policy result (41)
//	blind               as if the dpkg database could not be read: no packages in any output
//	garbage             exit 0 with a report that is not JSON
//	empty               exit 0 with an empty report
//	noreport            exit 0 without writing anything
//	hang                never finishes; starts a child that never finishes either, and
//	                    writes both process ids to the file "pids" next to the executable
//	crash               dies by a signal (a nil dereference, SIGABRT) halfway through
//	                    writing its report
//	echo-token          (not real behaviour: a test of the gate's redaction) prints the
//	                    token to stderr and into its inventory, then exits 1
//
// Each run appends one JSON line to "invocations.jsonl" next to the executable (when it
// may): its argv as /proc/self/cmdline shows it, uid, the names of its environment
// variables and the SHA-256 of QUALYS_ACCESS_TOKEN (never the token).
package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"time"
)

const tokenEnv = "QUALYS_ACCESS_TOKEN"

// The documented flags: those taking a value, and the one boolean.
var (
	valueFlags = []string{"--mode", "--pod", "--access-token", "--scan-types", "--format",
		"--report-format", "--output-dir", "--cache-dir", "--exclude-dirs", "--exclude-files",
		"--shell-commands", "--policy-tags", "--scan-timeout", "--log-level"}
	boolFlags = []string{"--offline-scan"}
)

// Allowed values.
var (
	modes = []string{"inventory-only", "scan-only", "get-report", "evaluate-policy"}
	pods  = []string{"US1", "US2", "US3", "US4", "EU1", "EU2", "EU3", "IN1", "CA1", "AE1",
		"UK1", "AU1", "KSA1"}
	scanTypes     = []string{"pkg", "fileinsight", "secret", "malware", "compliance"}
	formats       = []string{"json", "spdx", "spdx-tlv", "cyclonedx", "db"}
	reportFormats = []string{"table", "sarif", "json", "gitlab"}
	logLevels     = []string{"debug", "info", "warn", "error"}
	commands      = []string{"image", "rootfs", "repo", "clear-local-cache"}
	timeoutForm   = regexp.MustCompile(`^[0-9]+s$`)
)

// usageError exits 2, the status of an invalid parameter.
func usageError(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "Error: "+format+"\n", args...)
	fmt.Fprintln(os.Stderr, "Run 'qscanner --help' for usage.")
	os.Exit(2)
}

// invocation is a parsed command line.
type invocation struct {
	command, target string
	flags           map[string]string
	offline         bool
}

func parse(args []string) invocation {
	inv := invocation{flags: map[string]string{}}
	var positional []string
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if !strings.HasPrefix(arg, "-") || arg == "-" {
			positional = append(positional, arg)
			continue
		}
		name, value, hasValue := strings.Cut(arg, "=")
		switch {
		case slices.Contains(boolFlags, name):
			inv.offline = !hasValue || value == "true"
			if hasValue && value != "true" && value != "false" {
				usageError("invalid argument %q for %q flag", value, name)
			}
		case slices.Contains(valueFlags, name):
			if !hasValue {
				if i+1 >= len(args) {
					usageError("flag needs an argument: %s", name)
				}
				i++
				value = args[i]
			}
			if _, twice := inv.flags[name]; twice {
				usageError("flag %s given twice", name)
			}
			inv.flags[name] = value
		case strings.HasPrefix(name, "--"):
			usageError("unknown flag: %s", name)
		default:
			usageError("unknown shorthand flag: %q in %s", strings.TrimPrefix(name, "-"),
				arg)
		}
	}

	if len(positional) == 0 {
		usageError("a command is required (%s)", strings.Join(commands, ", "))
	}
	inv.command = positional[0]
	if !slices.Contains(commands, inv.command) {
		usageError("unknown command %q for \"qscanner\"", inv.command)
	}
	want := 1
	if inv.command == "clear-local-cache" {
		want = 0
	}
	if len(positional)-1 != want {
		usageError("%q accepts %d arg(s), received %d", inv.command, want,
			len(positional)-1)
	}
	if want == 1 {
		inv.target = positional[1]
	}
	inv.validate()
	return inv
}

func (inv invocation) validate() {
	oneOf := func(flag string, allowed []string, list bool) {
		value, ok := inv.flags[flag]
		if !ok {
			return
		}
		items := []string{value}
		if list {
			items = strings.Split(value, ",")
		}
		for _, item := range items {
			if !slices.Contains(allowed, item) {
				usageError("invalid value %q for %s (want %s)", item, flag,
					strings.Join(allowed, ", "))
			}
		}
	}
	oneOf("--mode", modes, false)
	oneOf("--pod", pods, false)
	oneOf("--scan-types", scanTypes, true)
	oneOf("--format", formats, true)
	oneOf("--report-format", reportFormats, false)
	oneOf("--log-level", logLevels, false)
	if t, ok := inv.flags["--scan-timeout"]; ok && !timeoutForm.MatchString(t) {
		usageError("invalid value %q for --scan-timeout (want seconds, such as 300s)", t)
	}
	if sc, ok := inv.flags["--shell-commands"]; ok && !strings.Contains(sc, "=") {
		usageError("invalid value for --shell-commands (want \"command=output\")")
	}
	if inv.command == "clear-local-cache" {
		return
	}
	mode := inv.mode()
	if mode != "inventory-only" {
		if inv.flags["--pod"] == "" {
			usageError("mode %s needs --pod", mode)
		}
		if inv.token() == "" {
			usageError("mode %s needs an access token (%s or --access-token)", mode,
				tokenEnv)
		}
	}
}

func (inv invocation) mode() string {
	if m := inv.flags["--mode"]; m != "" {
		return m
	}
	return "inventory-only"
}

func (inv invocation) token() string {
	if t := os.Getenv(tokenEnv); t != "" {
		return t
	}
	return inv.flags["--access-token"]
}

func main() {
	if os.Getenv("QSCANNER_DOUBLE_CHILD") == "sleep" {
		time.Sleep(time.Hour)
		return
	}
	self := selfDir()
	scenario := readScenario(self)
	inv := parse(os.Args[1:])
	record(self, scenario, inv)

	if inv.command == "clear-local-cache" {
		if dir := inv.flags["--cache-dir"]; dir != "" {
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				os.RemoveAll(filepath.Join(dir, e.Name()))
			}
		}
		return
	}
	if inv.command != "rootfs" {
		fmt.Fprintf(os.Stderr, "qscanner double: only rootfs scans are simulated, not %s\n",
			inv.command)
		os.Exit(1)
	}
	os.Exit(scan(inv, scenario, self))
}

func selfDir() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	return filepath.Dir(exe)
}

func readScenario(dir string) string {
	if data, err := os.ReadFile(filepath.Join(dir, "scenario")); err == nil {
		if fields := strings.Fields(string(data)); len(fields) > 0 {
			return fields[0]
		}
	}
	if s := os.Getenv("QSCANNER_DOUBLE_SCENARIO"); s != "" {
		return s
	}
	return "allow"
}

// record appends this invocation to invocations.jsonl next to the executable.
func record(dir, scenario string, inv invocation) {
	cmdline, _ := os.ReadFile("/proc/self/cmdline")
	argv := strings.Split(strings.TrimSuffix(string(cmdline), "\x00"), "\x00")
	var names []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		names = append(names, name)
	}
	entry := map[string]any{"argv": argv, "uid": os.Getuid(), "pid": os.Getpid(),
		"env": names, "scenario": scenario}
	if t := os.Getenv(tokenEnv); t != "" {
		sum := sha256.Sum256([]byte(t))
		entry["token_sha256"] = hex.EncodeToString(sum[:])
	}
	line, _ := json.Marshal(entry)
	f, err := os.OpenFile(filepath.Join(dir, "invocations.jsonl"),
		os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o666)
	if err != nil {
		return
	}
	defer f.Close()
	f.Write(append(line, '\n'))
}

// scan simulates a rootfs scan and returns the exit status.
func scan(inv invocation, scenario, self string) int {
	out := inv.flags["--output-dir"]
	if out == "" {
		out = filepath.Join(os.Getenv("HOME"), ".qscanner", "output")
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "Error: creating output dir:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "INFO\tscanning rootfs %s (mode %s)\n", inv.target, inv.mode())

	if scenario == "hang" {
		return hang(self)
	}
	tree, err := readTree(inv.target)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ERROR\t", err)
		return 1
	}
	if scenario == "blind" {
		tree.packages = nil
	}
	if tree.osID == "" {
		fmt.Fprintln(os.Stderr, "ERROR\tOS not found in the target")
		return 15
	}
	prefix := "rootfs-" + randomHex()
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(out, prefix+name), data, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "ERROR\twriting output:", err)
			os.Exit(1)
		}
	}

	formatList := strings.Split(inv.flags["--format"], ",")
	if inv.flags["--format"] == "" {
		formatList = []string{"json"}
	}
	inventory := tree.inventory(inv)
	if scenario == "echo-token" {
		fmt.Fprintf(os.Stderr, "ERROR\tauthentication failed for token %s\n", inv.token())
		inventory = append(inventory[:len(inventory)-1], []byte(`,"token":"`+
			inv.token()+`"}`)...)
		write("-ScanResult.json", inventory)
		return 1
	}
	for _, format := range formatList {
		switch format {
		case "json":
			write("-ScanResult.json", inventory)
		case "spdx":
			write(".spdx.json", tree.spdx(prefix))
		case "spdx-tlv":
			write(".spdx", []byte("SPDXVersion: SPDX-2.3\nDataLicense: CC0-1.0\n"))
		case "cyclonedx":
			if scenario == "garbage" && inv.mode() == "inventory-only" {
				write(".cyclonedx.json", []byte("<html>not an SBOM</html>"))
				continue
			}
			write(".cyclonedx.json", tree.cyclonedx())
		case "db":
			write(".db", []byte("SQLite format 3\x00"))
		}
	}
	if scenario == "crash" {
		write("-Report.sarif.json", []byte(`{"version":"2.1.0","runs":[{"tool":`))
		crash()
	}

	mode := inv.mode()
	if mode == "inventory-only" || mode == "scan-only" {
		return 0
	}
	switch scenario {
	case "40":
		fmt.Fprintln(os.Stderr, "ERROR\tfailed to get the vulnerability report")
		return 40
	case "noreport":
		return 0
	}
	report := sarif(tree.matches())
	switch scenario {
	case "garbage":
		report = []byte("\x00\x01 this is not a report {{{")
	case "empty":
		report = nil
	}
	switch inv.flags["--report-format"] {
	case "sarif":
		write("-Report.sarif.json", report)
	case "json":
		write("-Report.json", report)
	case "gitlab":
		write("-Report.gitlab.json", report)
	default:
		fmt.Printf("%d vulnerabilities found\n", len(tree.matches()))
	}

	if mode != "evaluate-policy" {
		return 0
	}
	switch scenario {
	case "41":
		fmt.Fprintln(os.Stderr, "ERROR\tfailed to get the policy evaluation result")
		return 41
	case "deny":
		fmt.Fprintln(os.Stderr, "INFO\tpolicy evaluation: DENY")
		return 42
	case "audit":
		fmt.Fprintln(os.Stderr, "INFO\tpolicy evaluation: AUDIT")
		return 43
	}
	fmt.Fprintln(os.Stderr, "INFO\tpolicy evaluation: ALLOW")
	return 0
}

// hang never returns: it starts a child that sleeps, records both pids, and sleeps.
func hang(self string) int {
	exe, _ := os.Executable()
	child := exec.Command(exe)
	child.Env = append(os.Environ(), "QSCANNER_DOUBLE_CHILD=sleep")
	if err := child.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "ERROR\tstarting a helper:", err)
		return 1
	}
	pids := fmt.Sprintf("%d %d\n", os.Getpid(), child.Process.Pid)
	os.WriteFile(filepath.Join(self, "pids"), []byte(pids), 0o666)
	time.Sleep(time.Hour)
	return 0
}

// crash dereferences nil with the traceback level "crash": the runtime prints the stacks
// and dies by SIGABRT, as a crashing program does (a plain Go panic exits 2, which reads
// as "invalid parameter").
func crash() {
	debug.SetTraceback("crash")
	var p *invocation
	fmt.Println(p.command)
}

func randomHex() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}
