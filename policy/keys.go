package policy

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// ErrUnknownKey is wrapped by the Error reported for a key the policy does not know, or a
// known key under the wrong table.
var ErrUnknownKey = errors.New("unknown key")

// Error is one problem in a policy file, with where it is.
type Error struct {
	// File is the name the policy was parsed under.
	File string
	// Line is the 1-based line of the key or header; 0 when it could not be found.
	Line int
	// Key is the dotted key ("thresholds.block"); empty for a problem not tied to a key.
	Key string
	// Err says what is wrong.
	Err error
}

// Error formats the problem as "file:line: key: what is wrong".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Key != "" {
		b.WriteString(": ")
		b.WriteString(e.Key)
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns the underlying problem.
func (e *Error) Unwrap() error { return e.Err }

// keyLines maps a key path to the line it first appears on. Paths are dotted, with an
// index after each array-of-tables entry ("scope[1].thresholds.block"); the same key without
// indices ("scope.thresholds.block") maps to its first appearance in any entry.
type keyLines map[string]int

// indexKeys finds the line of every table header and key in a TOML text. It is a small
// line scanner, not a parser: it runs only to place errors, after the text has parsed. Keys
// inside inline tables are not indexed; lookup falls back to the enclosing key's line.
func indexKeys(text string) keyLines {
	lines := keyLines{}
	var (
		table      []string // current table, one indexed segment per key part
		tablePlain []string // current table, key parts only
		entries    = map[string]int{}
		depth      int    // open brackets and braces of a multi-line value
		openQuote  string // delimiter of an open multi-line string
	)
	for n, line := range strings.Split(text, "\n") {
		continued := depth > 0 || openQuote != ""
		depth, openQuote = scanLine(line, depth, openQuote)
		if continued {
			continue
		}
		s := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(s, "[["):
			parts, ok := parseKey(s[2:], "]]")
			if !ok {
				continue
			}
			table, tablePlain = headerPath(parts, entries, true), parts
			lines.record(table, tablePlain, n+1)
		case strings.HasPrefix(s, "["):
			parts, ok := parseKey(s[1:], "]")
			if !ok {
				continue
			}
			table, tablePlain = headerPath(parts, entries, false), parts
			lines.record(table, tablePlain, n+1)
		default:
			parts, ok := parseKey(s, "=")
			if !ok {
				continue
			}
			for i := range parts {
				indexed := append(append([]string{}, table...), quoteParts(parts[:i+1])...)
				plain := append(append([]string{}, tablePlain...), parts[:i+1]...)
				lines.record(indexed, plain, n+1)
			}
		}
	}
	return lines
}

// headerPath turns the parts of a table header into indexed segments, counting the entries
// of arrays of tables as it goes.
func headerPath(parts []string, entries map[string]int, array bool) []string {
	segments := make([]string, len(parts))
	for i, part := range parts {
		plain := toml.Key(parts[:i+1]).String()
		segments[i] = toml.Key{part}.String()
		if array && i == len(parts)-1 {
			entries[plain]++
		}
		if count := entries[plain]; count > 0 {
			segments[i] += "[" + strconv.Itoa(count-1) + "]"
		}
	}
	return segments
}

func quoteParts(parts []string) []string {
	quoted := make([]string, len(parts))
	for i, part := range parts {
		quoted[i] = toml.Key{part}.String()
	}
	return quoted
}

func (l keyLines) record(indexed, plain []string, line int) {
	for _, path := range []string{strings.Join(indexed, "."), toml.Key(plain).String()} {
		if _, seen := l[path]; !seen {
			l[path] = line
		}
	}
}

// lookup returns the line of path, or of its nearest enclosing key or table; 0 if none.
func (l keyLines) lookup(path string) int {
	for p := path; p != ""; p = parentPath(p) {
		if line, ok := l[p]; ok {
			return line
		}
	}
	return 0
}

// parentPath strips the last index or key part: "a[1].b" -> "a[1]" -> "a" -> "".
func parentPath(path string) string {
	if strings.HasSuffix(path, "]") {
		if i := strings.LastIndexByte(path, '['); i > 0 {
			return path[:i]
		}
	}
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[:i]
	}
	return ""
}

