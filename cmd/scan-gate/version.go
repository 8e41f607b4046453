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
	if err != nil && id.Version == "" {
		fmt.Fprintf(stdout, "policy %s\n", p.Digest())
		return fmt.Errorf("identifying scanner: %w", err)
	}
	fmt.Fprintf(stdout, "scanner %s %s\n", id.Name, id.Version)
	if err != nil {
		// The scanner is there but its DB is not: say so plainly, nothing can be scanned.
		fmt.Fprintf(stdout, "vulnerability DB missing or unreadable\npolicy %s\n", p.Digest())
		return fmt.Errorf("the %s vulnerability DB is missing or unreadable, so no image "+
			"can be scanned (check [scanner.%s] db_dir): %w", id.Name, id.Name, err)
	}
	db := "unknown"
	if !id.DBUpdatedAt.IsZero() {
		db = id.DBUpdatedAt.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(stdout, "vulnerability DB updated %s\npolicy %s\n", db, p.Digest())
	return nil
}
