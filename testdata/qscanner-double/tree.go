package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// kbEntry is one entry of the double's knowledge base: a real Debian 12 advisory (the same
// facts as the fixture DBs of testdata/trivydb and testdata/grypedb) under a made-up QID,
// with the Qualys level (1 minimal to 5 urgent) a site would see for it.
type kbEntry struct {
	QID      int
	CVEs     []string
	Source   string // Debian source package
	Fixed    string
	Severity int
	Title    string
}

var knowledgeBase = []kbEntry{
	{900101, []string{"CVE-2023-38545"}, "curl", "7.88.1-10+deb12u4", 5,
		"Debian Security Update for curl (CVE-2023-38545)"},
	{900102, []string{"CVE-2023-38546"}, "curl", "7.88.1-10+deb12u4", 2,
		"Debian Security Update for curl (CVE-2023-38546)"},
	{900103, []string{"CVE-2024-45491", "CVE-2024-45492"}, "expat", "2.5.0-1+deb12u1", 5,
		"Debian Security Update for expat"},
	{900104, []string{"CVE-2023-4911"}, "glibc", "2.36-9+deb12u3", 4,
		"Debian Security Update for glibc (Looney Tunables)"},
	{900105, []string{"CVE-2023-4863"}, "libwebp", "1.2.4-0.2+deb12u1", 4,
		"Debian Security Update for libwebp"},
	{900106, []string{"CVE-2023-5363"}, "openssl", "3.0.11-1~deb12u2", 4,
		"Debian Security Update for openssl"},
}

type pkg struct{ name, source, version string }

type tree struct {
	root            string
	osID, osVersion string
	packages        []pkg
}

// readTree reads the OS and the dpkg database of the tree. Nothing is executed.
func readTree(root string) (*tree, error) {
	t := &tree{root: root}
	if data, err := os.ReadFile(filepath.Join(root, "etc/os-release")); err == nil {
		for line := range strings.SplitSeq(string(data), "\n") {
			key, value, _ := strings.Cut(line, "=")
			value = strings.Trim(value, `"`)
			switch key {
			case "ID":
				t.osID = value
			case "VERSION_ID":
				t.osVersion = value
			}
		}
	}
	if data, err := os.ReadFile(filepath.Join(root, "etc/debian_version")); err == nil &&
		t.osID == "debian" {
		t.osVersion = strings.TrimSpace(string(data))
	}

	f, err := os.Open(filepath.Join(root, "var/lib/dpkg/status"))
	if os.IsNotExist(err) {
		return t, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the dpkg database: %w", err)
	}
	defer f.Close()
	var cur pkg
	flush := func() {
		if cur.name != "" {
			if cur.source == "" {
				cur.source = cur.name
			}
			t.packages = append(t.packages, cur)
		}
		cur = pkg{}
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			flush()
			continue
		}
		key, value, _ := strings.Cut(line, ": ")
		switch key {
		case "Package":
			cur.name = value
		case "Source":
			cur.source, _, _ = strings.Cut(value, " ")
		case "Version":
			cur.version = value
		}
	}
	flush()
	return t, sc.Err()
}

type match struct {
	entry    kbEntry
	packages []pkg
}

// matches are the knowledge base entries the installed packages are vulnerable to.
func (t *tree) matches() []match {
	var out []match
	for _, e := range knowledgeBase {
		m := match{entry: e}
		for _, p := range t.packages {
			if p.source == e.Source && compareVersions(p.version, e.Fixed) < 0 {
				m.packages = append(m.packages, p)
			}
		}
		if t.osID == "debian" && strings.HasPrefix(t.osVersion, "12") && len(m.packages) > 0 {
			out = append(out, m)
		}
	}
	return out
}

func (t *tree) inventory(inv invocation) []byte {
	type entry struct {
		Name    string `json:"name"`
		Version string `json:"version"`
		Source  string `json:"source"`
	}
	var pkgs []entry
	for _, p := range t.packages {
		pkgs = append(pkgs, entry{p.name, p.version, p.source})
	}
	data, _ := json.MarshalIndent(map[string]any{
		"target":        t.root,
		"os":            map[string]string{"name": t.osID, "version": t.osVersion},
		"packages":      pkgs,
		"shellCommands": inv.flags["--shell-commands"],
		"scanTypes":     inv.flags["--scan-types"],
	}, "", "  ")
	return data
}

func (t *tree) purl(p pkg) string {
	q := url.Values{}
	q.Set("arch", "amd64")
	q.Set("distro", t.osID+"-"+t.osVersion)
	if p.source != p.name {
		q.Set("upstream", p.source)
	}
	return fmt.Sprintf("pkg:deb/%s/%s@%s?%s", t.osID, p.name, url.PathEscape(p.version),
		q.Encode())
}

