package main

import (
	"fmt"
	"io"
	"os"

	"github.com/scan-gate/scan-gate/gate/setup"
)

func runPolicy(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "check" {
		return usageError("want 'scan-gate policy check [FILE]'")
	}
	fs := newFlagSet("policy", stderr)
	var c common
	c.register(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return badConfig(err)
	}
	switch fs.NArg() {
	case 0:
	case 1:
		c.policyPath = fs.Arg(0)
	default:
		return usageError("policy check takes at most one file")
	}
	p, err := c.loadPolicy()
	if err != nil {
		return err
	}
	if os.Geteuid() == 0 {
		if _, err := setup.ScanCredential(p); err != nil {
			return badConfig(err)
		}
	}
	source := c.policyPath
	if source == "" {
		source = defaultPolicyPath + " (or built-in defaults where it does not exist)"
	}
	fmt.Fprintf(stdout, "# policy: %s\n# digest: %s\n", source, p.Digest())
	return p.WriteEffective(stdout)
}
