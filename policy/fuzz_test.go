package policy

import (
	"bytes"
	"os"
	"testing"

	"github.com/scan-gate/scan-gate/gate/finding"
)

func mustRead(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// FuzzParse checks that Parse never panics, that every error names the file, and that an
// accepted policy survives WriteEffective and Parse with the same digest.
func FuzzParse(f *testing.F) {
	f.Add(mustRead(f, "example.toml"))
	for _, seed := range []string{
		"",
		"mode = \"warn\"\n[thresholds]\nblock = \"high\"\nwarn = \"low\"\n",
		"[thresholds]\nblok = 1\n",
		scopes,
		exceptionCurl,
		"on = { no_decision = \"allow\" }\n[timeouts]\nmax_age = \"1.5d\"\n",
		"[extract]\nmemory_budget = \"9223372036854775807\"\n",
		"[scanner.trivy]\nextra_args = [\n \"[x]\",\n]\n[message]\nnext_step = '''\na'''\n",
		"thresholds = 5\n[exception]\n",
		"[[scope]]\nname = \"\\u0000\"\nimages = [\"/**/**/[\"]\n",
	} {
		f.Add([]byte(seed))
	}

	scan := &finding.Scan{Findings: []finding.Finding{criticalFixed, highFixed, mediumFixed}}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("fuzz.toml", data)
		if err != nil {
			if !bytes.HasPrefix([]byte(err.Error()), []byte("fuzz.toml")) {
				t.Fatalf("error does not start with the file name: %v", err)
			}
			return
		}

		var out bytes.Buffer
		if err := p.WriteEffective(&out); err != nil {
			t.Fatal(err)
		}
		again, err := Parse("effective.toml", out.Bytes())
		if err != nil {
			t.Fatalf("effective policy does not parse: %v\n%s", err, out.String())
		}
		if again.Digest() != p.Digest() {
			t.Fatalf("digest changed over a round trip:\n%s", out.String())
		}
		v := p.Evaluate(scan, alice, today)
		_ = v.Message(alice.Image)
	})
}
