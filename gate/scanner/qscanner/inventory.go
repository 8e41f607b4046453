package qscanner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/scan-gate/scan-gate/gate/finding"
	"github.com/scan-gate/scan-gate/gate/scanner"
	"github.com/scan-gate/scan-gate/gate/scanner/internal/scanutil"
)

// matchInventory hands the CycloneDX SBOM of an inventory-only run to the matcher. Without a
// matcher there are no findings: no decision.
func (b *Backend) matchInventory(ctx context.Context, out *outcome, target scanner.Target,
	version string) (*finding.Scan, error) {
	sboms, err := glob(out.dir, "*.cyclonedx.json")
	if err != nil {
		return nil, err
	}
	if len(sboms) != 1 {
		return nil, fmt.Errorf("qscanner wrote %d CycloneDX SBOMs (*.cyclonedx.json), "+
			"want one", len(sboms))
	}
	if b.cfg.Matcher == nil {
		return nil, fmt.Errorf("mode inventory-only made an SBOM, and no "+
			"scanner.qscanner.sbom_matcher is set to find its vulnerabilities: %w",
			scanner.ErrNoFindings)
	}

	data, err := scanner.ReadReport(sboms[0])
	if err != nil {
		return nil, fmt.Errorf("reading qscanner's SBOM: %w", err)
	}
	if len(strings.TrimSpace(string(data))) == 0 {
		return nil, errors.New("qscanner's SBOM is empty")
	}
	sbom := sboms[0]
	if b.cfg.Matcher.Name() == "trivy" {
		if sbom, err = writeTrivySBOM(data, filepath.Dir(out.dir)); err != nil {
			return nil, err
		}
	}

	matched, err := b.cfg.Matcher.ScanSBOM(ctx, sbom, target)
	if err != nil {
		return nil, err
	}
	return &finding.Scan{
		Scanner:        Name,
		ScannerVersion: version + "+" + matched.Scanner + "-" + matched.ScannerVersion,
		DBUpdatedAt:    matched.DBUpdatedAt,
		OS:             matched.OS,
		Findings:       finding.Normalize(matched.Findings),
	}, nil
}

// checkInventory refuses a run that did not see the tree's OS packages: when the tree has a
// package database, QScanner's CycloneDX SBOM (asked for with --format) must list
// distribution packages. A missing SBOM cannot show it, so it is refused too.
func checkInventory(dir, root string) error {
	pkgDB, err := scanutil.FindPackageDB(root)
	if err != nil || pkgDB == "" {
		return err
	}
	sboms, err := glob(dir, "*.cyclonedx.json")
	if err != nil {
		return err
	}
	if len(sboms) == 0 {
		return fmt.Errorf("the tree has a package database (%s), and qscanner wrote no "+
			"CycloneDX SBOM (*.cyclonedx.json) to show it read it: %w", pkgDB,
			scanner.ErrIncomplete)
	}
	data, err := scanner.ReadReport(sboms[0])
	if err != nil {
		return fmt.Errorf("reading qscanner's SBOM: %w", err)
	}
	if n, _ := scanutil.OSPackages(data); n == 0 {
		return fmt.Errorf("qscanner's SBOM lists no distribution packages, but the tree has "+
			"a package database (%s): refusing to call it clean: %w", pkgDB,
			scanner.ErrIncomplete)
	}
	return nil
}

// Trivy's CycloneDX properties for a package's source (pkg/sbom/core).
const (
	trivySrcName    = "aquasecurity:trivy:SrcName"
	trivySrcVersion = "aquasecurity:trivy:SrcVersion"
)

// writeTrivySBOM writes a copy of a CycloneDX SBOM in which every distribution package whose
// package URL names its source ("upstream" qualifier, "name" or "name@version") also carries
// Trivy's source properties: Trivy reads the source of a Debian package from those only,
// and Debian advisories are filed by source package. The copy is written next to the output
// dir, readable by the scanning user (the work dir is theirs).
func writeTrivySBOM(data []byte, work string) (string, error) {
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		return "", fmt.Errorf("decoding qscanner's SBOM: %w", err)
	}
	if components, ok := doc["components"].([]any); ok {
		addSourceProperties(components)
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return "", fmt.Errorf("encoding the SBOM for trivy: %w", err)
	}
	path := filepath.Join(work, "sbom-for-trivy.cyclonedx.json")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		return "", fmt.Errorf("writing the SBOM for trivy: %w", err)
	}
	return path, nil
}

func addSourceProperties(components []any) {
	for _, c := range components {
		comp, ok := c.(map[string]any)
		if !ok {
			continue
		}
		if nested, ok := comp["components"].([]any); ok {
			addSourceProperties(nested)
		}
		purl, _ := comp["purl"].(string)
		name, version := upstream(purl)
		if name == "" || hasProperty(comp, trivySrcName) {
			continue
		}
		props, _ := comp["properties"].([]any)
		props = append(props, map[string]any{"name": trivySrcName, "value": name})
		if version != "" {
			props = append(props, map[string]any{"name": trivySrcVersion, "value": version})
		}
		comp["properties"] = props
	}
}

// upstream reads the "upstream" qualifier of a deb, rpm or apk package URL.
func upstream(purl string) (name, version string) {
	if !strings.HasPrefix(purl, "pkg:deb/") && !strings.HasPrefix(purl, "pkg:rpm/") &&
		!strings.HasPrefix(purl, "pkg:apk/") {
		return "", ""
	}
	_, query, ok := strings.Cut(purl, "?")
	if !ok {
		return "", ""
	}
	query, _, _ = strings.Cut(query, "#")
	values, err := url.ParseQuery(query)
	if err != nil {
		return "", ""
	}
	name, version, _ = strings.Cut(values.Get("upstream"), "@")
	return name, version
}

func hasProperty(comp map[string]any, name string) bool {
	props, _ := comp["properties"].([]any)
	for _, p := range props {
		if prop, ok := p.(map[string]any); ok && prop["name"] == name {
			return true
		}
	}
	return false
}
