package policy

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"

	"github.com/BurntSushi/toml"

	"github.com/scan-gate/scan-gate/gate/finding"
)

// rawValue holds one TOML value as decoded, whatever its type, so that every value is
// checked here and its error can name the key and line.
type rawValue struct {
	value any
	set   bool
}

// UnmarshalTOML implements toml.Unmarshaler.
func (r *rawValue) UnmarshalTOML(value any) error {
	r.value, r.set = value, true
	return nil
}

// The raw* types mirror the file layout; their toml tags are the schema of known keys.
type (
	rawPolicy struct {
		Mode       rawValue       `toml:"mode"`
		Thresholds rawThresholds  `toml:"thresholds"`
		Exception  []rawException `toml:"exception"`
		Scope      []rawScope     `toml:"scope"`
		On         rawOn          `toml:"on"`
		Timeouts   rawTimeouts    `toml:"timeouts"`
		Message    rawMessage     `toml:"message"`
		Scanner    rawScanner     `toml:"scanner"`
		Extract    rawExtract     `toml:"extract"`
		Cache      struct {
			Dir         rawValue `toml:"dir"`
			SharedDir   rawValue `toml:"shared_dir"`
			SharedOwner rawValue `toml:"shared_owner"`
		} `toml:"cache"`
		Audit struct {
			Log rawValue `toml:"log"`
		} `toml:"audit"`
		Prewarm rawPrewarm `toml:"prewarm"`
		Watch   rawWatch   `toml:"watch"`
		Metrics rawMetrics `toml:"metrics"`
	}
	rawThresholds struct {
		Block       rawValue `toml:"block"`
		Warn        rawValue `toml:"warn"`
		FixableOnly rawValue `toml:"fixable_only"`
	}
	rawException struct {
		ID      rawValue `toml:"id"`
		Images  rawValue `toml:"images"`
		Expires rawValue `toml:"expires"`
		Reason  rawValue `toml:"reason"`
	}
	rawScope struct {
		Name       rawValue      `toml:"name"`
		Images     rawValue      `toml:"images"`
		Users      rawValue      `toml:"users"`
		Groups     rawValue      `toml:"groups"`
		Partitions rawValue      `toml:"partitions"`
		Accounts   rawValue      `toml:"accounts"`
		Mode       rawValue      `toml:"mode"`
		Thresholds rawThresholds `toml:"thresholds"`
	}
	rawOn struct {
		NoDecision  rawValue `toml:"no_decision"`
		Unscannable rawValue `toml:"unscannable"`
		Miss        rawValue `toml:"miss"`
		Stale       rawValue `toml:"stale"`
	}
	rawTimeouts struct {
		Scan   rawValue `toml:"scan"`
		Wait   rawValue `toml:"wait"`
		MaxAge rawValue `toml:"max_age"`
	}
	rawMessage struct {
		NextStep       rawValue `toml:"next_step"`
		NoDecisionStep rawValue `toml:"no_decision_step"`
	}
	rawScanner struct {
		Name  rawValue `toml:"name"`
		Trivy struct {
			Path      rawValue `toml:"path"`
			DBDir     rawValue `toml:"db_dir"`
			ExtraArgs rawValue `toml:"extra_args"`
		} `toml:"trivy"`
		Grype    rawGrype    `toml:"grype"`
		QScanner rawQScanner `toml:"qscanner"`
	}
	rawExtract struct {
		ScratchDir   rawValue `toml:"scratch_dir"`
		TmpfsDir     rawValue `toml:"tmpfs_dir"`
		MemoryBudget rawValue `toml:"memory_budget"`
		User         rawValue `toml:"user"`
	}
)

// Load reads and parses the policy file at path.
func Load(path string) (*Policy, error) {
	// O_NONBLOCK: a FIFO named as the policy must not hang the gate.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("reading policy: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading policy: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("reading policy %s: not a regular file", path)
	}
	if fi.Size() > maxPolicySize {
		return nil, fmt.Errorf("reading policy %s: %d bytes is more than a policy needs "+
			"(at most %d)", path, fi.Size(), maxPolicySize)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxPolicySize+1))
	if err != nil {
		return nil, fmt.Errorf("reading policy: %w", err)
	}
	return Parse(path, data)
}

