package trivy

import (
	"strings"
	"testing"

	"github.com/scan-gate/scan-gate/gate/scanner"
)

// A source tree goes to `trivy repo`, offline, as the scanning user.
func TestScanRepo(t *testing.T) {
	b := newRealBackend(t, readOnlyDB(t))
	src := openDir(t)
	writeFile(t, src, "go.mod", "module example.org/app\n\ngo 1.22\n")
	scan, err := b.ScanRepo(t.Context(), scanner.Target{Root: src, ScratchDir: openDir(t),
		Credential: scanAs()})
	if err != nil {
		t.Fatal(err)
	}
	if scan.Scanner != "trivy" || scan.ScannerVersion == "" || scan.Findings == nil ||
		scan.ScannedAt.IsZero() {
		t.Errorf("scan = %+v", scan)
	}
}

// A registry image goes to `trivy image`, from the registry only; an unreachable registry is
// an error that says so, never an empty result.
func TestScanImageUnreachable(t *testing.T) {
	b := newRealBackend(t, readOnlyDB(t))
	_, err := b.ScanImage(t.Context(), "registry.invalid/org/app:1.0",
		scanner.Target{ScratchDir: openDir(t), Credential: scanAs()})
	if err == nil {
		t.Fatal("scanning an image in an unreachable registry succeeded")
	}
	for _, want := range []string{"trivy: scanning registry image " +
		"registry.invalid/org/app:1.0: cannot fetch the image: remote error: "} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "docker error") || strings.Contains(err.Error(), "\n") {
		t.Errorf("error is not one line of causes, or trivy looked for a local container "+
			"daemon: %v", err)
	}
	if _, err := b.ScanImage(t.Context(), "--help",
		scanner.Target{ScratchDir: openDir(t)}); err == nil {
		t.Error("a reference that is a flag was passed on")
	}
}
