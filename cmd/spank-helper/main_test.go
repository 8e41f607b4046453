package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestStepWithoutContainer(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{"step", "--job=12", "--uid=1000", "--gid=1000", "--policy",
		"/nonexistent/policy.toml", "--", "hostname"}, &stdout, &stderr)
	want := "scan-gate-spank 1\nwatch no\naction allow\nend\n"
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
		!strings.HasPrefix(stderr.String(), "spank-helper step: reading policy: ") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
}

func TestStepBadJob(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"step", "--job=x"}, &stdout, &stderr); code != exitUsage {
		t.Errorf("exit %d, want %d", code, exitUsage)
	}
}
