package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"strings"
	"syscall"
	"time"

	"github.com/scan-gate/scan-gate/gate"
	"github.com/scan-gate/scan-gate/gate/audit"
	"github.com/scan-gate/scan-gate/gate/setup"
	"github.com/scan-gate/scan-gate/policy"
)

type checkOptions struct {
	common
	jsonOut   bool
	auditPath string
	who       policy.Subject
	groups    string
}

func checkFlags(fs *flag.FlagSet) *checkOptions {
	o := &checkOptions{}
	o.register(fs)
	fs.BoolVar(&o.jsonOut, "json", false, "print the full verdict of every image as JSON "+
		"on stdout")
	fs.StringVar(&o.auditPath, "audit-log", "", "append audit lines to `file` (default: "+
		"the policy's [audit] log)")
	fs.StringVar(&o.who.User, "user", "", "`name` of the user launching (default: the "+
		"caller)")
	fs.StringVar(&o.groups, "groups", "", "comma-separated `groups` of the launching user")
	fs.StringVar(&o.who.JobID, "job", "", "Slurm job `id`")
	fs.StringVar(&o.who.Partition, "partition", "", "Slurm `partition` of the job")
	fs.StringVar(&o.who.Account, "account", "", "Slurm `account` of the job")
	return o
}

// checkOutput is what --json prints.
type checkOutput struct {
	Action  policy.Action  `json:"action"`
	Policy  string         `json:"policy_digest"`
	Results []gate.Result  `json:"results"`
	Who     policy.Subject `json:"who"`
}

func runCheck(args []string, stdout, stderr io.Writer, rescan bool) (int, error) {
	started := time.Now()
	name := "check"
	if rescan {
		name = "rescan"
	}
	fs := newFlagSet(name, stderr)
	o := checkFlags(fs)
	images, err := parseArgs(fs, args)
	if err != nil {
		return exitUsage, err
	}
	if len(images) == 0 {
		return exitUsage, usageError("no image given (see 'scan-gate help check')")
	}
	p, err := o.loadPolicy()
	if err != nil {
		return exitUsage, err
	}
	log := o.logger(stderr)
	o.fillWho()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT,
		syscall.SIGHUP)
	defer stop()

	g, err := setup.New(p)
	if errors.Is(err, setup.ErrConfig) {
		return exitUsage, badConfig(err)
	}
	if err != nil {
		return decideWithoutGate(p, o, images, stdout, stderr, err)
	}
	if rescan {
		g.Background = nil
	} else {
		g.Background = backgroundRescan(o)
	}
	if n, _ := g.Extract.Sweep(); n > 0 {
		log.Debug("swept scratch directories of killed runs", "count", n)
	}

	auditLog := openAudit(o.auditPath, p.AuditLog, log)
	defer auditLog.Close()

	out := checkOutput{Action: policy.Allow, Policy: p.Digest(), Who: o.who}
	for _, img := range images {
		req := gate.Request{Image: img, Who: o.who, Rescan: rescan}
		if rescan {
			req.NotBefore = started
		}
		res := g.Check(ctx, req)
		log.Debug("checked", "image", img, "action", res.Action, "cache", res.Cache,
			"key", res.Key, "hashed_bytes", res.HashedBytes, "error", res.Error)
		who := o.who
		who.Image = img
		if rescan {
			auditLog.RecordRescan(res, who, out.Policy)
		} else {
			auditLog.Record(res, who, out.Policy)
		}
		out.Results = append(out.Results, res)
		out.Action = policy.Stricter(out.Action, res.Action)
	}
	return report(out, o.jsonOut, stdout, stderr), nil
}

// report prints the verdicts and returns the exit status.
func report(out checkOutput, jsonOut bool, stdout, stderr io.Writer) int {
	if jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(out)
	}
	for _, res := range out.Results {
		if res.Action != policy.Allow && res.Action != policy.Audit {
			fmt.Fprintln(stderr, res.Message)
		}
	}
	if out.Action.Proceeds() {
		return exitProceed
	}
	return exitBlocked
}

// decideWithoutGate handles a gate that could not even be set up (no scanner, unusable
// cache): every image gets the policy's no-decision action.
func decideWithoutGate(p *policy.Policy, o *checkOptions, images []string, stdout,
	stderr io.Writer, cause error) (int, error) {
	out := checkOutput{Action: policy.Allow, Policy: p.Digest(), Who: o.who}
	auditLog := openAudit(o.auditPath, p.AuditLog, o.logger(stderr))
	defer auditLog.Close()
	for _, img := range images {
		who := o.who
		who.Image = img
		v := p.NoDecision(who, false, cause.Error())
		res := gate.Result{Image: img, Action: v.Action, Verdict: v, Cache: gate.CacheNone,
			Message: v.Message(img), Error: cause.Error()}
		auditLog.Record(res, who, out.Policy)
		out.Results = append(out.Results, res)
		out.Action = policy.Stricter(out.Action, res.Action)
	}
	return report(out, o.jsonOut, stdout, stderr), nil
}

func (o *checkOptions) fillWho() {
	if o.who.User == "" {
		if u, err := user.Current(); err == nil {
			o.who.User = u.Username
		}
	}
	for _, g := range strings.Split(o.groups, ",") {
		if g = strings.TrimSpace(g); g != "" {
			o.who.Groups = append(o.who.Groups, g)
		}
	}
}

// openAudit opens the audit log; a log that cannot be opened is reported once and the
// decision still stands (the launch is not held hostage to the log).
func openAudit(flagPath, policyPath string, log interface{ Warn(string, ...any) }) *audit.Log {
	path := flagPath
	if path == "" {
		path = policyPath
	}
	if path == "" || path == "-" {
		return audit.New(io.Discard)
	}
	l, err := audit.Open(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "scan-gate: warning: %v; decisions are not audited\n", err)
		return audit.New(io.Discard)
	}
	return l
}

// backgroundRescan starts `scan-gate rescan` detached from the caller: its own session, no
// inherited output, so the launch does not wait for it.
func backgroundRescan(o *checkOptions) func(string) error {
	return func(img string) error {
		self, err := os.Executable()
		if err != nil {
			return err
		}
		args := []string{"rescan"}
		if o.policyPath != "" {
			args = append(args, "--policy", o.policyPath)
		}
		if o.cacheDir != "" {
			args = append(args, "--cache-dir", o.cacheDir)
		}
		if o.auditPath != "" {
			args = append(args, "--audit-log", o.auditPath)
		}
		args = append(args, "--user", o.who.User, "--", img)
		cmd := exec.Command(self, args...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
		// The QScanner backend's access token, when it comes from the environment.
		if token, ok := os.LookupEnv("QUALYS_ACCESS_TOKEN"); ok {
			cmd.Env = append(cmd.Env, "QUALYS_ACCESS_TOKEN="+token)
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			return err
		}
		return cmd.Process.Release()
	}
}
