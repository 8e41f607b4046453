package finding

import (
	"slices"
	"strings"
)

// Normalize makes findings from different scanners comparable: a non-CVE id that has CVE
// aliases (GHSA-..., QID-...) gives way to its first CVE, which all scanners share; then
// findings of one vulnerability in one installed package are merged into one, with the
// union of their aliases and fixed versions and the worst severity. The result is sorted.
func Normalize(fs []Finding) []Finding {
	out := make([]Finding, 0, len(fs))
	index := map[string]int{}
	for _, f := range fs {
		f = preferCVE(f)
		key := f.ID + "\x00" + f.Package + "\x00" + f.Installed
		i, seen := index[key]
		if !seen {
			index[key] = len(out)
			f.Aliases = slices.Clone(f.Aliases)
			f.FixedVersions = slices.Clone(f.FixedVersions)
			out = append(out, f)
			continue
		}
		out[i] = merge(out[i], f)
	}
	for i := range out {
		out[i].Aliases = cleanAliases(out[i].ID, out[i].Aliases)
	}
	Sort(out)
	return out
}

// preferCVE swaps a non-CVE id for its lowest CVE alias.
func preferCVE(f Finding) Finding {
	if isCVE(f.ID) {
		return f
	}
	var cves []string
	for _, a := range f.Aliases {
		if isCVE(a) {
			cves = append(cves, strings.ToUpper(a))
		}
	}
	if len(cves) == 0 {
		return f
	}
	slices.Sort(cves)
	f.Aliases = append(slices.Clone(f.Aliases), f.ID)
	f.ID = cves[0]
	return f
}

func isCVE(id string) bool { return strings.HasPrefix(strings.ToUpper(id), "CVE-") }

// merge folds b into a: aliases and fixed versions united, the worst severity kept, and a
// known fix state preferred over an unknown one.
func merge(a, b Finding) Finding {
	a.Aliases = append(a.Aliases, b.Aliases...)
	for _, v := range b.FixedVersions {
		if !slices.Contains(a.FixedVersions, v) {
			a.FixedVersions = append(a.FixedVersions, v)
		}
	}
	a.Severity = max(a.Severity, b.Severity)
	if a.FixState == FixUnknown || a.FixState == "" || b.FixState == Fixed {
		a.FixState = b.FixState
	}
	if len(a.FixedVersions) > 0 {
		a.FixState = Fixed
	}
	if a.Title == "" {
		a.Title = b.Title
	}
	if a.Location == "" {
		a.Location = b.Location
	}
	a.QualysSeverity = max(a.QualysSeverity, b.QualysSeverity)
	return a
}

// cleanAliases drops empty aliases and the finding's own id, removes duplicates (in any
// case) and sorts what is left. It returns nil for none.
func cleanAliases(id string, aliases []string) []string {
	var out []string
	seen := map[string]bool{strings.ToUpper(id): true}
	for _, a := range aliases {
		upper := strings.ToUpper(a)
		if a == "" || seen[upper] {
			continue
		}
		seen[upper] = true
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}
