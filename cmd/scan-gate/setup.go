package main

import (
	"errors"
	"flag"
	"io"
	"io/fs"
	"log/slog"
	"os"

	"github.com/scan-gate/scan-gate/policy"
)

// defaultPolicyPath is read when --policy is not given; a missing file means defaults.
const defaultPolicyPath = "/etc/scan-gate/policy.toml"

// common are the flags every command that reads the policy shares.
type common struct {
	policyPath string
	cacheDir   string
	verbose    bool
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.policyPath, "policy", "", "policy `file` (default "+defaultPolicyPath+")")
	fs.StringVar(&c.cacheDir, "cache-dir", "", "node cache `dir` (default: the policy's "+
		"[cache] dir)")
	fs.BoolVar(&c.verbose, "v", false, "print details of each step on stderr")
}

// loadPolicy reads the named policy, or the default one, or built-in defaults when the
// default file does not exist. Errors are usage errors: they exit 2.
func (c *common) loadPolicy() (*policy.Policy, error) {
	path := c.policyPath
	if path == "" {
		if _, err := os.Stat(defaultPolicyPath); errors.Is(err, fs.ErrNotExist) {
			p := policy.Default()
			c.applyOverrides(p)
			return p, nil
		}
		path = defaultPolicyPath
	}
	p, err := policy.Load(path)
	if err != nil {
		return nil, badConfig(err)
	}
	c.applyOverrides(p)
	return p, nil
}

func (c *common) applyOverrides(p *policy.Policy) {
	if c.cacheDir != "" {
		p.CacheDir = c.cacheDir
	}
}

// logger is silent unless -v is given.
func (c *common) logger(stderr io.Writer) *slog.Logger {
	if !c.verbose {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
