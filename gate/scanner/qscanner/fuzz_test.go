package qscanner

import (
	"testing"
)

// FuzzParseSARIF feeds report bytes to the parser: it must never panic, and whatever it
// accepts must name every finding.
func FuzzParseSARIF(f *testing.F) {
	f.Add([]byte(`{"runs":[{"tool":{"driver":{"rules":[{"id":"1","properties":` +
		`{"severity":5,"cve-ids":["CVE-2023-1"]}}]}},"results":[{"ruleId":"1","properties":` +
		`{"QID":1,"vulnerableSoftware":[{"name":"a","installedVersion":"1",` +
		`"fixedVersion":"2"}]}}]}]}`))
	f.Add([]byte(`{"runs":[]}`))
	f.Add([]byte(`{"runs":[{"results":[{"ruleId":"qid-7","properties":{"QID":"x"}}]}]}`))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		findings, err := parseSARIF(data, defaultSeverity)
		if err != nil {
			return
		}
		for _, fd := range findings {
			if fd.ID == "" {
				t.Fatalf("finding without an id from %q", data)
			}
		}
	})
}
