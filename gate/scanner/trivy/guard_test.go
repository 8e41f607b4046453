package trivy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scan-gate/scan-gate/gate/scanner"
)

func TestCheckBlindSpots(t *testing.T) {
	debianRoot := t.TempDir()
	writeFile(t, debianRoot, "var/lib/dpkg/status", "Package: x\n")
	bareRoot := t.TempDir()

	noOS := &report{SchemaVersion: 2}
	withOS, err := parseReport([]byte(sampleReport))
	if err != nil {
		t.Fatal(err)
	}
	denied := &stderrLog{}
	denied.line("2026-12-03T17:00:00Z\tDEBUG\tPermission error\tfile_path=\"var/lib/dpkg/status\"")
	// The OS detected, no package read from its database: Trivy's report of a status file
	// it could not parse, or a scanner that did not scan.
	osNoPackages, err := parseReport([]byte(`{"SchemaVersion": 2,
		"Metadata": {"OS": {"Family": "debian", "Name": "12.5"}},
		"Results": [{"Target": "x (debian 12.5)", "Class": "os-pkgs", "Type": "debian"}]}`))
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		rep     *report
		root    string
		log     *stderrLog
		wantErr string
	}{
		{"no OS, dpkg database", noOS, debianRoot, &stderrLog{}, "detected no OS"},
		{"no OS, no database", noOS, bareRoot, &stderrLog{}, "detected no operating system"},
		{"OS scanned", withOS, debianRoot, &stderrLog{}, ""},
		{"permission error", withOS, debianRoot, denied, "could not read 1 file(s)"},
		{"OS without packages, dpkg database", osNoPackages, debianRoot, &stderrLog{},
			"detected debian 12.5 and scanned no OS packages"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkBlindSpots(tt.rep, tt.root, tt.log)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("checkBlindSpots() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, scanner.ErrIncomplete) ||
				!strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("checkBlindSpots() = %v, want ErrIncomplete saying %q",
					err, tt.wantErr)
			}
		})
	}
}

func TestStderrLog(t *testing.T) {
	log := &stderrLog{}
	input := "2026-12-03T17:00:00Z\tINFO\t[vulndb] Need to update DB\n" +
		"2026-12-03T17:00:00Z\tDEBUG\t[analyzer] Permission error\tfile_path=\"etc/sh\\tadow\"\n" +
		"2026-12-03T17:00:01Z\tDEBUG\tPermission error\tfile_path=\"var/lib/dpkg/status\"\n" +
		"2026-12-03T17:00:01Z\tDEBUG\t[x] Not a Permission error\tfile_path=\"etc/passwd\"\n" +
		"2026-12-03T17:00:01Z\tFATAL\tFatal error\trun error: boom"
	// Written in odd pieces, as a pipe may deliver it.
	for len(input) > 0 {
		n := min(7, len(input))
		log.Write([]byte(input[:n]))
		input = input[n:]
	}
	log.flush()

	if log.permissionErrors != 2 || log.firstPermissionError != "etc/sh\tadow" {
		t.Errorf("permission errors = %d, first %q; want 2, %q",
			log.permissionErrors, log.firstPermissionError, "etc/sh\tadow")
	}
	if !strings.HasSuffix(log.tail(), "run error: boom") {
		t.Errorf("tail() = %q, want it to end with the last line", log.tail())
	}

	for range 2 * tailLines {
		log.Write([]byte(strings.Repeat("x", 2*maxLineKept) + "\n"))
	}
	if len(log.last) != tailLines || len(log.last[0]) > maxLineKept+3 {
		t.Errorf("kept %d lines of %d bytes, want %d lines of at most %d",
			len(log.last), len(log.last[0]), tailLines, maxLineKept+3)
	}
}

func writeFile(t *testing.T, root, rel, content string) {
	t.Helper()
	path := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mkdir(t *testing.T, root, rel string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(root, rel), 0o755); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}
