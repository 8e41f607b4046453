package hook

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestReadState(t *testing.T) {
	state, err := ReadState(strings.NewReader(`{"ociVersion":"1.0.2","id":"c1",` +
		`"status":"creating","pid":42,"bundle":"/run/b","annotations":{"a":"b"}}`))
	if err != nil || state.ID != "c1" || state.Pid != 42 || state.Bundle != "/run/b" {
		t.Fatalf("ReadState = %+v, %v", state, err)
	}
	for _, bad := range []string{"", "not json", `{"id":"c1"}`,
		`{"bundle":"/b","x":"` + strings.Repeat("a", maxStateSize) + `"}`} {
		if _, err := ReadState(strings.NewReader(bad)); err == nil {
			t.Errorf("ReadState(%.40q) succeeded", bad)
		}
	}
}

func TestResolve(t *testing.T) {
	spec := func(root string, annotations map[string]string) *specs.Spec {
		return &specs.Spec{Root: &specs.Root{Path: root}, Annotations: annotations}
	}
	annotated := map[string]string{ImageAnnotation: "/shared/app.sif"}
	tests := []struct {
		name    string
		spec    *specs.Spec
		state   *specs.State
		trust   bool
		image   string
		ignored string
		err     string
	}{
		{"relative root", spec("rootfs", nil), nil, false, "/b/rootfs", "", ""},
		{"absolute root", spec("/srv/root", nil), nil, false, "/srv/root", "", ""},
		{"annotation not trusted", spec("rootfs", annotated), nil, false, "/b/rootfs",
			"/shared/app.sif", ""},
		{"annotation trusted", spec("rootfs", annotated), nil, true, "/shared/app.sif", "",
			""},
		{"annotation in the state", spec("rootfs", nil),
			&specs.State{Annotations: annotated}, true, "/shared/app.sif", "", ""},
		{"relative annotation", spec("rootfs",
			map[string]string{ImageAnnotation: "app.sif"}), nil, true, "", "",
			"want an absolute path"},
		{"no root", &specs.Spec{}, nil, false, "", "", "no root.path"},
	}
	for _, tt := range tests {
		got, err := Resolve("/b", tt.spec, tt.state, tt.trust)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: error %v, want %q", tt.name, err, tt.err)
			}
			continue
		}
		if err != nil || got.Image != tt.image || got.IgnoredAnnotation != tt.ignored ||
			got.FromAnnotation != (tt.trust && tt.ignored == "" && tt.image != "/b/rootfs") {
			t.Errorf("%s: %+v, %v; want image %q, ignored %q", tt.name, got, err, tt.image,
				tt.ignored)
		}
	}
}

const runcConfig = `{
	"ociVersion": "1.0.2-dev",
	"process": {"args": ["/hello"], "cwd": "/"},
	"root": {"path": "rootfs"},
	"hooks": {"createRuntime": [{"path": "/usr/bin/other"}]},
	"linux": {"x-vendor-extension": {"kept": true}}
}`

func TestInstall(t *testing.T) {
	bundle := t.TempDir()
	config := filepath.Join(bundle, "config.json")
	os.WriteFile(config, []byte(runcConfig), 0o600)
	timeout := 300
	h := specs.Hook{Path: "/usr/local/bin/scan-gate", Args: []string{"scan-gate", "hook"},
		Timeout: &timeout}

	for range 2 { // the second time changes nothing
		if err := Install(bundle, StageCreateRuntime, h); err != nil {
			t.Fatal(err)
		}
	}
	data, _ := os.ReadFile(config)
	var got struct {
		Hooks map[string][]specs.Hook
		Linux map[string]json.RawMessage
	}
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	list := got.Hooks[StageCreateRuntime]
	if len(list) != 2 || list[0].Path != h.Path || list[1].Path != "/usr/bin/other" ||
		*list[0].Timeout != 300 {
		t.Errorf("createRuntime hooks: %+v; want scan-gate first, then the other", list)
	}
	var ext map[string]bool
	if json.Unmarshal(got.Linux["x-vendor-extension"], &ext); !ext["kept"] {
		t.Errorf("an unknown field was not kept: %s", data)
	}
	if fi, _ := os.Stat(config); fi.Mode().Perm() != 0o600 {
		t.Errorf("config.json mode %v, want 0600 kept", fi.Mode().Perm())
	}
	if spec, err := LoadConfig(bundle); err != nil || spec.Root.Path != "rootfs" {
		t.Errorf("the new config.json does not load: %v", err)
	}

	if err := Install(bundle, "poststart", h); err == nil ||
		!strings.Contains(err.Error(), "cannot stop a container") {
		t.Errorf("poststart: %v", err)
	}
	if err := Install(t.TempDir(), StagePrestart, h); err == nil {
		t.Error("installing into a bundle without config.json succeeded")
	}
}

// TestShippedHookJSON checks the hooks.d file in contrib/oci (oci-hooks(5), version 1.0.0).
func TestShippedHookJSON(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "contrib", "oci", "scan-gate-hook.json"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Version string
		Hook    specs.Hook
		When    struct{ Always bool }
		Stages  []string
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&file); err != nil {
		t.Fatal(err)
	}
	if file.Version != "1.0.0" || !filepath.IsAbs(file.Hook.Path) ||
		!slices.Equal(file.Hook.Args, []string{"scan-gate", "hook"}) || !file.When.Always ||
		!slices.Equal(file.Stages, []string{StagePrestart}) {
		t.Errorf("hooks.d file: %+v", file)
	}
	// Longer than the policy's default wait for a scan (2 minutes).
	if file.Hook.Timeout == nil || *file.Hook.Timeout <= 120 {
		t.Errorf("hook timeout %v, want more than 120 seconds", file.Hook.Timeout)
	}
}
