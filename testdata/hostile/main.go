// Command hostile builds the hostile images of the hardening tests into a directory, by
// default a fresh temporary one: images crafted to hang, fool or escape the gate (see
// testimage.HostileKinds). None is checked in; the testscript scripts
// testdata/script/hostile_*.txtar build the same images with the `hostile` command.
//
//	go run ./testdata/hostile [-o DIR] [-outside DIR] [KIND...]
//
// Links and planted executables in the images point at the -outside directory (default
// DIR/outside), where a gate that is fooled would leave files.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/scan-gate/scan-gate/internal/testimage"
)

func main() {
	out := flag.String("o", "", "output `directory` (default: a new temporary directory)")
	outside := flag.String("outside", "", "the host `directory` the images' links point "+
		"at (default: DIR/outside)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: hostile [-o DIR] [-outside DIR] "+
			"[KIND...]\n\nKinds: %v\n\nFlags:\n", testimage.HostileKinds)
		flag.PrintDefaults()
	}
	flag.Parse()
	if err := run(*out, *outside, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "hostile:", err)
		os.Exit(1)
	}
}

func run(out, outside string, kinds []string) error {
	if out == "" {
		dir, err := os.MkdirTemp("", "scan-gate-hostile-")
		if err != nil {
			return err
		}
		out = dir
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	out, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	if outside == "" {
		outside = filepath.Join(out, "outside")
	}
	if outside, err = filepath.Abs(outside); err != nil {
		return err
	}
	// The scanning user could write here if a link led it here: that is what is checked.
	if err := os.MkdirAll(outside, 0o777); err != nil {
		return err
	}
	if err := os.Chmod(outside, 0o777); err != nil {
		return err
	}
	if len(kinds) == 0 {
		kinds = testimage.HostileKinds
	}
	for _, kind := range kinds {
		path := filepath.Join(out, kind+".sif")
		if err := testimage.Hostile(context.Background(), kind, path, outside); err != nil {
			return err
		}
		if err := os.Chmod(path, 0o644); err != nil {
			return err
		}
		fmt.Println(path)
	}
	return nil
}
