package policy

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scan-gate/scan-gate/gate/finding"
)

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		text string
		line int
		key  string
		want string // in the message, after "policy.toml:line: key: "
	}{
		{"typo key", "[thresholds]\nblok = \"high\"\n",
			2, "thresholds.blok", "unknown key (did you mean thresholds.block?)"},
		{"typo table", "\n[thresholdz]\nblock = \"high\"\n",
			2, "thresholdz", "unknown key (did you mean thresholds?)"},
		{"key under wrong table", "[on]\nblock = \"high\"\n",
			2, "on.block", "block belongs under [scope.thresholds] or under [thresholds]"},
		{"top-level key under a table", "[thresholds]\nmode = \"warn\"\n",
			2, "thresholds.mode", "mode belongs at the top, before any [table] or under [[scope]]"},
		{"case matters", "Mode = \"warn\"\n",
			1, "Mode", "unknown key (did you mean mode?)"},
		{"dotted key", "# comment\nthresholds.blok = \"high\"\n",
			2, "thresholds.blok", "unknown key"},
		{"unknown key in second exception", "[[exception]]\nid = \"A\"\nexpires = 2027-01-01\n" +
			"reason = \"r\"\n\n[[exception]]\nid = \"B\"\nexpires = 2027-01-01\nreason = \"r\"\n" +
			"imagez = []\n", 10, "exception.imagez", "did you mean exception.images?"},
		{"bad severity word", "[thresholds]\n\nblock = \"crit\"\n",
			3, "thresholds.block", `unknown severity "crit"`},
		{"severity of wrong type", "[thresholds]\nwarn = 3\n",
			2, "thresholds.warn", "want a string, found an integer"},
		{"bad mode", "mode = \"enforced\"\n",
			1, "mode", `unknown mode "enforced" (want one of enforce, warn, audit)`},
		{"bad scope mode", "[[scope]]\nname = \"x\"\nmode = \"strict\"\n",
			3, "scope.mode", `unknown mode "strict"`},
		{"bad action", "[on]\nno_decision = \"deny\"\n",
			2, "on.no_decision", `unknown action "deny" (want one of block, warn, allow)`},
		{"bad miss rule", "[on]\nmiss = \"wait\"\n",
			2, "on.miss", `unknown miss rule "wait"`},
		{"bad stale rule", "[on]\nstale = \"use\"\n",
			2, "on.stale", `unknown stale rule "use"`},
		{"inline table value", "on = { no_decision = \"deny\" }\n",
			1, "on.no_decision", `unknown action "deny"`},
		{"bad duration", "[timeouts]\nscan = \"10 minutes\"\n",
			2, "timeouts.scan", `invalid duration "10 minutes"`},
		{"zero duration", "[timeouts]\nwait = \"0s\"\n",
			2, "timeouts.wait", "duration must be above zero"},
		{"negative duration", "[timeouts]\nmax_age = \"-1h\"\n",
			2, "timeouts.max_age", "must be above zero"},
		{"negative days", "[timeouts]\nmax_age = \"-1d\"\n",
			2, "timeouts.max_age", "invalid duration"},
		{"duration as number", "[timeouts]\nscan = 600\n",
			2, "timeouts.scan", "want a string, found an integer"},
		{"bad size", "[extract]\nmemory_budget = \"256 MB\"\n",
			2, "extract.memory_budget", `invalid size "256 MB"`},
		{"zero size", "[extract]\nmemory_budget = 0\n",
			2, "extract.memory_budget", "size must be above zero"},
		{"root user", "[extract]\nuser = \"root\"\n",
			2, "extract.user", "must be an unprivileged user"},
		{"relative path", "[cache]\ndir = \"cache\"\n",
			2, "cache.dir", `want an absolute path, found "cache"`},
		{"unknown scanner", "[scanner]\nname = \"clair\"\n",
			2, "scanner.name", `unknown scanner "clair" (want one of trivy, grype, qscanner)`},
		{"bool as string", "[thresholds]\nfixable_only = \"yes\"\n",
			2, "thresholds.fixable_only", "want true or false, found a string"},
		{"warn above block", "[thresholds]\nblock = \"high\"\nwarn = \"critical\"\n",
			3, "thresholds.warn", `warn threshold "critical" is above block threshold "high"`},
		{"block below default warn", "[thresholds]\nblock = \"medium\"\n",
			2, "thresholds.block", `threshold "high" (the default) is above`},
		{"scope block below inherited warn", "[[scope]]\nname = \"a\"\n" +
			"[scope.thresholds]\nblock = \"medium\"\n",
			4, "scope.thresholds.block", "(inherited from [thresholds])"},
		{"exception without expires", "[[exception]]\nid = \"CVE-1\"\nreason = \"r\"\n",
			1, "exception", `exception "CVE-1" needs expires`},
		{"exception without reason", "[[exception]]\nid = \"CVE-1\"\nexpires = 2027-01-01\n",
			1, "exception", `exception "CVE-1" needs a reason`},
		{"exception with empty reason", "[[exception]]\nid = \"CVE-1\"\n" +
			"expires = 2027-01-01\nreason = \" \"\n", 4, "exception.reason", "not an empty one"},
		{"table in the wrong case", "Timeouts = 3\n",
			1, "Timeouts", "unknown key (did you mean timeouts?)"},
		{"exception with empty id", "[[exception]]\nid = \"\"\nexpires = 2027-01-01\n" +
			"reason = \"r\"\n", 2, "exception.id", "must not be empty"},
		{"expires quoted, second entry", "[[exception]]\nid = \"A\"\nexpires = 2027-01-01\n" +
			"reason = \"r\"\n[[exception]]\nid = \"B\"\nreason = \"r\"\nexpires = \"2027-01-01\"\n",
			8, "exception.expires", "want a date such as 2027-01-31 (no quotes, no time)"},
		{"expires with time", "[[exception]]\nid = \"A\"\nreason = \"r\"\n" +
			"expires = 2027-01-01T10:00:00Z\n", 4, "exception.expires", "found a date-time"},
		{"bad glob", "[[exception]]\nid = \"A\"\nexpires = 2027-01-01\nreason = \"r\"\n" +
			"images = [\"/shared/[x\"]\n", 5, "exception.images", "syntax error in pattern"},
		{"glob of wrong type", "[[scope]]\nname = \"a\"\nusers = [\"bob\", 7]\n",
			3, "scope.users", "item 2: want a string, found an integer"},
		{"duplicate scope name", "[[scope]]\nname = \"a\"\n[[scope]]\nname = \"b\"\n" +
			"[[scope]]\n  name = \"a\"\n", 6, "scope.name", `scope name "a" is used`},
		{"scope without name", "mode = \"warn\"\n[[scope]]\nusers = [\"bob\"]\n",
			2, "scope", "a scope needs a name"},
		{"table given a value", "thresholds = 5\n",
			1, "thresholds", "want a table [thresholds], found an integer"},
		{"table instead of array", "\n[exception]\nid = \"A\"\n",
			2, "exception", "want an array of tables [[exception]], found a table"},
		{"array instead of table", "[[thresholds]]\nblock = \"high\"\n",
			1, "thresholds", "want a table [thresholds], found an array"},
		{"after multi-line array", "[scanner.trivy]\nextra_args = [\n  \"--x\",\n" +
			"  \"[not a table]\",\n]\nbogus = 1\n", 6, "scanner.trivy.bogus", "unknown key"},
		{"after multi-line string", "[message]\nnext_step = \"\"\"\n[fake]\nx = 1\n\"\"\"\n" +
			"bogus = 1\n", 6, "message.bogus", "unknown key"},
		{"syntax error", "mode = \"enforce\"\n[thresholds\nblock = \"high\"\n",
			2, "", "syntax error"},
		{"syntax error after key", "[timeouts]\nscan = \n",
			2, "timeouts.scan", "syntax error: expected value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse("policy.toml", []byte(tt.text))
			if err == nil {
				t.Fatalf("Parse succeeded (%+v), want an error", p)
			}
			var perr *Error
			if !errors.As(err, &perr) {
				t.Fatalf("error %q (%T) is not an *Error", err, err)
			}
			prefix := "policy.toml:" + strconv.Itoa(tt.line) + ": "
			if tt.key != "" {
				prefix += tt.key + ": "
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if strings.HasPrefix(line, prefix) && strings.Contains(line, tt.want) {
					return
				}
			}
			t.Errorf("error\n%s\nhas no line starting %q and containing %q", err, prefix, tt.want)
		})
	}
}

