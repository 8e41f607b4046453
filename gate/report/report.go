// Package report writes what `scan-gate scan` leaves for one image: the gate's verdict as
// JSON, a SARIF file of the normalized findings made by the gate, and (written by the
// scanner backends during the scan) the scanner's own reports and SBOMs.
package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/scan-gate/scan-gate/gate"
	"github.com/scan-gate/scan-gate/policy"
)

// File names in an image's report dir.
const (
	VerdictFile = "verdict.json"
	SARIFFile   = "findings.sarif"
	// ScannerDir holds the scanner's own files; it is left out when there are none (the
	// result came from the cache).
	ScannerDir = "scanner"
)

// Verdict is the content of verdict.json.
type Verdict struct {
	Image  string `json:"image"`
	Policy string `json:"policy_digest"`
	// Scanned is true when findings were had (scanned now or taken from the cache); false
	// when no decision could be made.
	Scanned bool `json:"scanned"`
	// ScannerFiles are the files in ScannerDir, empty for a result from the cache.
	ScannerFiles []string    `json:"scanner_files"`
	Result       gate.Result `json:"result"`
}

// NewDir makes a fresh report dir for image under out, named after the image's file name
// ("app.sif"); a name already used gets "-2", "-3", ... It also makes the dir's ScannerDir,
// which the backends fill during the scan.
func NewDir(out, image string) (string, error) {
	base := filepath.Base(filepath.Clean(image))
	switch {
	case base == "." || base == "/" || base == "..":
		base = "image"
	case strings.HasPrefix(base, "."):
		base = "image" + base
	}
	for n := 1; n < 10000; n++ {
		name := base
		if n > 1 {
			name += "-" + strconv.Itoa(n)
		}
		dir := filepath.Join(out, name)
		err := os.Mkdir(dir, 0o755)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("creating report dir for %s: %w", image, err)
		}
		if err := os.Mkdir(filepath.Join(dir, ScannerDir), 0o755); err != nil {
			return "", fmt.Errorf("creating report dir for %s: %w", image, err)
		}
		return dir, nil
	}
	return "", fmt.Errorf("creating report dir for %s: too many images named %s", image, base)
}

// Write writes verdict.json and findings.sarif for res into dir, made by NewDir, and
// removes an empty ScannerDir. Digest is the policy's as the admin wrote it (recorded with
// the verdict); version is scan-gate's own, for the SARIF tool entry.
func Write(dir string, res gate.Result, p *policy.Policy, digest, version string) error {
	scannerDir := filepath.Join(dir, ScannerDir)
	entries, err := os.ReadDir(scannerDir)
	if err != nil {
		return fmt.Errorf("listing the scanner's reports: %w", err)
	}
	var files []string
	for _, e := range entries {
		files = append(files, filepath.Join(ScannerDir, e.Name()))
	}
	slices.Sort(files)
	if len(files) == 0 {
		if err := os.Remove(scannerDir); err != nil {
			return fmt.Errorf("removing the empty scanner dir: %w", err)
		}
	}

	v := Verdict{Image: res.Image, Policy: digest, Scanned: res.Scan != nil,
		ScannerFiles: files, Result: res}
	if v.ScannerFiles == nil {
		v.ScannerFiles = []string{}
	}
	if err := writeJSON(filepath.Join(dir, VerdictFile), v); err != nil {
		return err
	}
	return writeJSON(filepath.Join(dir, SARIFFile), SARIF(res, p, digest, version))
}

func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding %s: %w", filepath.Base(path), err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", filepath.Base(path), err)
	}
	return nil
}