// displayKey drops array indices: "scope[1].thresholds.block" -> "scope.thresholds.block".
func displayKey(path string) string {
	var b strings.Builder
	inIndex := false
	for _, r := range path {
		switch {
		case r == '[' && !inIndex:
			inIndex = true
		case r == ']' && inIndex:
			inIndex = false
		case !inIndex:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// scanLine follows strings, comments and brackets through one line, so that the lines of a
// multi-line array or string are not mistaken for keys or headers.
func scanLine(line string, depth int, openQuote string) (int, string) {
	i := 0
	if openQuote != "" {
		end := strings.Index(line, openQuote)
		if end < 0 {
			return depth, openQuote
		}
		i, openQuote = end+len(openQuote), ""
	}
	for i < len(line) {
		c := line[i]
		switch {
		case c == '#':
			return depth, ""
		case c == '"' || c == '\'':
			triple := strings.Repeat(string(c), 3)
			if strings.HasPrefix(line[i:], triple) {
				end := strings.Index(line[i+3:], triple)
				if end < 0 {
					return depth, triple
				}
				i += 3 + end + 3
				continue
			}
			i = skipString(line, i)
			continue
		case c == '[' || c == '{':
			depth++
		case (c == ']' || c == '}') && depth > 0:
			depth--
		}
		i++
	}
	return depth, ""
}

// skipString returns the index just past the one-line string starting at line[start].
func skipString(line string, start int) int {
	quote := line[start]
	for i := start + 1; i < len(line); i++ {
		switch {
		case line[i] == '\\' && quote == '"':
			i++
		case line[i] == quote:
			return i + 1
		}
	}
	return len(line)
}

// parseKey reads a dotted key (bare or quoted parts) at the start of s, followed by end.
func parseKey(s, end string) ([]string, bool) {
	var parts []string
	for {
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			return nil, false
		}
		var part string
		switch s[0] {
		case '"', '\'':
			stop := skipString(s, 0)
			if stop < 2 || s[stop-1] != s[0] {
				return nil, false
			}
			part = s[1 : stop-1]
			if s[0] == '"' {
				if unquoted, err := strconv.Unquote(s[:stop]); err == nil {
					part = unquoted
				}
			}
			s = s[stop:]
		default:
			stop := strings.IndexFunc(s, func(r rune) bool { return !isBareKeyRune(r) })
			if stop < 0 {
				stop = len(s)
			}
			if stop == 0 {
				return nil, false
			}
			part, s = s[:stop], s[stop:]
		}
		parts = append(parts, part)
		s = strings.TrimLeft(s, " \t")
		switch {
		case strings.HasPrefix(s, "."):
			s = s[1:]
		case strings.HasPrefix(s, end):
			return parts, true
		default:
			return nil, false
		}
	}
}

func isBareKeyRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
		r == '_' || r == '-'
}

// keyKind says what a key of the schema holds.
type keyKind int

const (
	leafKey  keyKind = iota // a value
	tableKey                // a [table]
	arrayKey                // an [[array]] of tables
)

// schemaField is one key the policy knows, read from the toml tags of rawPolicy.
type schemaField struct {
	name     string
	kind     keyKind
	children []schemaField
}

var (
	rawValueType = reflect.TypeFor[rawValue]()
	schema       = schemaOf(reflect.TypeFor[rawPolicy]())
	knownKeys    = flattenSchema(schema, "", map[string]keyKind{})
)

func schemaOf(t reflect.Type) []schemaField {
	var fields []schemaField
	for i := range t.NumField() {
		f := t.Field(i)
		field := schemaField{name: f.Tag.Get("toml")}
		switch {
		case f.Type == rawValueType:
			field.kind = leafKey
		case f.Type.Kind() == reflect.Slice:
			field.kind, field.children = arrayKey, schemaOf(f.Type.Elem())
		default:
			field.kind, field.children = tableKey, schemaOf(f.Type)
		}
		fields = append(fields, field)
	}
	return fields
}

func flattenSchema(fields []schemaField, prefix string,
	into map[string]keyKind) map[string]keyKind {
	for _, f := range fields {
		into[prefix+f.name] = f.kind
		flattenSchema(f.children, prefix+f.name+".", into)
	}
	return into
}

// unknownKeys returns the keys of a decoded file the schema does not know, outermost only.
// It checks every key rather than trusting MetaData.Undecoded alone, because the toml
// package matches keys to struct fields case-insensitively: "Mode" would silently set mode.
// Keys below a known value ("mode.x" in mode = {x = 1}) are left to the value's type check.
func unknownKeys(md toml.MetaData) []toml.Key {
	var unknown []toml.Key
	reported := map[string]bool{}
	for _, key := range md.Keys() {
		if _, ok := knownKeys[key.String()]; ok || reported[key.String()] {
			continue
		}
		covered := false
		for i := 1; i < len(key); i++ {
			prefix := key[:i].String()
			if kind, ok := knownKeys[prefix]; reported[prefix] || ok && kind == leafKey {
				covered = true
				break
			}
		}
		if !covered {
			reported[key.String()] = true
			unknown = append(unknown, key)
		}
	}
	return unknown
}

// suggest offers a likely intended key for an unknown one: a near spelling in the same
// table, or the tables where a key of that name belongs.
func suggest(key toml.Key) string {
	parent, last := key[:len(key)-1].String(), key[len(key)-1]
	best, bestDistance := "", 3
	var places []string
	for known, kind := range knownKeys {
		knownParent, knownLast := "", known
		if i := strings.LastIndexByte(known, '.'); i >= 0 {
			knownParent, knownLast = known[:i], known[i+1:]
		}
		if knownParent == parent {
			d := editDistance(strings.ToLower(last), knownLast)
			if d < bestDistance || d == bestDistance && known < best {
				best, bestDistance = known, d
			}
		}
		if knownLast == strings.ToLower(last) && knownParent != parent {
			places = append(places, placeOf(knownParent, kind))
		}
	}
	if best != "" && bestDistance < len(last) {
		return fmt.Sprintf(" (did you mean %s?)", best)
	}
	if len(places) > 0 {
		slices.Sort(places)
		return fmt.Sprintf(" (%s belongs %s)", last, strings.Join(places, " or "))
	}
	return ""
}

func placeOf(parent string, kind keyKind) string {
	if parent == "" {
		if kind == leafKey {
			return "at the top, before any [table]"
		}
		return "at the top level"
	}
	if knownKeys[parent] == arrayKey {
		return "under [[" + parent + "]]"
	}
	return "under [" + parent + "]"
}

// editDistance is the Levenshtein distance between two short strings.
func editDistance(a, b string) int {
	previous := make([]int, len(b)+1)
	current := make([]int, len(b)+1)
	for j := range previous {
		previous[j] = j
	}
	for i := 1; i <= len(a); i++ {
		current[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			current[j] = min(previous[j]+1, current[j-1]+1, previous[j-1]+cost)
		}
		previous, current = current, previous
	}
	return previous[len(b)]
}
