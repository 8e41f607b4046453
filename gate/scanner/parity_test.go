package scanner_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/scan-gate/scan-gate/gate"
	"github.com/scan-gate/scan-gate/gate/finding"
	"github.com/scan-gate/scan-gate/gate/setup"
	"github.com/scan-gate/scan-gate/internal/scantest"
	"github.com/scan-gate/scan-gate/internal/testimage"
	"github.com/scan-gate/scan-gate/policy"
)

// TestParity gates one real SIF image with a real trivy and a real grype, each on its
// fixture DB of the same real Debian 12 advisories, through the whole gate (extraction as
// the scanning user included): after normalisation (aliases merged, duplicates removed)
// both give the same findings, field for field but where each found the package (trivy
// names its target, "container (debian 12.5)" here, grype the distribution), and the same
// verdict. The QScanner double,
// whose knowledge base holds the same advisories, agrees on what matters to the policy:
// ids, packages, versions and severities.
func TestParity(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o755)
	img := filepath.Join(dir, "vulnerable.sif")
	if err := testimage.Build(t.Context(), img, testimage.Vulnerable); err != nil {
		t.Fatal(err)
	}
	os.Chmod(img, 0o644)

	base := func(name string) *policy.Policy {
		p := policy.Default()
		p.Scanner.Name = name
		p.CacheDir = filepath.Join(dir, "cache-"+name)
		p.AuditLog = ""
		p.Extract.ScratchDir = filepath.Join(dir, "scratch")
		p.Extract.TmpfsDir = filepath.Join(dir, "no-tmpfs")
		return p
	}
	trivyPolicy := base(policy.ScannerTrivy)
	trivyPolicy.Scanner.Trivy.Path = scantest.Trivy(t)
	trivyPolicy.Scanner.Trivy.DBDir = scantest.SharedTrivyDB(t)
	grypePolicy := base(policy.ScannerGrype)
	grypePolicy.Scanner.Grype.Path = scantest.Grype(t)
	grypePolicy.Scanner.Grype.DBDir = scantest.SharedGrypeDB(t)
	grypePolicy.Scanner.Grype.MaxDBAge = 0
	qsPolicy := base(policy.ScannerQScanner)
	qsPolicy.Scanner.QScanner.Path = scantest.InstallQScannerDouble(t,
		filepath.Join(dir, "qs"))
	qsPolicy.Scanner.QScanner.Pod = "US1"
	t.Setenv("QUALYS_ACCESS_TOKEN", "parity-token")

	check := func(p *policy.Policy) gate.Result {
		t.Helper()
		g, err := setup.New(p)
		if err != nil {
			t.Fatal(err)
		}
		res := g.Check(t.Context(), gate.Request{Image: img})
		if res.Scan == nil {
			t.Fatalf("%s: no scan: %s", p.Scanner.Name, res.Error)
		}
		return res
	}
	trivyRes, grypeRes, qsRes := check(trivyPolicy), check(grypePolicy), check(qsPolicy)

	fromTrivy := withoutLocation(finding.Normalize(trivyRes.Scan.Findings))
	fromGrype := withoutLocation(finding.Normalize(grypeRes.Scan.Findings))
	if len(fromTrivy) != 9 {
		t.Errorf("trivy found %d vulnerabilities, want 9", len(fromTrivy))
	}
	if !reflect.DeepEqual(fromTrivy, fromGrype) {
		t.Errorf("trivy and grype differ after normalisation:\ntrivy %s\ngrype %s",
			show(fromTrivy), show(fromGrype))
	}
	if trivyRes.Action != policy.Block || grypeRes.Action != trivyRes.Action ||
		!reflect.DeepEqual(trivyRes.Verdict.Counts, grypeRes.Verdict.Counts) {
		t.Errorf("verdicts: trivy %s %v, grype %s %v", trivyRes.Action,
			trivyRes.Verdict.Counts, grypeRes.Action, grypeRes.Verdict.Counts)
	}

	if got, want := essentials(qsRes.Scan.Findings), essentials(fromTrivy); !reflect.DeepEqual(got,
		want) {
		t.Errorf("QScanner double and trivy differ:\nqscanner %v\ntrivy    %v", got, want)
	}
	if !reflect.DeepEqual(qsRes.Verdict.Counts, trivyRes.Verdict.Counts) {
		t.Errorf("counts: qscanner %v, trivy %v", qsRes.Verdict.Counts, trivyRes.Verdict.Counts)
	}
}

func withoutLocation(fs []finding.Finding) []finding.Finding {
	for i := range fs {
		fs[i].Location = ""
	}
	return fs
}

func show(fs []finding.Finding) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString("\n  " + fmtFinding(f))
	}
	return b.String()
}

func fmtFinding(f finding.Finding) string {
	return strings.Join([]string{f.ID, strings.Join(f.Aliases, ","), f.Package, f.Installed,
		strings.Join(f.FixedVersions, ","), string(f.FixState), f.Severity.String(),
		f.Location, f.Title}, " | ")
}

type essential struct {
	ID, Package, Installed, Fixed string
	Severity                      finding.Severity
}

func essentials(fs []finding.Finding) []essential {
	var out []essential
	for _, f := range fs {
		out = append(out, essential{f.ID, f.Package, f.Installed,
			strings.Join(f.FixedVersions, ","), f.Severity})
	}
	return out
}
