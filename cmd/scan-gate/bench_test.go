package main

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/scan-gate/scan-gate/internal/testimage"
)

// BenchmarkCheckHit runs the whole `scan-gate check` of a cached image in this process, for
// a CPU profile of the hit path (bench/run):
//
//	go test -run '^$' -bench CheckHit -cpuprofile hit.pprof ./cmd/scan-gate
func BenchmarkCheckHit(b *testing.B) {
	trivy := requireTrivy(b)
	dir := reachableTempDir(b)
	db := filepath.Join(dir, "trivy-db")
	if err := buildFixtureDB(db, "2026-11-30T00:00:00Z"); err != nil {
		b.Fatal(err)
	}
	img := filepath.Join(dir, "image.sif")
	if err := testimage.Build(b.Context(), img, testimage.Vulnerable); err != nil {
		b.Fatal(err)
	}
	os.Chmod(img, 0o644)
	if err := writeBasePolicy(dir, trivy, db); err != nil {
		b.Fatal(err)
	}
	args := []string{"check", "--policy", filepath.Join(dir, "policy.toml"), img}
	if status := run(args, io.Discard, io.Discard); status != exitBlocked {
		b.Fatalf("first check exited %d", status)
	}

	for b.Loop() {
		if status := run(args, io.Discard, io.Discard); status != exitBlocked {
			b.Fatalf("check exited %d", status)
		}
	}
}
