package policy

import (
	"errors"
	"fmt"
	"math"
	"path"
	"strconv"
	"strings"
	"time"
)

// typeName names the TOML type of a decoded value for messages.
func typeName(value any) string {
	switch v := value.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case time.Time:
		if v.Location().String() == "date-local" {
			return "a date"
		}
		return "a date-time"
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	default:
		return fmt.Sprintf("a %T", value)
	}
}

// stringValue returns a set string value; ok is false when unset or not a string.
func (d *decoder) stringValue(at string, raw rawValue) (string, bool) {
	if !raw.set {
		return "", false
	}
	s, ok := raw.value.(string)
	if !ok {
		d.fail(at, "want a string, found %s", typeName(raw.value))
	}
	return s, ok
}

// text decodes any string, empty included.
func (d *decoder) text(at string, raw rawValue, dst *string) {
	if s, ok := d.stringValue(at, raw); ok {
		*dst = s
	}
}

// name decodes a string that must not be blank.
func (d *decoder) name(at string, raw rawValue, dst *string) {
	s, ok := d.stringValue(at, raw)
	if !ok {
		return
	}
	if strings.TrimSpace(s) == "" {
		d.fail(at, "must not be empty")
		return
	}
	*dst = s
}

// absPath decodes an absolute path.
func (d *decoder) absPath(at string, raw rawValue, dst *string) {
	s, ok := d.stringValue(at, raw)
	if !ok {
		return
	}
	if !path.IsAbs(s) {
		d.fail(at, "want an absolute path, found %q", s)
		return
	}
	*dst = s
}

// user decodes the unprivileged user name; root would defeat its purpose.
func (d *decoder) user(at string, raw rawValue, dst *string) {
	s, ok := d.stringValue(at, raw)
	if !ok {
		return
	}
	switch strings.TrimSpace(s) {
	case "":
		d.fail(at, "must not be empty")
	case "root", "0":
		d.fail(at, "must be an unprivileged user, not %q: image content is untrusted", s)
	default:
		*dst = s
	}
}

// stringList decodes an array of strings; an empty array leaves nil.
func (d *decoder) stringList(at string, raw rawValue, dst *[]string) bool {
	if !raw.set {
		return true
	}
	list, ok := raw.value.([]any)
	if !ok {
		d.fail(at, "want an array of strings, found %s", typeName(raw.value))
		return false
	}
	var out []string
	for i, item := range list {
		s, ok := item.(string)
		if !ok {
			d.fail(at, "item %d: want a string, found %s", i+1, typeName(item))
			return false
		}
		out = append(out, s)
	}
	*dst = out
	return true
}

// patterns decodes an array of glob patterns.
func (d *decoder) patterns(at string, raw rawValue, dst *[]string) {
	if !d.stringList(at, raw, dst) {
		return
	}
	for _, pattern := range *dst {
		if err := validPattern(pattern); err != nil {
			d.fail(at, "%w", err)
		}
	}
}

func (d *decoder) bool(at string, raw rawValue, dst *bool) {
	if !raw.set {
		return
	}
	b, ok := raw.value.(bool)
	if !ok {
		d.fail(at, "want true or false, found %s", typeName(raw.value))
		return
	}
	*dst = b
}

// date decodes a TOML local date (2027-01-31, unquoted).
func (d *decoder) date(at string, raw rawValue, dst *Date) {
	if !raw.set {
		return
	}
	t, ok := raw.value.(time.Time)
	if !ok || t.Location().String() != "date-local" {
		d.fail(at, "want a date such as 2027-01-31 (no quotes, no time), found %s",
			typeName(raw.value))
		return
	}
	*dst = DateOf(t)
}

// duration decodes a positive duration string.
func (d *decoder) duration(at string, raw rawValue, dst *time.Duration) {
	s, ok := d.stringValue(at, raw)
	if !ok {
		return
	}
	duration, err := parseDuration(s)
	if err != nil {
		d.fail(at, "%w", err)
		return
	}
	*dst = duration
}

// size decodes a positive byte count: an integer, or a string with a unit.
func (d *decoder) size(at string, raw rawValue, dst *int64) {
	if !raw.set {
		return
	}
	var (
		size int64
		err  error
	)
	switch v := raw.value.(type) {
	case int64:
		size = v
	case string:
		size, err = parseSize(v)
	default:
		err = fmt.Errorf("want a size such as \"256MiB\" or a number of bytes, found %s",
			typeName(raw.value))
	}
	if err == nil && size <= 0 {
		err = fmt.Errorf("size must be above zero, found %d", size)
	}
	if err != nil {
		d.fail(at, "%w", err)
		return
	}
	*dst = size
}

const day = 24 * time.Hour

// parseDuration accepts Go durations ("90s", "10m", "1h30m") and days ("7d", "1.5d"), and
// requires a value above zero.
func parseDuration(s string) (time.Duration, error) {
	var (
		duration time.Duration
		err      error
	)
	if days, ok := strings.CutSuffix(s, "d"); ok && isDecimal(days) {
		n, _ := strconv.ParseFloat(days, 64)
		if n*float64(day) >= math.MaxInt64 {
			return 0, fmt.Errorf("duration %q is too long", s)
		}
		duration = time.Duration(n * float64(day))
	} else if duration, err = time.ParseDuration(s); err != nil {
		return 0, fmt.Errorf("invalid duration %q "+
			"(want a duration such as \"90s\", \"10m\", \"2h\" or \"7d\")", s)
	}
	if duration <= 0 {
		return 0, fmt.Errorf("duration must be above zero, found %q", s)
	}
	return duration, nil
}

// isDecimal reports whether s is digits with at most one decimal point inside.
func isDecimal(s string) bool {
	whole, fraction, hasPoint := strings.Cut(s, ".")
	digits := func(t string) bool {
		return t != "" && strings.Trim(t, "0123456789") == ""
	}
	return digits(whole) && (!hasPoint || digits(fraction))
}

// formatDuration writes a duration as parseDuration reads it, without zero units:
// "10m", "168h", "1h30m".
func formatDuration(duration time.Duration) string {
	s := duration.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// sizeUnits are the accepted suffixes, in any case. K, M, G and T are binary, as in Slurm.
var sizeUnits = []struct {
	suffix     string
	multiplier int64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"t", 1 << 40},
}

var errBadSize = errors.New("want a whole number with an optional unit " +
	"K, M, G, T, KiB, MiB, GiB or TiB (binary), such as \"256MiB\"")

// parseSize reads "256MiB", "512m", "1G" or "1048576" as bytes.
func parseSize(s string) (int64, error) {
	number, multiplier := strings.TrimSpace(s), int64(1)
	lower := strings.ToLower(number)
	for _, unit := range sizeUnits {
		if strings.HasSuffix(lower, unit.suffix) {
			number = strings.TrimSpace(number[:len(number)-len(unit.suffix)])
			multiplier = unit.multiplier
			break
		}
	}
	if number == "" || strings.Trim(number, "0123456789") != "" {
		return 0, fmt.Errorf("invalid size %q: %w", s, errBadSize)
	}
	n, err := strconv.ParseInt(number, 10, 64)
	if err != nil || n > math.MaxInt64/multiplier {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return n * multiplier, nil
}

// formatSize writes a byte count in the largest binary unit that divides it exactly.
func formatSize(size int64) string {
	for _, unit := range []struct {
		name       string
		multiplier int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if size > 0 && size%unit.multiplier == 0 {
			return strconv.FormatInt(size/unit.multiplier, 10) + unit.name
		}
	}
	return strconv.FormatInt(size, 10)
}
