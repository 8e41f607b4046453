package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/scan-gate/scan-gate/gate"
	"github.com/scan-gate/scan-gate/gate/extract"
	"github.com/scan-gate/scan-gate/gate/hook"
	"github.com/scan-gate/scan-gate/gate/setup"
	"github.com/scan-gate/scan-gate/policy"
)

type hookOptions struct {
	*checkOptions
	trustAnnotation bool
}

func hookFlags(fs *flag.FlagSet) *hookOptions {
	o := &hookOptions{checkOptions: checkFlags(fs)}
	fs.BoolVar(&o.trustAnnotation, "trust-annotation", false, "check the image file the "+
		"bundle's "+hook.ImageAnnotation+" annotation names instead of its root filesystem "+
		"(only where trusted tools write the bundles)")
	return o
}

// runHook is the OCI hook (state on stdin) and its two helpers, check-bundle and
// install-bundle.
func runHook(args []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	if len(args) > 0 {
		switch args[0] {
		case "check-bundle":
			return runCheckBundle(args[1:], stdout, stderr)
		case "install-bundle":
			return runInstallBundle(args[1:], stdout, stderr)
		}
	}
	fs := newFlagSet("hook", stderr)
	hookUsage := fs.Usage
	fs.Usage = func() {
		hookUsage()
		fmt.Fprintln(stderr)
		printInstallFlags(stderr)
	}
	o := hookFlags(fs)
	if err := fs.Parse(args); err != nil {
		return exitUsage, badConfig(err)
	}
	if fs.NArg() > 0 {
		return exitUsage, usageError("unexpected argument %q (the state comes on stdin)",
			fs.Arg(0))
	}
	state, err := hook.ReadState(stdin)
	if err != nil {
		return exitUsage, badConfig(err)
	}
	return gateBundle(o, state.Bundle, state, stdout, stderr)
}

// runCheckBundle checks a bundle and, when the launch may proceed and a runtime command
// follows "--", runs that command in its place. Slurm's oci.conf puts it in front of the
// runtime.
func runCheckBundle(args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlagSet("hook", stderr)
	o := hookFlags(fs)
	if err := fs.Parse(args); err != nil {
		return exitUsage, badConfig(err)
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return exitUsage, usageError("no bundle given (see 'scan-gate help hook')")
	}
	bundle, runtime := rest[0], rest[1:]
	if len(runtime) > 0 {
		if runtime[0] != "--" || len(runtime) == 1 {
			return exitUsage, usageError("after the bundle, want -- and the runtime command")
		}
		runtime = runtime[1:]
	}
	status, err := gateBundle(o, bundle, nil, stdout, stderr)
	if err != nil || status != exitProceed || len(runtime) == 0 {
		return status, err
	}
	path, err := exec.LookPath(runtime[0])
	if err != nil {
		return exitBlocked, fmt.Errorf("finding the runtime: %w", err)
	}
	// The check proceeded: become the runtime, with its arguments untouched.
	return exitBlocked, syscall.Exec(path, runtime, os.Environ())
}

// gateBundle checks what the bundle's container would start and reports it like check.
func gateBundle(o *hookOptions, bundle string, state *specs.State, stdout,
	stderr io.Writer) (int, error) {
	p, err := o.loadPolicy()
	if err != nil {
		return exitUsage, err
	}
	log := o.logger(stderr)
	o.fillWho()

	bundle, err = filepath.Abs(bundle)
	if err != nil {
		return exitUsage, badConfig(err)
	}
	who := o.who
	spec, err := hook.LoadConfig(bundle)
	var target hook.Target
	if err == nil {
		target, err = hook.Resolve(bundle, spec, state, o.trustAnnotation)
	}
	if err == nil && !target.FromAnnotation {
		err = hook.CheckRoot(target.Image)
	}
	if err == nil && !target.FromAnnotation && state != nil {
		// The root filesystem checked must be the one the runtime mounted, whatever
		// config.json says now.
		err = hook.VerifyMountedRoot(state.Pid, target.Image)
		if errors.Is(err, hook.ErrRootUnknown) {
			log.Debug("cannot compare with the mounted root filesystem; going by config.json",
				"pid", state.Pid, "reason", err)
			err = nil
		}
	}
	if err != nil {
		// The bundle cannot be read, or could be changed under the hook by someone else:
		// the container is not started unchecked.
		return decideBundleWithoutCheck(p, o, who, err, stdout, stderr)
	}
	if target.IgnoredAnnotation != "" {
		log.Debug("annotation not trusted; checking the root filesystem",
			"annotation", hook.ImageAnnotation, "value", target.IgnoredAnnotation)
	}
	log.Debug("checking bundle", "bundle", bundle, "image", target.Image,
		"from_annotation", target.FromAnnotation)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	g, err := setup.New(p)
	if err != nil {
		return decideWithoutGate(p, o.checkOptions, []string{target.Image}, stdout, stderr,
			err)
	}
	g.Background = backgroundRescan(o.checkOptions)
	extract.Sweep(g.Extract.ScratchDir)

	auditLog := openAudit(o.auditPath, p.AuditLog, log)
	defer auditLog.Close()
	res := g.Check(ctx, gate.Request{Image: target.Image, Who: who})
	who.Image = target.Image
	auditLog.Record(res, who, p.Digest())

	out := checkOutput{Action: res.Action, Policy: p.Digest(), Who: o.who,
		Results: []gate.Result{res}}
	return report(out, o.jsonOut, stdout, stderr), nil
}

