package main

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestOCIConfLines reads the oci.conf lines shipped in contrib/oci and checks that each
// runtime command that goes through scan-gate is a check-bundle call whose flags parse and
// which hands the untouched runc command line on.
func TestOCIConfLines(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot(), "contrib", "oci", "oci.conf"))
	if err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`(?m)^#?(RunTime\w+)="([^"]*)"$`)
	patterns := strings.NewReplacer("%b", "/spool/bundle", "%j", "42", "%u", "alice",
		"%U", "1000", "%n", "node1", "%s", "0", "%t", "0")
	gated := 0
	for _, m := range line.FindAllStringSubmatch(string(data), -1) {
		words := strings.Fields(patterns.Replace(m[2]))
		if words[0] == "runc" {
			continue
		}
		gated++
		if len(words) < 3 || words[0] != "/usr/local/bin/scan-gate" ||
			words[1] != "hook" || words[2] != "check-bundle" {
			t.Errorf("%s: %q is not a scan-gate hook check-bundle call", m[1], m[2])
			continue
		}
		fs := newFlagSet("hook", io.Discard)
		o := hookFlags(fs)
		if err := fs.Parse(words[3:]); err != nil {
			t.Errorf("%s: flags: %v", m[1], err)
			continue
		}
		rest := fs.Args()
		if o.who.JobID != "42" || o.who.User != "alice" || len(rest) < 3 ||
			rest[0] != "/spool/bundle" || rest[1] != "--" || rest[2] != "runc" ||
			!slices.Contains(rest, "/spool/bundle") {
			t.Errorf("%s: job %q, user %q, rest %q", m[1], o.who.JobID, o.who.User, rest)
		}
	}
	if gated != 2 {
		t.Errorf("%d gated runtime commands, want RunTimeCreate and RunTimeRun", gated)
	}
}

// TestUsageExitStatus checks that arguments that mean nothing exit 2, before anything is
// done: a hook stage that cannot stop a container, a cache age that is not positive.
func TestUsageExitStatus(t *testing.T) {
	bundle := t.TempDir()
	config := filepath.Join(bundle, "config.json")
	if err := os.WriteFile(config, []byte(`{"root": {"path": "rootfs"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"hook", "install-bundle", "--stage", "poststart", bundle},
		{"hook", "install-bundle", "--timeout", "-1", bundle},
		{"cache", "gc", "--unused", "-5h"},
		{"cache", "gc", "--unused", "0s"},
	} {
		var stdout, stderr strings.Builder
		if got := run(args, &stdout, &stderr); got != exitUsage {
			t.Errorf("%q: exit %d, want %d (stderr %q)", args, got, exitUsage, stderr.String())
		}
		if stdout.Len() > 0 {
			t.Errorf("%q printed %q, want nothing done", args, stdout.String())
		}
	}
	if data, _ := os.ReadFile(config); strings.Contains(string(data), "hooks") {
		t.Errorf("a refused install-bundle changed config.json: %s", data)
	}
}
