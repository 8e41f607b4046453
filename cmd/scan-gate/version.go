package main

import (
	"context"
	"fmt"
	"io"
	"runtime/debug"
	"time"

	"github.com/scan-gate/scan-gate/gate/setup"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func buildVersion() string {
	if version != "" {
		return version
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" {
		return info.Main.Version
	}
	return "devel"
}

func runVersion(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", stderr)
	var c common
	c.register(fs)
	if err := fs.Parse(args); err != nil {
		return badConfig(err)
	}
	fmt.Fprintf(stdout, "scan-gate %s\n", buildVersion())
	p, err := c.loadPolicy()
	if err != nil {
		return err
	}
	backend, err := setup.NewBackend(p, "")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id, err := backend.Identify(ctx)
	if err != nil {
		return fmt.Errorf("identifying scanner: %w", err)
	}
	db := "unknown"
	if !id.DBUpdatedAt.IsZero() {
		db = id.DBUpdatedAt.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(stdout, "scanner %s %s\nvulnerability DB updated %s\npolicy %s\n",
		id.Name, id.Version, db, p.Digest())
	return nil
}