// decideBundleWithoutCheck gives an unreadable bundle the policy's no-decision action.
func decideBundleWithoutCheck(p *policy.Policy, o *hookOptions, who policy.Subject,
	cause error, stdout, stderr io.Writer) (int, error) {
	res := undecided(p, who, false, cause.Error())
	auditLog := openAudit(o.auditPath, p.AuditLog, o.logger(stderr))
	defer auditLog.Close()
	auditLog.Record(res, who, p.Digest())
	out := checkOutput{Action: res.Action, Policy: p.Digest(), Who: o.who,
		Results: []gate.Result{res}}
	return report(out, o.jsonOut, stdout, stderr), nil
}

// defaultHookTimeout is the hook timeout install-bundle writes by default: above the
// policy's default timeouts.wait (2 minutes), so that the gate decides before the runtime
// kills the hook, and finite, so that a hung hook does not hang the launch.
const defaultHookTimeout = 300

// installOptions are the flags of install-bundle.
type installOptions struct {
	stage, self, policyPath string
	timeout                 int
	trust                   bool
}

func installFlags(fs *flag.FlagSet) *installOptions {
	o := &installOptions{}
	fs.StringVar(&o.stage, "stage", hook.StageCreateRuntime, "hook `stage`: "+
		hook.StageCreateRuntime+" or "+hook.StagePrestart+" (for runtimes before OCI 1.0.2)")
	fs.StringVar(&o.self, "path", "", "the scan-gate `binary` the runtime runs (default: "+
		"this one)")
	fs.StringVar(&o.policyPath, "policy", "", "policy `file` the hook reads (default "+
		defaultPolicyPath+")")
	fs.IntVar(&o.timeout, "timeout", defaultHookTimeout, "`seconds` the runtime lets the hook "+
		"run (0: no limit); keep it above the policy's timeouts.wait")
	fs.BoolVar(&o.trust, "trust-annotation", false, "the hook checks the image named by the "+
		hook.ImageAnnotation+" annotation")
	return o
}

// printInstallFlags prints the flags of install-bundle, for 'scan-gate help hook'.
func printInstallFlags(out io.Writer) {
	fs := flag.NewFlagSet("install-bundle", flag.ContinueOnError)
	fs.SetOutput(out)
	installFlags(fs)
	fmt.Fprintln(out, "Flags of hook install-bundle:")
	fs.PrintDefaults()
}

// runInstallBundle adds the scan-gate hook to a bundle's config.json.
func runInstallBundle(args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlagSet("hook", stderr)
	fs.Usage = func() { printInstallFlags(stderr) }
	o := installFlags(fs)
	if err := fs.Parse(args); err != nil {
		return exitUsage, badConfig(err)
	}
	if fs.NArg() != 1 {
		return exitUsage, usageError("want one bundle directory (see 'scan-gate help hook')")
	}
	if o.timeout < 0 {
		return exitUsage, usageError("--timeout %d: want seconds, 0 for no limit", o.timeout)
	}
	self := o.self
	if self == "" {
		exe, err := os.Executable()
		if err != nil {
			return exitBlocked, fmt.Errorf("finding scan-gate's own path: %w", err)
		}
		self = exe
	}
	self, err := filepath.Abs(self)
	if err != nil {
		return exitUsage, badConfig(err)
	}

	h := specs.Hook{Path: self, Args: []string{"scan-gate", "hook"}}
	if o.policyPath != "" {
		abs, err := filepath.Abs(o.policyPath)
		if err != nil {
			return exitUsage, badConfig(err)
		}
		h.Args = append(h.Args, "--policy", abs)
	}
	if o.trust {
		h.Args = append(h.Args, "--trust-annotation")
	}
	if o.timeout > 0 {
		h.Timeout = &o.timeout
	}
	config := filepath.Join(fs.Arg(0), "config.json")
	changed, err := hook.Install(fs.Arg(0), o.stage, h)
	if errors.Is(err, hook.ErrStage) || errors.Is(err, os.ErrNotExist) {
		return exitUsage, badConfig(err)
	}
	if err != nil {
		return exitBlocked, err
	}
	if !changed {
		fmt.Fprintf(stdout, "the %s hook is already in %s: %s %s\n", o.stage, config, self,
			strings.Join(h.Args[1:], " "))
		return exitProceed, nil
	}
	fmt.Fprintf(stdout, "added the %s hook to %s: %s %s\n", o.stage, config, self,
		strings.Join(h.Args[1:], " "))
	return exitProceed, nil
}

const hookHelp = `Usage: scan-gate hook [flags]              (as an OCI hook: the state on stdin)
       scan-gate hook check-bundle [flags] BUNDLE [-- RUNTIME ARGS...]
       scan-gate hook install-bundle [flags] BUNDLE

As an OCI runtime hook (createRuntime or prestart), reads the container state from stdin
and the bundle's config.json, checks the bundle's root filesystem as a sandbox directory
(or, with --trust-annotation, the image file named by the org.scan-gate.image annotation),
and exits 1 to stop the container when it is blocked; the message is on stderr.

A bundle the hook cannot trust gets the policy's no_decision action: a config.json that is
a link, FIFO, device or over 4 MiB, a bundle, config.json or root filesystem that anyone but
root or the running user could change, or a root filesystem that is not the one the runtime
mounted for the container's process (config.json changed after the runtime read it).

check-bundle checks a bundle the same way and, when it may proceed, runs the runtime
command after -- in its place (for Slurm's oci.conf). install-bundle adds the hook to a
bundle's config.json (runc and crun read hooks only from there), first at its stage and
nowhere else, with a timeout; its flags follow those of the hook.`
