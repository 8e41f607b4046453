package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"syscall"

	"github.com/scan-gate/scan-gate/gate"
	"github.com/scan-gate/scan-gate/gate/audit"
	"github.com/scan-gate/scan-gate/gate/extract"
	"github.com/scan-gate/scan-gate/gate/setup"
	"github.com/scan-gate/scan-gate/gate/slurm"
	"github.com/scan-gate/scan-gate/internal/proc"
	"github.com/scan-gate/scan-gate/policy"
)

// defaultPolicyPath is read when --policy is not given; a missing file means defaults.
const defaultPolicyPath = "/etc/scan-gate/policy.toml"

// common are the flags every command shares.
type common struct {
	policyPath string
	slurmConf  string
	verbose    bool
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.policyPath, "policy", "", "policy `file` (default "+defaultPolicyPath+")")
	fs.StringVar(&c.slurmConf, "slurm-conf", "", "slurm.conf `file` for squeue, scontrol "+
		"and scancel (default: theirs)")
	fs.BoolVar(&c.verbose, "v", false, "print details of each step on stderr")
}

// loadPolicy reads the named policy, or the default one, or built-in defaults when the
// default file does not exist.
func (c *common) loadPolicy() (*policy.Policy, error) {
	path := c.policyPath
	if path == "" {
		if _, err := os.Stat(defaultPolicyPath); errors.Is(err, fs.ErrNotExist) {
			return policy.Default(), nil
		}
		path = defaultPolicyPath
	}
	p, err := policy.Load(path)
	switch {
	case err == nil:
		return p, nil
	case strings.HasPrefix(err.Error(), "reading policy"):
		// Opening and reading the file: policy.Load names the operation itself.
		return nil, err
	default:
		// A parse error names only the file and line.
		return nil, fmt.Errorf("reading policy: %w", err)
	}
}

// tools runs the Slurm commands with --slurm-conf, or the SLURM_CONF this process got
// (the plugin passes on slurmstepd's own).
func (c *common) tools() slurm.Tools {
	conf := c.slurmConf
	if conf == "" {
		conf = os.Getenv("SLURM_CONF")
	}
	return slurm.Tools{Conf: conf}
}

// logger is silent unless -v is given.
func (c *common) logger(stderr io.Writer) *slog.Logger {
	if !c.verbose {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// checker assembles the gate and the audit log. A gate that cannot be set up still gives
// every image the policy's no-decision verdict. The returned function closes the log.
func (c *common) checker(p *policy.Policy, stderr io.Writer) (*slurm.Checker, func()) {
	log := openAudit(p.AuditLog, stderr)
	digest := p.Digest()
	checker := &slurm.Checker{Policy: p, Record: func(res gate.Result, who policy.Subject) {
		log.Record(res, who, digest)
	}}
	g, err := setup.New(p)
	if err != nil {
		checker.Unavailable = fmt.Errorf("setting up the gate: %w", err)
		fmt.Fprintf(stderr, "spank-helper: %v\n", checker.Unavailable)
		return checker, func() { log.Close() }
	}
	g.Background = c.backgroundRescan()
	extract.Sweep(g.Extract.ScratchDir)
	checker.Gate = g
	return checker, func() { log.Close() }
}

// openAudit opens the audit log; a log that cannot be opened is reported and the decision
// still stands.
func openAudit(path string, stderr io.Writer) *audit.Log {
	if path == "" || path == "-" {
		return audit.New(io.Discard)
	}
	l, err := audit.Open(path)
	if err != nil {
		fmt.Fprintf(stderr, "spank-helper: warning: %v; decisions are not audited\n", err)
		return audit.New(io.Discard)
	}
	return l
}

// backgroundRescan starts `spank-helper rescan` detached: its own session, no inherited
// output, so that the launch does not wait for it.
func (c *common) backgroundRescan() func(string) error {
	return func(image string) error {
		self, err := os.Executable()
		if err != nil {
			return err
		}
		args := []string{"rescan"}
		if c.policyPath != "" {
			args = append(args, "--policy", c.policyPath)
		}
		cmd := exec.Command(self, append(args, "--", image)...)
		cmd.Env = []string{"PATH=" + proc.SafePath}
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			return err
		}
		return cmd.Process.Release()
	}
}

// groupNames names the groups of gids; a group without a name is given by its number.
func groupNames(gids []uint32) []string {
	var names []string
	for _, gid := range gids {
		name := strconv.FormatUint(uint64(gid), 10)
		if g, err := user.LookupGroupId(name); err == nil {
			name = g.Name
		}
		if !contains(names, name) {
			names = append(names, name)
		}
	}
	return names
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// needsJobRecord reports whether the policy decides anything by partition or account, so
// that a launch cannot be decided without the job record.
func needsJobRecord(p *policy.Policy) bool {
	for _, s := range p.Scopes {
		if len(s.Match.Partitions) > 0 || len(s.Match.Accounts) > 0 {
			return true
		}
	}
	return false
}

// runRescan scans one image now and stores the result.
func runRescan(args []string, stderr io.Writer) (int, error) {
	fs := flag.NewFlagSet("rescan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c common
	c.register(fs)
	if err := fs.Parse(args); err != nil {
		return exitUsage, err
	}
	if fs.NArg() != 1 {
		return exitUsage, errors.New("give one image")
	}
	p, err := c.loadPolicy()
	if err != nil {
		return exitUsage, err
	}
	g, err := setup.New(p)
	if err != nil {
		return exitError, fmt.Errorf("setting up the gate: %w", err)
	}
	extract.Sweep(g.Extract.ScratchDir)
	log := openAudit(p.AuditLog, stderr)
	defer log.Close()
	res := g.Check(context.Background(), gate.Request{Image: fs.Arg(0), Rescan: true})
	log.Record(res, policy.Subject{Image: res.Image}, p.Digest())
	if res.Error != "" {
		return exitError, fmt.Errorf("rescanning %s: %s", fs.Arg(0), res.Error)
	}
	return exitOK, nil
}
