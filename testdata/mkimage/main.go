// Command mkimage writes the demo and test images: real SIF files holding a Debian 12 tree
// whose dpkg database lists package versions that real advisories affect (vulnerable.sif)
// or that carry the fixes (patched.sif).
//
//	go run ./testdata/mkimage -o DIR
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
	out := flag.String("o", ".", "output `directory`")
	flag.Parse()
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
	images := []struct {
		name string
		pkgs []testimage.Package
	}{
		{"vulnerable.sif", testimage.Vulnerable},
		{"patched.sif", testimage.Patched},
	}
	for _, im := range images {
		path := filepath.Join(*out, im.name)
		if err := testimage.Build(context.Background(), path, im.pkgs); err != nil {
			fmt.Fprintln(os.Stderr, "mkimage:", err)
			os.Exit(1)
		}
		os.Chmod(path, 0o644)
		fmt.Println(path)
	}
}
