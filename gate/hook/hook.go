// Package hook gates OCI containers: it reads the state a runtime hands a hook on stdin and
// the bundle's config.json, and names what the gate must check before the container's
// process runs, the image an annotation names or the root filesystem as a sandbox
// directory. It also adds the scan-gate hook to a bundle's config.json, for runtimes (runc,
// crun) that read hooks only from there.
package hook

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ImageAnnotation is the annotation, in config.json or the runtime state, that names the
// image file a bundle's root filesystem was made from. When trusted it is checked instead of
// the root filesystem, so that the image's cached result is used; see Resolve.
const ImageAnnotation = "org.scan-gate.image"

// maxStateSize bounds the state read from stdin; a real one is a few hundred bytes.
const maxStateSize = 1 << 20

// ReadState reads the container state a runtime writes on a hook's stdin.
func ReadState(r io.Reader) (*specs.State, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxStateSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading container state: %w", err)
	}
	if len(data) > maxStateSize {
		return nil, fmt.Errorf("reading container state: more than %d bytes", maxStateSize)
	}
	var state specs.State
	if err := json.Unmarshal(data, &state); err != nil {
		return nil, fmt.Errorf("reading container state: %w", err)
	}
	if state.Bundle == "" {
		return nil, errors.New("reading container state: no bundle path in it")
	}
	return &state, nil
}

// LoadConfig reads the bundle's config.json.
func LoadConfig(bundle string) (*specs.Spec, error) {
	data, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("reading bundle config: %w", err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, fmt.Errorf("reading bundle config %s: %w",
			filepath.Join(bundle, "config.json"), err)
	}
	return &spec, nil
}

// Target is what to check for one container.
type Target struct {
	// Image is the path to check: the annotated image, or the root filesystem directory.
	Image string
	// FromAnnotation says Image came from ImageAnnotation.
	FromAnnotation bool
	// IgnoredAnnotation is the annotation's value when it was present but not trusted.
	IgnoredAnnotation string
}

// Resolve names what to check for the bundle whose config is spec. The root filesystem
// (root.path, relative to the bundle unless absolute) is checked as a sandbox directory.
// When trustAnnotation is set and the config (or else the state) carries ImageAnnotation,
// that image file is checked instead. Annotations are written by whoever creates the
// bundle, often the user: trust them only where a trusted tool builds the bundles.
func Resolve(bundle string, spec *specs.Spec, state *specs.State,
	trustAnnotation bool) (Target, error) {
	annotated := spec.Annotations[ImageAnnotation]
	if annotated == "" && state != nil {
		annotated = state.Annotations[ImageAnnotation]
	}
	if annotated != "" && trustAnnotation {
		if !filepath.IsAbs(annotated) {
			return Target{}, fmt.Errorf("annotation %s=%q: want an absolute path",
				ImageAnnotation, annotated)
		}
		return Target{Image: annotated, FromAnnotation: true}, nil
	}

	if spec.Root == nil || spec.Root.Path == "" {
		return Target{}, fmt.Errorf("bundle %s: config.json has no root.path", bundle)
	}
	root := spec.Root.Path
	if !filepath.IsAbs(root) {
		root = filepath.Join(bundle, root)
	}
	return Target{Image: root, IgnoredAnnotation: annotated}, nil
}

// Stages where the hook can stop a container before its process runs, in the runtime's
// namespaces (the hook's path and the bundle paths are host paths there).
const (
	StageCreateRuntime = "createRuntime"
	StagePrestart      = "prestart" // deprecated by the runtime spec, still run by runc and crun
)

// Install adds hook to the bundle's config.json at stage, keeping every other field of the
// file as it was. A hook with the same path and arguments already there is not added twice.
// The file is replaced atomically, with its mode kept.
func Install(bundle, stage string, hook specs.Hook) error {
	if stage != StageCreateRuntime && stage != StagePrestart {
		return fmt.Errorf("installing hook: stage %q cannot stop a container before it runs "+
			"(want %s or %s)", stage, StageCreateRuntime, StagePrestart)
	}
	path := filepath.Join(bundle, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("installing hook: %w", err)
	}
	var config map[string]json.RawMessage
	if err := json.Unmarshal(data, &config); err != nil {
		return fmt.Errorf("installing hook into %s: %w", path, err)
	}
	var hooks map[string]json.RawMessage
	if raw, ok := config["hooks"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &hooks); err != nil {
			return fmt.Errorf("installing hook into %s: reading hooks: %w", path, err)
		}
	}
	if hooks == nil {
		hooks = map[string]json.RawMessage{}
	}
	var list []specs.Hook
	if raw, ok := hooks[stage]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &list); err != nil {
			return fmt.Errorf("installing hook into %s: reading hooks.%s: %w", path, stage, err)
		}
	}
	for _, h := range list {
		if h.Path == hook.Path && slices.Equal(h.Args, hook.Args) {
			return nil
		}
	}
	// The gate goes first: a container it blocks runs none of the other hooks.
	list = append([]specs.Hook{hook}, list...)

	if hooks[stage], err = json.Marshal(list); err != nil {
		return fmt.Errorf("installing hook: %w", err)
	}
	if config["hooks"], err = json.Marshal(hooks); err != nil {
		return fmt.Errorf("installing hook: %w", err)
	}
	out, err := json.MarshalIndent(config, "", "\t")
	if err != nil {
		return fmt.Errorf("installing hook: %w", err)
	}
	return replaceFile(path, append(out, '\n'))
}

// replaceFile writes data to a temporary file beside path and renames it over path.
func replaceFile(path string, data []byte) error {
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".config.json.*")
	if err != nil {
		return fmt.Errorf("installing hook: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("installing hook: writing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("installing hook: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("installing hook: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("installing hook: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("installing hook: %w", err)
	}
	return nil
}
