package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/OneOfOne/xxhash"
	"github.com/anchore/grype/grype/db/provider"

	"github.com/scan-gate/scan-gate/testdata/trivydb/advisories"
)

// The records are written the way vunnel's "debian" provider writes its workspace: a
// metadata.json (the provider state), a checksums listing, and one result file per CVE,
// an envelope around the OS vulnerability record.
const (
	providerName = "debian"
	namespace    = "debian:12"
	osSchemaURL  = "https://raw.githubusercontent.com/anchore/vunnel/main/schema/" +
		"vulnerability/os/schema-1.0.0.json"
	stateSchema = "https://raw.githubusercontent.com/anchore/vunnel/main/schema/" +
		"provider-workspace-state/schema-1.0.3.json"
)

// osRecord is vunnel's OS vulnerability record, the fields the Debian provider fills.
type osRecord struct {
	Vulnerability osVulnerability `json:"Vulnerability"`
}

type osVulnerability struct {
	Name          string    `json:"Name"`
	NamespaceName string    `json:"NamespaceName"`
	Description   string    `json:"Description"`
	Severity      string    `json:"Severity"`
	Link          string    `json:"Link"`
	CVSS          []cvss    `json:"CVSS"`
	FixedIn       []fixedIn `json:"FixedIn"`
	Metadata      struct{}  `json:"Metadata"`
}

type cvss struct {
	BaseMetrics struct {
		BaseScore    float64 `json:"base_score"`
		BaseSeverity string  `json:"base_severity"`
	} `json:"base_metrics"`
	Status       string `json:"status"`
	VectorString string `json:"vector_string"`
	Version      string `json:"version"`
}

type fixedIn struct {
	Name           string `json:"Name"`
	NamespaceName  string `json:"NamespaceName"`
	VersionFormat  string `json:"VersionFormat"`
	Version        string `json:"Version"`
	VendorAdvisory struct {
		NoAdvisory      bool  `json:"NoAdvisory"`
		AdvisorySummary []any `json:"AdvisorySummary"`
	} `json:"VendorAdvisory"`
}

type envelope struct {
	Schema     string   `json:"schema"`
	Identifier string   `json:"identifier"`
	Item       osRecord `json:"item"`
}

// writeProviderWorkspace writes the debian provider's workspace under dir and reads its
// state back the way grype's build does.
func writeProviderWorkspace(dir string, builtAt time.Time) (*provider.State, error) {
	root := filepath.Join(dir, providerName)
	if err := os.MkdirAll(filepath.Join(root, "results"), 0o755); err != nil {
		return nil, err
	}

	var listing bytes.Buffer
	for _, rec := range records() {
		id := strings.ToLower(rec.Vulnerability.Name)
		data, err := json.MarshalIndent(envelope{Schema: osSchemaURL,
			Identifier: namespace + "/" + id, Item: rec}, "", "  ")
		if err != nil {
			return nil, err
		}
		rel := filepath.Join("results", id+".json")
		if err := os.WriteFile(filepath.Join(root, rel), data, 0o644); err != nil {
			return nil, err
		}
		fmt.Fprintf(&listing, "%s  %s\n", xxh64(data), rel)
	}
	if err := os.WriteFile(filepath.Join(root, "checksums"), listing.Bytes(),
		0o644); err != nil {
		return nil, err
	}

	state := map[string]any{
		"provider":             providerName,
		"urls":                 []string{"https://security-tracker.debian.org/tracker"},
		"store":                "flat-file",
		"timestamp":            builtAt.Format(time.RFC3339),
		"version":              1,
		"distribution_version": 1,
		"processor":            "scan-gate testdata/grypedb",
		"listing": map[string]string{
			"digest":    xxh64(listing.Bytes()),
			"path":      "checksums",
			"algorithm": "xxh64",
		},
		"schema": map[string]string{"version": "1.0.3", "url": stateSchema},
		"stale":  false,
	}
	data, err := json.MarshalIndent(state, "", "  ")
	if err != nil {
		return nil, err
	}
	metadata := filepath.Join(root, "metadata.json")
	if err := os.WriteFile(metadata, data, 0o644); err != nil {
		return nil, err
	}
	return provider.ReadState(metadata)
}

// records turns the advisory table into one record per CVE. Like the Trivy fixture, the
// severity is NVD's, so that both scanners rate a finding alike.
func records() []osRecord {
	var out []osRecord
	byID := map[string]int{}
	for _, adv := range advisories.Debian12 {
		fix := fixedIn{Name: adv.Source, NamespaceName: namespace, VersionFormat: "dpkg",
			Version: adv.Fixed}
		fix.VendorAdvisory.AdvisorySummary = []any{}
		if i, ok := byID[adv.ID]; ok {
			out[i].Vulnerability.FixedIn = append(out[i].Vulnerability.FixedIn, fix)
			continue
		}

		score := cvss{Status: "N/A", VectorString: adv.Vector, Version: "3.1"}
		score.BaseMetrics.BaseScore = adv.CVSS
		score.BaseMetrics.BaseSeverity = titleCase(adv.Severity)
		byID[adv.ID] = len(out)
		out = append(out, osRecord{Vulnerability: osVulnerability{
			Name:          adv.ID,
			NamespaceName: namespace,
			Description:   adv.Title,
			Severity:      titleCase(adv.Severity),
			Link:          "https://security-tracker.debian.org/tracker/" + adv.ID,
			CVSS:          []cvss{score},
			FixedIn:       []fixedIn{fix},
		}})
	}
	return out
}

func titleCase(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + strings.ToLower(s[1:])
}

func xxh64(data []byte) string {
	h := xxhash.New64()
	h.Write(data)
	return fmt.Sprintf("%x", h.Sum(nil))
}
