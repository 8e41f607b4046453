// Command scan-gate stops jobs from launching container images with known critical
// vulnerabilities. See `scan-gate help` and the README.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// Exit statuses. check exits with the action: 0 to proceed, 1 when blocked; a "no decision"
// exits with whatever action the policy gives it. 2 is only for bad arguments or policy.
const (
	exitProceed = 0
	exitBlocked = 1
	exitUsage   = 2
)

const usage = `scan-gate: gate container image launches on vulnerability scans.

Usage:
  scan-gate check [flags] IMAGE...     decide whether IMAGE(s) may launch
  scan-gate scan [flags] IMAGE...      scan IMAGE(s) and write reports (--output-dir DIR)
  scan-gate policy check [FILE]        print the effective policy and its digest
  scan-gate cache ls|show|gc|purge     inspect and maintain the scan cache
  scan-gate cache export|import FILE   carry scan results to an air-gapped cluster
  scan-gate prewarm PATH...            scan images ahead of their launches
  scan-gate prewarm --targets FILE     ... the targets of a list (--slurm: as an array job)
  scan-gate stats                      sum up the audit log (--metrics: for node_exporter)
  scan-gate launch-check -- CMD...     check the image an apptainer command line starts
  scan-gate hook                       OCI runtime hook: check a container's image
  scan-gate watch --pid PID            check the containers a running task enters
  scan-gate ps                         list processes running in containers
  scan-gate version                    print versions of scan-gate, scanner and DB
  scan-gate help [COMMAND]             show help

An IMAGE is a SIF file, a bare squashfs file or a sandbox directory.

Exit status of check: 0 the launch may proceed (allow, warn, audit); 1 it is blocked;
when no decision could be made (scanner error, timeout, unscannable, malformed or missing
image) the status follows the action the policy's [on] table gives it; 2 means bad
arguments or a bad policy file.

The policy is read from /etc/scan-gate/policy.toml unless --policy names another file;
with no file at the default path, built-in defaults apply (enforce, block critical,
no decision = block). Run 'scan-gate help check' for the check flags.
`

// usageErr marks errors that exit with status 2: bad arguments or a bad policy.
type usageErr struct{ error }

func (e usageErr) Unwrap() error { return e.error }

func main() {
	// Descriptors inherited from whoever started the gate must not reach the scanner or
	// unsquashfs, which run as another user on untrusted content.
	unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	var err error
	status := exitProceed
	switch cmd {
	case "check":
		status, err = runCheck(rest, stdout, stderr, false)
	case "rescan":
		// Internal: the background rescan of a stale or missing result.
		status, err = runCheck(rest, stdout, stderr, true)
	case "scan":
		status, err = runScan(rest, stdout, stderr)
	case "policy":
		err = runPolicy(rest, stdout, stderr)
	case "cache":
		err = runCache(rest, stdout, stderr)
	case "launch-check":
		status, err = runLaunchCheck(rest, stdout, stderr)
	case "hook":
		status, err = runHook(rest, os.Stdin, stdout, stderr)
	case "watch":
		status, err = runWatch(rest, stdout, stderr)
	case "ps":
		err = runPs(rest, stdout, stderr)
	case "prewarm":
		status, err = runPrewarm(rest, stdout, stderr)
	case "stats":
		err = runStats(rest, stdout, stderr)
	case "version", "--version":
		err = runVersion(rest, stdout, stderr)
	case "help", "-h", "--help":
		return runHelp(rest, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "scan-gate: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
	if err == nil {
		return status
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitProceed
	}
	fmt.Fprintf(stderr, "scan-gate %s: %v\n", cmd, err)
	if errors.As(err, new(usageErr)) {
		return exitUsage
	}
	if status == exitProceed {
		status = exitBlocked
	}
	return status
}

func runHelp(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stdout, usage)
		return exitProceed
	}
	if _, ok := commandHelp[args[0]]; !ok {
		fmt.Fprintf(stderr, "scan-gate help: unknown command %q\n\n%s", args[0], usage)
		return exitUsage
	}
	fs := newFlagSet(args[0], stdout)
	switch args[0] {
	case "check":
		checkFlags(fs)
	case "scan":
		scanFlags(fs)
	case "cache":
		cacheFlags(fs)
	case "policy", "version":
		new(common).register(fs)
	case "prewarm":
		prewarmFlags(fs)
	case "stats":
		statsFlags(fs)
	case "launch-check":
		checkFlags(fs)
	case "hook":
		hookFlags(fs)
		fs.Usage()
		fmt.Fprintln(stdout)
		printInstallFlags(stdout)
		return exitProceed
	case "watch":
		watchFlags(fs)
	case "ps":
		psFlags(fs)
	}
	fs.Usage()
	return exitProceed
}

// usageError wraps a message as an exit-2 error.
func usageError(format string, args ...any) error {
	return usageErr{fmt.Errorf(format, args...)}
}

// badConfig marks err (a policy or flag error) as an exit-2 error without changing its text.
func badConfig(err error) error { return usageErr{err} }

// parseArgs parses flags wherever they stand among the arguments ("check IMG --json" as well
// as "check --json IMG"); everything after "--" is an argument. It returns the arguments.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, badConfig(err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

func newFlagSet(name string, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "%s\nFlags of %s:\n", commandHelp[name], name)
		fs.PrintDefaults()
	}
	return fs
}

var commandHelp = map[string]string{
	"check": `Usage: scan-gate check [flags] IMAGE...

Decides whether the images may launch. With several images the strictest action wins.
A blocked image prints one message on stderr naming the image, its findings and the next
step. One audit line per image is appended to the audit log.`,
	"rescan": `Usage: scan-gate rescan [flags] IMAGE

Scans IMAGE now, ignoring cached results, and stores the result (used for background
rescans).`,
	"policy": `Usage: scan-gate policy check [FILE]

Validates the policy (default: --policy or /etc/scan-gate/policy.toml) and prints the
effective policy, every default filled in, and its digest.`,
	"prewarm": prewarmHelp,
	"stats":   statsHelp,
	"cache": `Usage: scan-gate cache ls | show KEY|IMAGE | gc [--unused DURATION] | purge
       scan-gate cache export FILE [KEY|IMAGE...] | import FILE [OLD=NEW...]

ls lists cached scans with the verdict the current policy gives them; show prints the
findings of one; gc drops entries unused for a while; purge drops all entries. Lock files
are never removed. --shared works on the shared tier ([cache] shared_dir) instead.

export writes the entries (all, or those of the keys and images named) to an archive FILE
(- for stdout) for an air-gapped cluster: each image is hashed again, with a secret made for
the archive and carried in it, so keep the archive private. import stores the entries of
such an archive, each only for an image here that holds what it was scanned from (found at
the path the entry names, or with a prefix OLD replaced by NEW), under this cache's own key,
keeping any newer scan already here.`,
	"scan":         scanHelp,
	"launch-check": launchCheckHelp,
	"hook":         hookHelp,
	"watch":        watchHelp,
	"ps":           psHelp,
	"version": `Usage: scan-gate version

Prints the version of scan-gate and of the scanner and vulnerability DB it would use.`,
}