// maxPolicySize bounds what Load reads: a policy is a few kilobytes.
const maxPolicySize = 1 << 20

// Parse decodes and validates a policy. Name is used in errors only. An empty text is the
// default policy. Every problem found is reported, each as an *Error naming the file, the
// dotted key and its line; several are joined with errors.Join.
func Parse(name string, data []byte) (*Policy, error) {
	text := string(data)
	var raw rawPolicy
	md, err := toml.Decode(text, &raw)
	d := &decoder{file: name, lines: indexKeys(text)}
	if err != nil {
		return nil, d.decodeError(text, md, err)
	}

	for _, key := range unknownKeys(md) {
		d.fail(key.String(), "%w%s", ErrUnknownKey, suggest(key))
	}
	p := d.build(&raw)
	if len(d.errs) > 0 {
		return nil, d.err()
	}
	return p, nil
}

// decoder turns a rawPolicy into a Policy, collecting errors.
type decoder struct {
	file  string
	lines keyLines
	errs  []*Error
}

// fail records a problem with the key at path (indexed, "scope[1].mode").
func (d *decoder) fail(path, format string, args ...any) {
	d.errs = append(d.errs, &Error{
		File: d.file,
		Line: d.lines.lookup(path),
		Key:  displayKey(path),
		Err:  fmt.Errorf(format, args...),
	})
}

// err returns the collected problems, in file order.
func (d *decoder) err() error {
	slices.SortStableFunc(d.errs, func(a, b *Error) int { return a.Line - b.Line })
	if len(d.errs) == 1 {
		return d.errs[0]
	}
	errs := make([]error, len(d.errs))
	for i, e := range d.errs {
		errs[i] = e
	}
	return errors.Join(errs...)
}

// decodeError reports a failed toml.Decode: a syntax error, or a value where a table or an
// array of tables belongs (which the toml package reports without our key names).
func (d *decoder) decodeError(text string, md toml.MetaData, err error) error {
	var syntax toml.ParseError
	if errors.As(err, &syntax) {
		return &Error{
			File: d.file,
			Line: syntaxLine(text, syntax.Position),
			Key:  syntax.LastKey,
			Err:  &cause{"syntax error: " + syntax.Message, err},
		}
	}

	for _, key := range unknownKeys(md) {
		d.fail(key.String(), "%w%s", ErrUnknownKey, suggest(key))
	}
	var generic map[string]any
	if _, err := toml.Decode(text, &generic); err == nil {
		d.checkStructure(schema, generic, "")
	}
	if len(d.errs) > 0 {
		return d.err()
	}
	return &Error{File: d.file, Err: fmt.Errorf("decoding policy: %w", err)}
}

// syntaxLine is the line of a syntax error. The toml package counts a newline as soon as it
// has read it, so an error at the end of a line ("[thresholds" then newline) is reported on
// the next; the byte offset places it where the admin must look.
func syntaxLine(text string, pos toml.Position) int {
	if pos.Line <= 0 || pos.Start < 0 || pos.Start > len(text) {
		return pos.Line
	}
	return 1 + strings.Count(text[:pos.Start], "\n")
}

// checkStructure reports tables and arrays of tables that hold something else.
func (d *decoder) checkStructure(fields []schemaField, m map[string]any, prefix string) {
	for _, f := range fields {
		value, ok := m[f.name]
		if !ok || f.kind == leafKey {
			continue
		}
		path := prefix + f.name
		if f.kind == tableKey {
			table, ok := value.(map[string]any)
			if !ok {
				d.fail(path, "want a table [%s], found %s", displayKey(path), typeName(value))
				continue
			}
			d.checkStructure(f.children, table, path+".")
			continue
		}

		var entries []any
		switch v := value.(type) {
		case []map[string]any:
			for _, entry := range v {
				entries = append(entries, entry)
			}
		case []any:
			entries = v
		default:
			d.fail(path, "want an array of tables [[%s]], found %s",
				displayKey(path), typeName(value))
			continue
		}
		for i, entry := range entries {
			at := fmt.Sprintf("%s[%d]", path, i)
			table, ok := entry.(map[string]any)
			if !ok {
				d.fail(at, "want a table, found %s", typeName(entry))
				continue
			}
			d.checkStructure(f.children, table, at+".")
		}
	}
}

