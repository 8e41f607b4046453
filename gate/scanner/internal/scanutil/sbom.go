package scanutil

import (
	"encoding/json"
	"strings"
)

// OSPackages counts the distribution packages (deb, rpm, apk package URLs) an SBOM lists,
// and names the first kind found. It reads CycloneDX JSON ("components", nested) and SPDX
// JSON ("packages" with purl external references); anything else counts none.
func OSPackages(data []byte) (int, string) {
	var doc struct {
		Components []cdxComponent `json:"components"`
		Packages   []struct {
			ExternalRefs []struct {
				Type    string `json:"referenceType"`
				Locator string `json:"referenceLocator"`
			} `json:"externalRefs"`
		} `json:"packages"`
	}
	if json.Unmarshal(data, &doc) != nil {
		return 0, ""
	}
	var purls []string
	var walk func([]cdxComponent)
	walk = func(cs []cdxComponent) {
		for _, c := range cs {
			purls = append(purls, c.PURL)
			walk(c.Components)
		}
	}
	walk(doc.Components)
	for _, p := range doc.Packages {
		for _, ref := range p.ExternalRefs {
			if ref.Type == "purl" {
				purls = append(purls, ref.Locator)
			}
		}
	}

	n, kind := 0, ""
	for _, purl := range purls {
		for _, k := range []string{"deb", "rpm", "apk"} {
			if strings.HasPrefix(purl, "pkg:"+k+"/") {
				n++
				if kind == "" {
					kind = k
				}
			}
		}
	}
	return n, kind
}

type cdxComponent struct {
	PURL       string         `json:"purl"`
	Components []cdxComponent `json:"components"`
}
