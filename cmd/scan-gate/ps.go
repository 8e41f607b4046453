package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os/user"
	"strconv"
	"text/tabwriter"

	"github.com/scan-gate/scan-gate/gate/watch"
)

type psOptions struct {
	jsonOut bool
}

func psFlags(fs *flag.FlagSet) *psOptions {
	o := &psOptions{}
	fs.BoolVar(&o.jsonOut, "json", false, "print the list as JSON")
	return o
}

// runPs lists the processes running in a container root.
func runPs(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("ps", stderr)
	o := psFlags(fs)
	if err := fs.Parse(args); err != nil {
		return badConfig(err)
	}
	if fs.NArg() > 0 {
		return usageError("unexpected argument %q", fs.Arg(0))
	}
	entries, err := watch.List()
	if err != nil {
		return err
	}
	if o.jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if entries == nil {
			entries = []watch.Entry{}
		}
		return enc.Encode(entries)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PID\tUSER\tJOB\tROOT\tIMAGE")
	names := map[int]string{}
	for _, e := range entries {
		name, ok := names[e.UID]
		if !ok {
			name = strconv.Itoa(e.UID)
			if u, err := user.LookupId(name); err == nil {
				name = u.Username
			}
			names[e.UID] = name
		}
		root := "directory"
		if e.Root.FSType != "" {
			root = e.Root.FSType + " " + e.Root.Source
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", e.PID, name, orDash(e.Job), root,
			orDash(e.Root.Image))
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

const psHelp = `Usage: scan-gate ps [--json]

Lists the processes whose root directory is not the host's (as /proc/PID/root shows), with
their user, Slurm job id (from the cgroup or environment) and root filesystem, and the
image file when the root is a loop-mounted squashfs. Run as root to see every user's.`