func TestParseReportsEveryProblemInFileOrder(t *testing.T) {
	text := "mode = \"strict\"\n[thresholds]\nblok = \"high\"\n[timeouts]\nscan = \"soon\"\n"
	_, err := Parse("p.toml", []byte(text))
	if err == nil {
		t.Fatal("Parse succeeded, want errors")
	}
	lines := strings.Split(err.Error(), "\n")
	want := []string{"p.toml:1: mode: ", "p.toml:3: thresholds.blok: ", "p.toml:5: timeouts.scan: "}
	if len(lines) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%s", len(lines), len(want), err)
	}
	for i := range want {
		if !strings.HasPrefix(lines[i], want[i]) {
			t.Errorf("error %d = %q, want prefix %q", i, lines[i], want[i])
		}
	}
	if !errors.Is(err, ErrUnknownKey) {
		t.Errorf("errors.Is(err, ErrUnknownKey) = false for\n%s", err)
	}
}

func TestParseDefaults(t *testing.T) {
	for _, text := range []string{"", "\n\n", "# nothing set\n   \n# at all\n"} {
		p, err := Parse("empty.toml", []byte(text))
		if err != nil {
			t.Fatalf("Parse(%q): %v", text, err)
		}
		if !reflect.DeepEqual(p, Default()) {
			t.Errorf("Parse(%q) = %+v, want Default() %+v", text, p, Default())
		}
	}
}

