package qscanner

import (
	"testing"
	"time"

	"github.com/scan-gate/scan-gate/gate/scanner/grype"
	"github.com/scan-gate/scan-gate/gate/scanner/trivy"
	"github.com/scan-gate/scan-gate/internal/scantest"
)

// matcher is a real grype or trivy on its fixture DB.
func matcher(t *testing.T, name string) Matcher {
	t.Helper()
	switch name {
	case "grype":
		m, err := grype.New(grype.Config{Path: scantest.Grype(t),
			DBDir: scantest.SharedGrypeDB(t), Timeout: 2 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		return m
	case "trivy":
		m, err := trivy.New(trivy.Config{Path: scantest.Trivy(t),
			DBDir: scantest.SharedTrivyDB(t), Timeout: 2 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	t.Fatalf("no matcher %q", name)
	return nil
}
