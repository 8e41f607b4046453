// Command grypedb writes a small Grype vulnerability DB (schema v6) for tests:
// DIR/6/vulnerability.db and DIR/6/import.json, holding the same real Debian 12 advisories
// as the Trivy fixture DB (the table in testdata/trivydb/advisories).
//
// Usage, from this directory:
//
//	go run . -o DIR [-built 2026-11-30T00:00:00Z]
//
// The DB is built by grype's own build pipeline (grype/db.Build), the one the published DBs
// come from: the advisories are written as the records of vunnel's "debian" provider, one
// per CVE in namespace "debian:12", keyed by source package, and the OS transformer turns
// them into v6 rows. -built sets the DB's build timestamp, which Grype reports as the DB
// date and checks against its maximum age (run Grype with GRYPE_DB_VALIDATE_AGE=false on
// an old fixture). The grype module here must be the version of the grype binary the tests
// drive: another version would want to rehydrate the DB, that is write to it.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/anchore/grype/grype/db"
	"github.com/anchore/grype/grype/db/provider"
	v6 "github.com/anchore/grype/grype/db/v6"
	"github.com/spf13/afero"
)

// defaultBuilt is the fixed DB date used when -built is not given, so that repeated runs
// describe the same DB. It is the Trivy fixture's default date.
const defaultBuilt = "2026-06-01T00:00:00Z"

func main() {
	out := flag.String("o", "", "output `dir`; the DB is written to DIR/6")
	built := flag.String("built", defaultBuilt, "the DB's build timestamp, RFC 3339")
	flag.Parse()

	if err := run(*out, *built); err != nil {
		fmt.Fprintln(os.Stderr, "grypedb:", err)
		os.Exit(1)
	}
}

func run(out, built string) error {
	if out == "" || flag.NArg() != 0 {
		return errors.New("usage: go run . -o DIR [-built RFC3339]")
	}
	builtAt, err := time.Parse(time.RFC3339, built)
	if err != nil {
		return fmt.Errorf("parsing -built: %w", err)
	}
	builtAt = builtAt.UTC().Round(time.Second)

	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", out, err)
	}
	work, err := os.MkdirTemp(out, ".grypedb-")
	if err != nil {
		return fmt.Errorf("creating a work dir: %w", err)
	}
	defer os.RemoveAll(work)

	state, err := writeProviderWorkspace(filepath.Join(work, "input"), builtAt)
	if err != nil {
		return fmt.Errorf("writing the debian provider's records: %w", err)
	}
	dbDir := filepath.Join(work, "6")
	if err := build(dbDir, state, builtAt); err != nil {
		return fmt.Errorf("building the DB: %w", err)
	}

	// Swap the finished DB into place, so a reader never sees half a DB.
	final := filepath.Join(out, "6")
	if err := os.RemoveAll(final); err != nil {
		return fmt.Errorf("removing old %s: %w", final, err)
	}
	if err := os.Rename(dbDir, final); err != nil {
		return fmt.Errorf("moving the DB to %s: %w", final, err)
	}
	return openUp(final)
}

// build runs grype's build pipeline, then sets the build timestamp (grype's writer stamps
// the current time), then hydrates the DB (its indexes) and writes import.json with the
// digest of the finished file, as `grype db import` would.
func build(dbDir string, state *provider.State, builtAt time.Time) error {
	err := db.Build(db.BuildConfig{
		SchemaVersion: v6.ModelVersion,
		Directory:     dbDir,
		States:        provider.States{*state},
		Timestamp:     builtAt,
		Hydrate:       false,
		BatchSize:     100,
	})
	if err != nil {
		return err
	}

	if err := setBuildTimestamp(filepath.Join(dbDir, v6.VulnerabilityDBFileName),
		builtAt); err != nil {
		return err
	}
	if err := v6.Hydrater()(dbDir); err != nil {
		return fmt.Errorf("hydrating: %w", err)
	}
	if _, err := v6.WriteImportMetadata(afero.NewOsFs(), dbDir,
		"scan-gate testdata/grypedb"); err != nil {
		return fmt.Errorf("writing import metadata: %w", err)
	}
	return nil
}

func setBuildTimestamp(dbFile string, builtAt time.Time) error {
	gdb, err := v6.NewLowLevelDB(dbFile, false, true, false)
	if err != nil {
		return fmt.Errorf("opening %s: %w", dbFile, err)
	}
	sqlDB, err := gdb.DB()
	if err != nil {
		return fmt.Errorf("opening %s: %w", dbFile, err)
	}
	defer sqlDB.Close()

	res := gdb.Model(&v6.DBMetadata{}).Where("true").Update("build_timestamp", builtAt)
	if res.Error != nil {
		return fmt.Errorf("setting the build timestamp: %w", res.Error)
	}
	if res.RowsAffected != 1 {
		return fmt.Errorf("setting the build timestamp: %d metadata rows, want 1",
			res.RowsAffected)
	}
	return nil
}

// openUp makes the DB readable by everyone: scanners run as an unprivileged user.
func openUp(dir string) error {
	return filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if info.IsDir() {
			mode = 0o755
		}
		return os.Chmod(path, mode)
	})
}