// cause keeps an underlying error reachable while showing a shorter message.
type cause struct {
	message string
	err     error
}

// Error returns the short message.
func (c *cause) Error() string { return c.message }

// Unwrap returns the underlying error.
func (c *cause) Unwrap() error { return c.err }

// build fills a default policy from the raw values, recording every problem.
func (d *decoder) build(raw *rawPolicy) *Policy {
	p := Default()
	oneOf(d, "mode", raw.Mode, "mode", &p.Mode, ModeEnforce, ModeWarn, ModeAudit)
	d.thresholds("thresholds", raw.Thresholds, &p.Thresholds, false)

	oneOf(d, "on.no_decision", raw.On.NoDecision, "action", &p.On.NoDecision,
		Block, Warn, Allow)
	oneOf(d, "on.unscannable", raw.On.Unscannable, "action", &p.On.Unscannable,
		Block, Warn, Allow)
	oneOf(d, "on.miss", raw.On.Miss, "miss rule", &p.On.Miss,
		MissScan, MissAllowAndScan, MissBlock)
	oneOf(d, "on.stale", raw.On.Stale, "stale rule", &p.On.Stale,
		StaleUseAndRescan, StaleRescan)

	d.duration("timeouts.scan", raw.Timeouts.Scan, &p.Timeouts.Scan)
	d.duration("timeouts.wait", raw.Timeouts.Wait, &p.Timeouts.Wait)
	d.duration("timeouts.max_age", raw.Timeouts.MaxAge, &p.Timeouts.MaxAge)

	d.text("message.next_step", raw.Message.NextStep, &p.Message.NextStep)
	d.text("message.no_decision_step", raw.Message.NoDecisionStep, &p.Message.NoDecisionStep)

	oneOf(d, "scanner.name", raw.Scanner.Name, "scanner", &p.Scanner.Name,
		ScannerTrivy, ScannerGrype, ScannerQScanner)
	d.name("scanner.trivy.path", raw.Scanner.Trivy.Path, &p.Scanner.Trivy.Path)
	d.absPath("scanner.trivy.db_dir", raw.Scanner.Trivy.DBDir, &p.Scanner.Trivy.DBDir)
	d.stringList("scanner.trivy.extra_args", raw.Scanner.Trivy.ExtraArgs,
		&p.Scanner.Trivy.ExtraArgs)
	d.scannerKeys(&raw.Scanner, p)

	d.absPath("extract.scratch_dir", raw.Extract.ScratchDir, &p.Extract.ScratchDir)
	d.absPath("extract.tmpfs_dir", raw.Extract.TmpfsDir, &p.Extract.TmpfsDir)
	d.size("extract.memory_budget", raw.Extract.MemoryBudget, &p.Extract.MemoryBudget)
	d.user("extract.user", raw.Extract.User, &p.Extract.User)

	d.absPath("cache.dir", raw.Cache.Dir, &p.CacheDir)
	d.absPath("audit.log", raw.Audit.Log, &p.AuditLog)
	d.prewarmKeys(raw, p)
	d.watchKeys(raw, p)

	for i, re := range raw.Exception {
		p.Exceptions = append(p.Exceptions, d.exception(fmt.Sprintf("exception[%d]", i), re))
	}
	names := map[string]bool{}
	for i, rs := range raw.Scope {
		at := fmt.Sprintf("scope[%d]", i)
		s := d.scope(at, rs, p)
		if s.Name != "" && names[s.Name] {
			d.fail(at+".name", "scope name %q is used by an earlier scope; names must be unique",
				s.Name)
		}
		names[s.Name] = true
		p.Scopes = append(p.Scopes, s)
	}
	return p
}

