package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// WriteEffective writes the effective policy as TOML: every key, defaults filled in, scopes
// with their inherited values spelled out. Parsing the output gives the same policy.
func (p *Policy) WriteEffective(w io.Writer) error {
	if _, err := w.Write(p.canonical()); err != nil {
		return fmt.Errorf("writing effective policy: %w", err)
	}
	return nil
}

// Digest identifies the effective policy: "sha256:<hex>" over its canonical TOML, so that
// comments, layout and spelled-out defaults do not change it and any value change does.
func (p *Policy) Digest() string {
	sum := sha256.Sum256(p.canonical())
	return "sha256:" + hex.EncodeToString(sum[:])
}

// canonical encodes the effective policy in a fixed key order and value format.
func (p *Policy) canonical() []byte {
	var w tomlWriter
	w.str("mode", string(p.Mode))
	w.table("thresholds")
	w.thresholds(p.Thresholds)

	w.table("on")
	w.str("no_decision", string(p.On.NoDecision))
	w.str("unscannable", string(p.On.Unscannable))
	w.str("miss", string(p.On.Miss))
	w.str("stale", string(p.On.Stale))

	w.table("timeouts")
	w.str("scan", formatDuration(p.Timeouts.Scan))
	w.str("wait", formatDuration(p.Timeouts.Wait))
	w.str("max_age", formatDuration(p.Timeouts.MaxAge))

	w.table("message")
	w.str("next_step", p.Message.NextStep)
	w.str("no_decision_step", p.Message.NoDecisionStep)

	w.table("scanner")
	w.str("name", p.Scanner.Name)
	w.table("scanner.trivy")
	w.str("path", p.Scanner.Trivy.Path)
	w.str("db_dir", p.Scanner.Trivy.DBDir)
	w.list("extra_args", p.Scanner.Trivy.ExtraArgs)
	w.writeScanners(p)

	w.table("extract")
	w.str("scratch_dir", p.Extract.ScratchDir)
	w.str("tmpfs_dir", p.Extract.TmpfsDir)
	if size := formatSize(p.Extract.MemoryBudget); strings.HasSuffix(size, "B") {
		w.str("memory_budget", size)
	} else {
		w.raw("memory_budget", size)
	}
	w.str("user", p.Extract.User)

	w.table("cache")
	w.str("dir", p.CacheDir)
	w.str("shared_dir", p.SharedCacheDir)
	w.str("shared_owner", p.SharedCacheOwner)
	w.table("audit")
	w.str("log", p.AuditLog)
	w.writePrewarm(p)
	w.writeWatch(p)

	for _, e := range p.Exceptions {
		w.arrayEntry("exception")
		w.str("id", e.ID)
		w.list("images", e.Images)
		w.raw("expires", e.Expires.String())
		w.str("reason", e.Reason)
	}
	for _, s := range p.Scopes {
		w.arrayEntry("scope")
		w.str("name", s.Name)
		w.list("images", s.Match.Images)
		w.list("users", s.Match.Users)
		w.list("groups", s.Match.Groups)
		w.list("partitions", s.Match.Partitions)
		w.list("accounts", s.Match.Accounts)
		w.str("mode", string(s.Mode))
		w.table("scope.thresholds")
		w.thresholds(s.Thresholds)
	}
	return w.Bytes()
}

// tomlWriter writes the small subset of TOML the policy needs.
type tomlWriter struct{ bytes.Buffer }

func (w *tomlWriter) table(name string) {
	fmt.Fprintf(w, "\n[%s]\n", name)
}

func (w *tomlWriter) arrayEntry(name string) {
	fmt.Fprintf(w, "\n[[%s]]\n", name)
}

func (w *tomlWriter) raw(key, value string) {
	fmt.Fprintf(w, "%s = %s\n", key, value)
}

func (w *tomlWriter) str(key, value string) {
	w.raw(key, quote(value))
}

func (w *tomlWriter) list(key string, values []string) {
	quoted := make([]string, len(values))
	for i, v := range values {
		quoted[i] = quote(v)
	}
	w.raw(key, "["+strings.Join(quoted, ", ")+"]")
}

func (w *tomlWriter) thresholds(t Thresholds) {
	w.str("block", t.Block.String())
	w.str("warn", t.Warn.String())
	w.raw("fixable_only", strconv.FormatBool(t.FixableOnly))
}

// quote writes s as a TOML basic string. Unlike strconv.Quote it never uses \x escapes,
// which TOML lacks.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\t':
			b.WriteString(`\t`)
		case '\n':
			b.WriteString(`\n`)
		case '\f':
			b.WriteString(`\f`)
		case '\r':
			b.WriteString(`\r`)
		default:
			if r < 0x20 || r == 0x7f {
				fmt.Fprintf(&b, `\u%04X`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}