func (t *tree) cyclonedx() []byte {
	components := []map[string]any{{"type": "operating-system", "name": t.osID,
		"version": t.osVersion, "bom-ref": "os"}}
	for _, p := range t.packages {
		components = append(components, map[string]any{"type": "library", "name": p.name,
			"version": p.version, "purl": t.purl(p), "bom-ref": t.purl(p)})
	}
	data, _ := json.MarshalIndent(map[string]any{
		"bomFormat":   "CycloneDX",
		"specVersion": "1.5",
		"version":     1,
		"metadata": map[string]any{
			"tools":     []map[string]string{{"vendor": "Qualys", "name": "qscanner"}},
			"component": map[string]string{"type": "container", "name": t.root},
		},
		"components": components,
	}, "", "  ")
	return data
}

func (t *tree) spdx(prefix string) []byte {
	var packages []map[string]any
	for i, p := range t.packages {
		packages = append(packages, map[string]any{
			"SPDXID": fmt.Sprintf("SPDXRef-Package-%d", i), "name": p.name,
			"versionInfo": p.version, "downloadLocation": "NOASSERTION",
			"externalRefs": []map[string]string{{"referenceCategory": "PACKAGE-MANAGER",
				"referenceType": "purl", "referenceLocator": t.purl(p)}},
		})
	}
	data, _ := json.MarshalIndent(map[string]any{
		"spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT",
		"name": prefix, "documentNamespace": "https://example.invalid/qscanner/" + prefix,
		"creationInfo": map[string]any{"creators": []string{"Tool: qscanner"}},
		"packages":     packages,
	}, "", "  ")
	return data
}

// sarif writes the vulnerability report the way it is seen parsed: rules carrying the
// Qualys level, the CVEs and the QDS; results carrying the QID and vulnerable packages.
func sarif(matches []match) []byte {
	rules, results := []any{}, []any{}
	for _, m := range matches {
		e := m.entry
		rules = append(rules, map[string]any{
			"id":               fmt.Sprint(e.QID),
			"shortDescription": map[string]string{"text": e.Title},
			"properties": map[string]any{"severity": e.Severity, "cve-ids": e.CVEs,
				"qds": 20 * e.Severity},
		})
		var sw []map[string]string
		for _, p := range m.packages {
			sw = append(sw, map[string]string{"name": p.name, "installedVersion": p.version,
				"fixedVersion": e.Fixed})
		}
		level := "note"
		switch {
		case e.Severity >= 4:
			level = "error"
		case e.Severity == 3:
			level = "warning"
		}
		results = append(results, map[string]any{
			"ruleId":     fmt.Sprint(e.QID),
			"level":      level,
			"message":    map[string]string{"text": e.Title},
			"properties": map[string]any{"QID": e.QID, "vulnerableSoftware": sw},
		})
	}
	data, _ := json.MarshalIndent(map[string]any{
		"version": "2.1.0",
		"$schema": "https://json.schemastore.org/sarif-2.1.0.json",
		"runs": []any{map[string]any{
			"tool": map[string]any{"driver": map[string]any{"name": "qscanner",
				"version": "0.0.0-double", "rules": rules}},
			"results": results,
		}},
	}, "", "  ")
	return data
}

// compareVersions compares two Debian versions as dpkg does.
func compareVersions(a, b string) int {
	ea, ua, ra := splitVersion(a)
	eb, ub, rb := splitVersion(b)
	if ea != eb {
		if ea < eb {
			return -1
		}
		return 1
	}
	if c := compareParts(ua, ub); c != 0 {
		return c
	}
	return compareParts(ra, rb)
}

func splitVersion(v string) (epoch int, upstream, revision string) {
	if e, rest, ok := strings.Cut(v, ":"); ok {
		fmt.Sscan(e, &epoch)
		v = rest
	}
	if i := strings.LastIndexByte(v, '-'); i >= 0 {
		return epoch, v[:i], v[i+1:]
	}
	return epoch, v, ""
}

// compareParts is dpkg's verrevcmp: non-digit runs compare by order (~ before everything,
// letters before other characters), digit runs numerically.
func compareParts(a, b string) int {
	order := func(c byte) int {
		switch {
		case c == '~':
			return -1
		case c >= '0' && c <= '9':
			return 0
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			return int(c)
		}
		return int(c) + 256
	}
	isDigit := func(c byte) bool { return c >= '0' && c <= '9' }
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		for i < len(a) && !isDigit(a[i]) || j < len(b) && !isDigit(b[j]) {
			ac, bc := 0, 0
			if i < len(a) {
				ac = order(a[i])
			}
			if j < len(b) {
				bc = order(b[j])
			}
			if ac != bc {
				if ac < bc {
					return -1
				}
				return 1
			}
			i++
			j++
		}
		for i < len(a) && a[i] == '0' {
			i++
		}
		for j < len(b) && b[j] == '0' {
			j++
		}
		first := 0
		for i < len(a) && isDigit(a[i]) && j < len(b) && isDigit(b[j]) {
			if first == 0 {
				first = int(a[i]) - int(b[j])
			}
			i++
			j++
		}
		if i < len(a) && isDigit(a[i]) {
			return 1
		}
		if j < len(b) && isDigit(b[j]) {
			return -1
		}
		if first != 0 {
			if first < 0 {
				return -1
			}
			return 1
		}
	}
	return 0
}