// thresholds decodes a thresholds table over t (which holds the defaults or the inherited
// values) and checks that warn is not above block.
func (d *decoder) thresholds(at string, raw rawThresholds, t *Thresholds, inherited bool) {
	d.severity(at+".block", raw.Block, &t.Block)
	d.severity(at+".warn", raw.Warn, &t.Warn)
	d.bool(at+".fixable_only", raw.FixableOnly, &t.FixableOnly)
	if t.Warn <= t.Block {
		return
	}

	origin := func(set bool) string {
		switch {
		case set:
			return ""
		case inherited:
			return " (inherited from [thresholds])"
		default:
			return " (the default)"
		}
	}
	blame := at + ".warn"
	if raw.Block.set && !raw.Warn.set {
		blame = at + ".block"
	}
	d.fail(blame, "warn threshold %q%s is above block threshold %q%s; "+
		"warn must be at or below block",
		t.Warn, origin(raw.Warn.set), t.Block, origin(raw.Block.set))
}

func (d *decoder) exception(at string, raw rawException) Exception {
	var e Exception
	d.name(at+".id", raw.ID, &e.ID)
	d.patterns(at+".images", raw.Images, &e.Images)
	d.date(at+".expires", raw.Expires, &e.Expires)
	d.text(at+".reason", raw.Reason, &e.Reason)

	if !raw.ID.set {
		d.fail(at, "an exception needs an id (the vulnerability id, such as CVE-2023-38545)")
	}
	if !raw.Expires.set {
		d.fail(at, "exception %q needs expires, the last day it applies (such as 2027-01-31)",
			e.ID)
	}
	switch {
	case !raw.Reason.set:
		d.fail(at, "exception %q needs a reason", e.ID)
	case strings.TrimSpace(e.Reason) == "":
		d.fail(at+".reason", "exception %q needs a reason, not an empty one", e.ID)
	}
	return e
}

func (d *decoder) scope(at string, raw rawScope, p *Policy) Scope {
	s := Scope{Mode: p.Mode, Thresholds: p.Thresholds}
	d.name(at+".name", raw.Name, &s.Name)
	if !raw.Name.set {
		d.fail(at, "a scope needs a name")
	}
	d.patterns(at+".images", raw.Images, &s.Match.Images)
	d.patterns(at+".users", raw.Users, &s.Match.Users)
	d.patterns(at+".groups", raw.Groups, &s.Match.Groups)
	d.patterns(at+".partitions", raw.Partitions, &s.Match.Partitions)
	d.patterns(at+".accounts", raw.Accounts, &s.Match.Accounts)
	oneOf(d, at+".mode", raw.Mode, "mode", &s.Mode, ModeEnforce, ModeWarn, ModeAudit)
	d.thresholds(at+".thresholds", raw.Thresholds, &s.Thresholds, true)
	return s
}

// validPattern checks a glob pattern: path.Match syntax, with "**" for any depth.
func validPattern(pattern string) error {
	if strings.TrimSpace(pattern) == "" {
		return errors.New("empty pattern")
	}
	if _, err := path.Match(pattern, ""); err != nil {
		return fmt.Errorf("bad pattern %q: %w", pattern, err)
	}
	return nil
}

// severity decodes a severity word in any case.
func (d *decoder) severity(at string, raw rawValue, dst *finding.Severity) {
	s, ok := d.stringValue(at, raw)
	if !ok {
		return
	}
	severity, err := finding.ParseSeverity(s)
	if err != nil {
		d.fail(at, "%w", err)
		return
	}
	*dst = severity
}

// oneOf decodes a string that must be one of allowed, in any case.
func oneOf[T ~string](d *decoder, at string, raw rawValue, what string, dst *T, allowed ...T) {
	s, ok := d.stringValue(at, raw)
	if !ok {
		return
	}
	words := make([]string, len(allowed))
	for i, word := range allowed {
		if strings.EqualFold(strings.TrimSpace(s), string(word)) {
			*dst = word
			return
		}
		words[i] = string(word)
	}
	d.fail(at, "unknown %s %q (want one of %s)", what, s, strings.Join(words, ", "))
}
