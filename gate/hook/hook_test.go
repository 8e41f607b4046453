package hook

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

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

	for i := range 2 { // the second time changes nothing
		changed, err := Install(bundle, StageCreateRuntime, h)
		if err != nil || changed != (i == 0) {
			t.Fatalf("install %d: changed %v, %v", i+1, changed, err)
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

	if _, err := Install(bundle, "poststart", h); !errors.Is(err, ErrStage) {
		t.Errorf("poststart: %v, want ErrStage", err)
	}
	if _, err := Install(t.TempDir(), StagePrestart, h); err == nil {
		t.Error("installing into a bundle without config.json succeeded")
	}

	// Another stage moves the hook there: the gate never runs twice.
	if _, err := Install(bundle, StagePrestart, h); err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(config)
	got.Hooks = nil
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	created, prestart := got.Hooks[StageCreateRuntime], got.Hooks[StagePrestart]
	if len(created) != 1 || created[0].Path != "/usr/bin/other" ||
		len(prestart) != 1 || prestart[0].Path != h.Path {
		t.Errorf("after installing at prestart: createRuntime %+v, prestart %+v; want the "+
			"gate only at prestart", created, prestart)
	}
}

// writeBundle makes a bundle directory holding config (when not empty) as config.json.
func writeBundle(t *testing.T, config string) string {
	t.Helper()
	bundle := t.TempDir()
	os.Chmod(bundle, 0o755)
	if config != "" {
		if err := os.WriteFile(filepath.Join(bundle, "config.json"), []byte(config),
			0o644); err != nil {
			t.Fatal(err)
		}
	}
	return bundle
}

// TestLoadConfigRefuses checks that config.json is read once, as a regular file of bounded
// size that nobody but root or the running user can change: a FIFO would let the bundle's
// owner serve the runtime one config and the hook another (or hang the hook), a link to
// /dev/zero would exhaust its memory.
func TestLoadConfigRefuses(t *testing.T) {
	fifo := writeBundle(t, "")
	if err := syscall.Mkfifo(filepath.Join(fifo, "config.json"), 0o644); err != nil {
		t.Fatal(err)
	}
	devZero := writeBundle(t, "")
	if err := os.Symlink("/dev/zero", filepath.Join(devZero, "config.json")); err != nil {
		t.Fatal(err)
	}
	linked := writeBundle(t, "")
	clean := filepath.Join(writeBundle(t, runcConfig), "config.json")
	if err := os.Symlink(clean, filepath.Join(linked, "config.json")); err != nil {
		t.Fatal(err)
	}
	oversize := writeBundle(t, `{"ociVersion": "1.0.2", "x": "`+
		strings.Repeat("a", MaxConfigSize)+`"}`)
	groupWritable := writeBundle(t, runcConfig)
	os.Chmod(filepath.Join(groupWritable, "config.json"), 0o664)
	worldWritableDir := writeBundle(t, runcConfig)
	os.Chmod(worldWritableDir, 0o777)

	for _, tc := range []struct {
		name, bundle, want string
	}{
		{"fifo", fifo, "not a regular file"},
		{"link to /dev/zero", devZero, "too many levels of symbolic links"},
		{"link to a clean config", linked, "too many levels of symbolic links"},
		{"oversize", oversize, "larger than"},
		{"group-writable config.json", groupWritable, "writable by its group or others"},
		{"world-writable bundle", worldWritableDir, "writable by its group or others"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() {
				_, err := LoadConfig(tc.bundle)
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("LoadConfig = %v, want an error with %q", err, tc.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("LoadConfig hangs")
			}
		})
	}

	if spec, err := LoadConfig(writeBundle(t, runcConfig)); err != nil ||
		spec.Root.Path != "rootfs" {
		t.Errorf("a sound bundle: %v", err)
	}
}

// TestLoadConfigOwner checks that a bundle owned by another user is refused.
func TestLoadConfigOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("giving a file to another user needs root")
	}
	bundle := writeBundle(t, runcConfig)
	if err := os.Chown(filepath.Join(bundle, "config.json"), 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(bundle); !errors.Is(err, ErrUntrustedBundle) {
		t.Errorf("config.json of uid 65534: %v, want ErrUntrustedBundle", err)
	}

	root := t.TempDir()
	os.Chmod(root, 0o755)
	if err := CheckRoot(root); err != nil {
		t.Errorf("CheckRoot(root's own directory) = %v", err)
	}
	os.Chown(root, 65534, 65534)
	if err := CheckRoot(root); !errors.Is(err, ErrUntrustedBundle) {
		t.Errorf("CheckRoot(directory of uid 65534) = %v, want ErrUntrustedBundle", err)
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