func TestParseValues(t *testing.T) {
	tests := []struct {
		name string
		text string
		got  func(*Policy) any
		want any
	}{
		{"mode in any case", `mode = "WARN"`, func(p *Policy) any { return p.Mode }, ModeWarn},
		{"severity in any case", "[thresholds]\nblock = \"High\"\nwarn = \"MEDIUM\"",
			func(p *Policy) any { return p.Thresholds },
			Thresholds{Block: finding.High, Warn: finding.Medium}},
		{"days", "[timeouts]\nmax_age = \"7d\"",
			func(p *Policy) any { return p.Timeouts.MaxAge }, 168 * time.Hour},
		{"fractional days", "[timeouts]\nmax_age = \"1.5d\"",
			func(p *Policy) any { return p.Timeouts.MaxAge }, 36 * time.Hour},
		{"go duration", "[timeouts]\nscan = \"1h30m\"",
			func(p *Policy) any { return p.Timeouts.Scan }, 90 * time.Minute},
		{"size in bytes", "[extract]\nmemory_budget = 1048576",
			func(p *Policy) any { return p.Extract.MemoryBudget }, int64(1 << 20)},
		{"size G", "[extract]\nmemory_budget = \"1G\"",
			func(p *Policy) any { return p.Extract.MemoryBudget }, int64(1 << 30)},
		{"size KiB", "[extract]\nmemory_budget = \"512kib\"",
			func(p *Policy) any { return p.Extract.MemoryBudget }, int64(512 << 10)},
		{"extra args", "[scanner.trivy]\nextra_args = [\"--offline-scan\", \"--quiet\"]",
			func(p *Policy) any { return p.Scanner.Trivy.ExtraArgs },
			[]string{"--offline-scan", "--quiet"}},
		{"scope inherits", "mode = \"warn\"\n[thresholds]\nfixable_only = true\n" +
			"[[scope]]\nname = \"gpu\"\n[scope.thresholds]\nwarn = \"low\"",
			func(p *Policy) any { return p.Scopes },
			[]Scope{{Name: "gpu", Mode: ModeWarn, Thresholds: Thresholds{
				Block: finding.Critical, Warn: finding.Low, FixableOnly: true}}}},
		{"exception", "[[exception]]\nid = \"CVE-1\"\nimages = [\"/a/**\"]\n" +
			"expires = 2027-01-31\nreason = \"ok\"",
			func(p *Policy) any { return p.Exceptions },
			[]Exception{{ID: "CVE-1", Images: []string{"/a/**"},
				Expires: Date{2027, time.January, 31}, Reason: "ok"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse("p.toml", []byte(tt.text))
			if err != nil {
				t.Fatal(err)
			}
			if got := tt.got(p); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	_, err := Load("testdata/does-not-exist.toml")
	if err == nil || !strings.Contains(err.Error(), "testdata/does-not-exist.toml") {
		t.Errorf("Load of a missing file: error %v, want one naming the file", err)
	}
}

func TestIndexKeys(t *testing.T) {
	text := `top = 1
[a]
b.c = 2          # dotted
"quoted key" = 3
[[arr]]
x = 1
[[arr]]
x = 2
[arr.sub]
y = 3
s = '''
z = 4
'''
`
	lines := indexKeys(text)
	for path, want := range map[string]int{
		"top": 1, "a": 2, "a.b": 3, "a.b.c": 3, `a."quoted key"`: 4,
		"arr[0]": 5, "arr[0].x": 6, "arr[1].x": 8, "arr.x": 6, "arr[1].sub.y": 10,
		"arr.sub.y": 10, "arr[1].sub.s": 11, "arr[1].nothing": 7, "nowhere": 0,
	} {
		if got := lines.lookup(path); got != want {
			t.Errorf("lookup(%q) = %d, want %d", path, got, want)
		}
	}
	if _, ok := lines["arr[1].sub.z"]; ok {
		t.Error("a line inside a multi-line string was indexed as a key")
	}
}
