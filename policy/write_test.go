package policy

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

const digestBase = `
# The production policy.
mode = "enforce"

[thresholds]
block = "critical"   # the default
warn = "high"

[[exception]]
id = "CVE-2023-38545"
expires = 2027-01-31
reason = "not reachable"
`

func TestDigest(t *testing.T) {
	base := mustParse(t, digestBase).Digest()
	if !strings.HasPrefix(base, "sha256:") || len(base) != len("sha256:")+64 {
		t.Fatalf("Digest() = %q, want sha256:<64 hex digits>", base)
	}

	tests := []struct {
		name string
		text string
		same bool
	}{
		{"comments and layout", strings.NewReplacer("# the default", "",
			"# The production policy.", "# edited by bob", "\n\n", "\n").Replace(digestBase),
			true},
		{"defaults left out", strings.Replace(digestBase, `mode = "enforce"`, "", 1), true},
		{"defaults spelled differently", strings.NewReplacer(`"critical"`, `"CRITICAL"`,
			"[thresholds]", "[timeouts]\nmax_age = \"7d\"\n[thresholds]").Replace(digestBase),
			true},
		{"mode changed", strings.Replace(digestBase, `"enforce"`, `"warn"`, 1), false},
		{"threshold changed", strings.Replace(digestBase, `"high"`, `"medium"`, 1), false},
		{"expiry changed", strings.Replace(digestBase, "2027-01-31", "2027-02-01", 1), false},
		{"reason changed", strings.Replace(digestBase, "not reachable", "not used", 1), false},
		{"timeout changed", digestBase + "\n[timeouts]\nscan = \"11m\"\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mustParse(t, tt.text).Digest()
			if (got == base) != tt.same {
				t.Errorf("digest %s, base %s: same = %t, want %t", got, base, got == base,
					tt.same)
			}
		})
	}
}

func TestWriteEffectiveRoundTrip(t *testing.T) {
	for name, text := range map[string]string{
		"empty":  "",
		"scopes": scopes,
		"mixed": digestBase + "[extract]\nmemory_budget = 1000\n[scanner.trivy]\n" +
			"extra_args = [\"--skip-dirs\", \"/a \\\"b\\\"\\t\"]\n",
	} {
		t.Run(name, func(t *testing.T) {
			p := mustParse(t, text)
			var out bytes.Buffer
			if err := p.WriteEffective(&out); err != nil {
				t.Fatal(err)
			}
			again, err := Parse("effective.toml", out.Bytes())
			if err != nil {
				t.Fatalf("parsing the effective policy:\n%v\n%s", err, out.String())
			}
			if !reflect.DeepEqual(again, p) {
				t.Errorf("round trip changed the policy:\n got %+v\nwant %+v", again, p)
			}
			if again.Digest() != p.Digest() {
				t.Error("round trip changed the digest")
			}
		})
	}
}

func TestWriteEffectiveDefaults(t *testing.T) {
	var out bytes.Buffer
	if err := Default().WriteEffective(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"mode = \"enforce\"\n", "[timeouts]\nscan = \"10m\"\nwait = \"2m\"\nmax_age = \"168h\"\n",
		"memory_budget = \"256MiB\"\n", "extra_args = []\n", "fixable_only = false\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("effective default policy lacks %q:\n%s", want, out.String())
		}
	}
}
