// Command trivydb writes a small Trivy vulnerability DB for tests: DIR/db/trivy.db and
// DIR/db/metadata.json, holding the real Debian 12 advisories listed in advisories/advisories.go.
//
// Usage, from this directory:
//
//	go run . -o DIR [-updated 2026-11-30T00:00:00Z]
//
// The DB is written with trivy-db's own pkg/db, in the layout Trivy reads: bucket
// "debian 12" -> source package -> CVE -> advisory, "vulnerability" -> CVE -> details, and
// "data-source" -> "debian 12" -> the Debian Security Tracker. -updated sets the metadata's
// UpdatedAt, which scan-gate reports as the DB date.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/aquasecurity/trivy-db/pkg/db"
	"github.com/aquasecurity/trivy-db/pkg/metadata"
	"github.com/aquasecurity/trivy-db/pkg/types"
	"github.com/aquasecurity/trivy-db/pkg/vulnsrc/vulnerability"
	bolt "go.etcd.io/bbolt"

	"github.com/scan-gate/scan-gate/testdata/trivydb/advisories"
)

// release is the Trivy DB bucket the advisories belong to.
const release = "debian 12"

// defaultUpdated is the fixed DB date used when -updated is not given, so that repeated runs
// describe the same DB.
const defaultUpdated = "2026-06-01T00:00:00Z"

func main() {
	out := flag.String("o", "", "output `dir`; the DB is written to DIR/db")
	updated := flag.String("updated", defaultUpdated, "the DB's UpdatedAt, RFC 3339")
	flag.Parse()

	if err := run(*out, *updated); err != nil {
		fmt.Fprintln(os.Stderr, "trivydb:", err)
		os.Exit(1)
	}
}

func run(out, updated string) error {
	if out == "" || flag.NArg() != 0 {
		return errors.New("usage: go run . -o DIR [-updated RFC3339]")
	}
	updatedAt, err := time.Parse(time.RFC3339, updated)
	if err != nil {
		return fmt.Errorf("parsing -updated: %w", err)
	}

	dbDir := filepath.Join(out, "db")
	if err := os.MkdirAll(dbDir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dbDir, err)
	}
	// Start from nothing: bbolt would otherwise add to an existing file.
	for _, name := range []string{db.Path(dbDir), metadata.Path(dbDir)} {
		if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing old %s: %w", name, err)
		}
	}

	if err := writeDB(dbDir); err != nil {
		return fmt.Errorf("writing %s: %w", db.Path(dbDir), err)
	}
	if err := writeMetadata(dbDir, updatedAt.UTC()); err != nil {
		return fmt.Errorf("writing %s: %w", metadata.Path(dbDir), err)
	}
	// db.Init creates the directory 0700; scanners may run as another user.
	if err := os.Chmod(dbDir, 0o755); err != nil {
		return fmt.Errorf("opening up %s: %w", dbDir, err)
	}
	return nil
}

// writeDB fills a fresh trivy.db with the advisories, the way trivy-db's Debian source does:
// advisories go through the "advisory-detail" staging bucket into the release bucket.
func writeDB(dbDir string) (err error) {
	if err := db.Init(dbDir); err != nil {
		return err
	}
	defer func() { err = errors.Join(err, db.Close()) }()

	dbc := db.Config{}
	err = dbc.BatchUpdate(func(tx *bolt.Tx) error {
		for _, adv := range advisories.Debian12 {
			if err := putAdvisory(dbc, tx, adv); err != nil {
				return fmt.Errorf("putting %s: %w", adv.ID, err)
			}
		}
		return dbc.PutDataSource(tx, release, types.DataSource{
			ID:   vulnerability.Debian,
			Name: "Debian Security Tracker",
			URL:  "https://salsa.debian.org/security-tracker-team/security-tracker",
		})
	})
	if err != nil {
		return err
	}
	return dbc.DeleteAdvisoryDetailBucket()
}

func putAdvisory(dbc db.Config, tx *bolt.Tx, adv advisories.Advisory) error {
	severity, err := types.NewSeverity(adv.Severity)
	if err != nil {
		return err
	}

	detail := types.Advisory{FixedVersion: adv.Fixed}
	if err := dbc.PutAdvisoryDetail(tx, adv.ID, adv.Source, []string{release}, detail); err != nil {
		return err
	}
	if err := dbc.SaveAdvisoryDetails(tx, adv.ID); err != nil {
		return err
	}

	return dbc.PutVulnerability(tx, adv.ID, types.Vulnerability{
		Title:          adv.Title,
		Severity:       adv.Severity,
		VendorSeverity: types.VendorSeverity{vulnerability.NVD: severity},
		CVSS: types.VendorCVSS{
			vulnerability.NVD: {V3Vector: adv.Vector, V3Score: adv.CVSS},
		},
	})
}

// writeMetadata writes metadata.json. NextUpdate lies far ahead so that no Trivy ever wants
// to replace the DB; DownloadedAt is set because Trivy treats a zero one as a broken download.
func writeMetadata(dbDir string, updatedAt time.Time) error {
	return metadata.NewClient(dbDir).Update(metadata.Metadata{
		Version:      db.SchemaVersion,
		NextUpdate:   updatedAt.AddDate(100, 0, 0),
		UpdatedAt:    updatedAt,
		DownloadedAt: updatedAt,
	})
}
