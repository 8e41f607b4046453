// Command spank-helper decides container launches for Slurm: the scan-gate SPANK plugin runs
// it as root for every job step (only its parser can tell whether a step launches a
// container; a step that launches none is answered at once), and a PrologSlurmctld (or
// node Prolog) script runs it for batch jobs at sites that cannot load the plugin. See
// contrib/slurm/README.md.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

// Exit statuses. step answers on stdout and exits 0 whatever the decision; prolog exits 0
// whatever the decision (a failing node Prolog drains the node).
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

const usage = `spank-helper: the scan-gate helper of the Slurm launch points.

Usage:
  spank-helper step [flags] [-- ARGV...]   decide one job step (run by the SPANK plugin)
  spank-helper prolog [flags]              decide a batch job (PrologSlurmctld or Prolog)
  spank-helper rescan [flags] IMAGE        rescan an image (started in the background)

Run 'spank-helper help COMMAND' for the flags of each command.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	var err error
	status := exitOK
	switch cmd, rest := args[0], args[1:]; cmd {
	case "step":
		status, err = runStep(rest, stdout, stderr)
	case "prolog":
		status, err = runProlog(rest, stderr)
	case "rescan":
		status, err = runRescan(rest, stderr)
	case "help", "-h", "--help":
		return runHelp(rest, stdout)
	default:
		fmt.Fprintf(stderr, "spank-helper: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "spank-helper %s: %v\n", args[0], err)
	}
	return status
}

func runHelp(args []string, stdout io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stdout)
	switch args[0] {
	case "step":
		stepFlags(fs)
	case "prolog":
		prologFlags(fs)
	case "rescan":
		(&common{}).register(fs)
	default:
		fmt.Fprintf(stdout, "spank-helper: unknown command %q\n\n%s", args[0], usage)
		return exitUsage
	}
	fmt.Fprintf(stdout, "%s\n\nFlags:\n", commandHelp[args[0]])
	fs.PrintDefaults()
	return exitOK
}

var commandHelp = map[string]string{
	"step": `Usage: spank-helper step [flags] [-- ARGV...]

Decides one job step: finds the images ARGV (or --batch-script) launches, checks each with
the gate as root, and answers on stdout in the plugin's protocol (see gate/slurm). Who is
launching comes from the flags, which the plugin fills from Slurm, and from the job
record in slurmctld. Exit status 0 with an answer; 2 when the policy cannot be read.`,
	"prolog": `Usage: spank-helper prolog [flags]

Decides a batch job from PrologSlurmctld or a node Prolog (SLURM_JOB_ID in the
environment): reads the batch script from slurmctld, checks the images it names, and stops
a blocked job through Slurm (its reason in AdminComment, then scancel), writing the reason
into the job's output file as the job's user. It exits 0 whatever the decision, and on a
gate error too unless --fail-on-error is given: a failing node Prolog drains the node.`,
	"rescan": `Usage: spank-helper rescan [flags] IMAGE

Scans IMAGE now, ignoring cached results, and stores the result (background rescans).`,
}
