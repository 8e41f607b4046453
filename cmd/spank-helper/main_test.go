package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStepWithoutContainer(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{"step", "--job=12", "--uid=1000", "--gid=1000", "--policy",
		"/nonexistent/policy.toml", "--", "hostname"}, &stdout, &stderr)
	want := "scan-gate-spank 2\nwatch no\naction allow\nend\n"
	if code != exitOK || stdout.String() != want || stderr.Len() != 0 {
		t.Errorf("exit %d, stdout %q, stderr %q; want 0, %q, nothing", code, stdout.String(),
			stderr.String(), want)
	}
}

func TestStepBadPolicy(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{"step", "--job=12", "--policy", "/nonexistent/policy.toml", "--",
		"apptainer", "exec", "/x.sif", "true"}, &stdout, &stderr)
	if code != exitUsage || stdout.Len() != 0 ||
		!strings.HasPrefix(stderr.String(), "spank-helper step: reading policy: ") ||
		strings.Count(stderr.String(), "reading policy") != 1 {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
}

func TestStepPolicyParseError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.toml")
	if err := os.WriteFile(path, []byte("mode = \"strict\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run([]string{"step", "--job=12", "--policy", path, "--", "apptainer", "exec",
		"/x.sif", "true"}, &stdout, &stderr)
	want := "spank-helper step: reading policy: " + path + ":1: mode: "
	if code != exitUsage || !strings.HasPrefix(stderr.String(), want) {
		t.Errorf("exit %d, stderr %q; want %d, %q...", code, stderr.String(), exitUsage, want)
	}
}

// TestStepSIFRunDirectly runs a SIF file named like anything else as the step's program:
// it is an image launch, so the policy is read (and here missing), while a script is not.
func TestStepSIFRunDirectly(t *testing.T) {
	dir := t.TempDir()
	sif := "#!/usr/bin/env run-singularity\n\x00SIF_MAGIC\x000-rest-of-the-header"
	os.WriteFile(filepath.Join(dir, "app.img"), []byte(sif), 0o755)
	os.WriteFile(filepath.Join(dir, "run.sh"), []byte("#!/bin/sh\necho hi\n"), 0o755)
	for _, tt := range []struct {
		program string
		code    int
	}{{"./app.img", exitUsage}, {filepath.Join(dir, "app.img"), exitUsage},
		{"./run.sh", exitOK}} {
		var stdout, stderr bytes.Buffer
		code := run([]string{"step", "--job=12", "--cwd", dir, "--policy",
			"/nonexistent/policy.toml", "--", tt.program}, &stdout, &stderr)
		if code != tt.code {
			t.Errorf("step running %s: exit %d, want %d; stderr %q", tt.program, code,
				tt.code, stderr.String())
		}
	}
}

func TestStepBadJob(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"step", "--job=x"}, &stdout, &stderr); code != exitUsage {
		t.Errorf("exit %d, want %d", code, exitUsage)
	}
}
