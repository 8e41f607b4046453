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
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
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

// MaxConfigSize bounds a bundle's config.json; a real one is a few kilobytes.
const MaxConfigSize = 4 << 20

// ErrUntrustedBundle marks a bundle that someone other than root or the running user could
// change: what the hook reads of it need not be what the runtime runs.
var ErrUntrustedBundle = errors.New("bundle writable by others")

// LoadConfig reads the bundle's config.json. The file must be a regular file (not a link,
// FIFO or device), at most MaxConfigSize bytes, and neither it nor the bundle directory may
// be changeable by anyone but root or the running user (ErrUntrustedBundle).
//
// The runtime read config.json before the hook runs; the hook reads it again. Whoever can
// write the bundle can serve the two reads different files, so the checks above are what
// make the hook's read stand for the runtime's: see contrib/oci/README.md.
func LoadConfig(bundle string) (*specs.Spec, error) {
	path := filepath.Join(bundle, "config.json")
	data, err := readConfigFile(bundle, true)
	if err != nil {
		return nil, err
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, fmt.Errorf("reading bundle config %s: %w", path, err)
	}
	return &spec, nil
}

// readConfigFile reads bundle/config.json without following a link in its last element,
// without blocking on a FIFO, and refusing anything but a regular file of at most
// MaxConfigSize bytes. With checkOwners, the bundle directory and the file must also pass
// CheckOwner.
func readConfigFile(bundle string, checkOwners bool) ([]byte, error) {
	// O_DIRECTORY: a FIFO or device named as the bundle fails at once, never blocks.
	dirfd, err := unix.Open(bundle, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("reading bundle config: open %s: %w", bundle, err)
	}
	dir := os.NewFile(uintptr(dirfd), bundle)
	defer dir.Close()
	if checkOwners {
		fi, err := dir.Stat()
		if err != nil {
			return nil, fmt.Errorf("reading bundle config: %w", err)
		}
		if err := checkOwner(bundle, fi); err != nil {
			return nil, err
		}
	}

	path := filepath.Join(bundle, "config.json")
	fd, err := unix.Openat(int(dir.Fd()), "config.json",
		unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("reading bundle config: open %s: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading bundle config: %w", err)
	}
	switch {
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("reading bundle config: %s is not a regular file (%s)", path,
			fi.Mode().Type())
	case fi.Size() > MaxConfigSize:
		return nil, fmt.Errorf("reading bundle config: %s is larger than %d bytes", path,
			MaxConfigSize)
	}
	if checkOwners {
		if err := checkOwner(path, fi); err != nil {
			return nil, err
		}
	}

	// The size was checked, but the file may grow while it is read.
	data, err := io.ReadAll(io.LimitReader(f, MaxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading bundle config %s: %w", path, err)
	}
	if len(data) > MaxConfigSize {
		return nil, fmt.Errorf("reading bundle config: %s is larger than %d bytes", path,
			MaxConfigSize)
	}
	return data, nil
}

// CheckRoot refuses a root filesystem directory (a Target's Image that did not come from
// the annotation) that someone other than root or the running user could change. It checks
// the directory itself, not every file beneath it.
func CheckRoot(root string) error {
	fi, err := os.Stat(root)
	if err != nil {
		return fmt.Errorf("checking the root filesystem: %w", err)
	}
	return checkOwner(root, fi)
}

// checkOwner returns ErrUntrustedBundle when path (whose FileInfo is fi) is owned by
// someone other than root or the running user, or writable by its group or by others.
func checkOwner(path string, fi os.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%w: cannot tell who owns %s", ErrUntrustedBundle, path)
	}
	euid := uint32(os.Geteuid())
	switch {
	case st.Uid != 0 && st.Uid != euid:
		return fmt.Errorf("%w: %s is owned by uid %d, not root or uid %d who runs the hook",
			ErrUntrustedBundle, path, st.Uid, euid)
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("%w: %s is writable by its group or others (mode %v)",
			ErrUntrustedBundle, path, fi.Mode().Perm())
	}
	return nil
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

// ErrStage marks a stage that cannot stop a container before its process runs.
var ErrStage = errors.New("stage cannot stop a container before it runs")

// gateStages are the stages Install puts the hook at, in the order they are searched.
var gateStages = []string{StageCreateRuntime, StagePrestart}

// Install adds hook to the bundle's config.json at stage, first in its list, keeping every
// other field of the file as it was. A hook with the same path at either gate stage is the
// same hook: when it is already at stage with the same arguments nothing changes, else it
// is taken out of wherever it was, so that the gate never runs twice. The file is replaced
// atomically, with its mode kept. changed says whether the file was written.
func Install(bundle, stage string, hook specs.Hook) (changed bool, err error) {
	if !slices.Contains(gateStages, stage) {
		return false, fmt.Errorf("installing hook: %w: %q (want %s or %s)", ErrStage, stage,
			StageCreateRuntime, StagePrestart)
	}
	path := filepath.Join(bundle, "config.json")
	data, err := readConfigFile(bundle, false)
	if err != nil {
		return false, fmt.Errorf("installing hook: %w", err)
	}
	var config map[string]json.RawMessage
	if err := json.Unmarshal(data, &config); err != nil {
		return false, fmt.Errorf("installing hook into %s: %w", path, err)
	}
	var hooks map[string]json.RawMessage
	if raw, ok := config["hooks"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &hooks); err != nil {
			return false, fmt.Errorf("installing hook into %s: reading hooks: %w", path, err)
		}
	}
	if hooks == nil {
		hooks = map[string]json.RawMessage{}
	}

	lists := map[string][]specs.Hook{}
	for _, st := range gateStages {
		raw, ok := hooks[st]
		if !ok || string(raw) == "null" {
			continue
		}
		var list []specs.Hook
		if err := json.Unmarshal(raw, &list); err != nil {
			return false, fmt.Errorf("installing hook into %s: reading hooks.%s: %w", path,
				st, err)
		}
		lists[st] = list
	}
	if len(lists[stage]) > 0 && sameHook(lists[stage][0], hook) &&
		countPath(lists, hook.Path) == 1 {
		return false, nil
	}

	for st, list := range lists {
		kept := slices.DeleteFunc(list, func(h specs.Hook) bool { return h.Path == hook.Path })
		if hooks[st], err = json.Marshal(kept); err != nil {
			return false, fmt.Errorf("installing hook: %w", err)
		}
		lists[st] = kept
	}
	// The gate goes first: a container it blocks runs none of the other hooks.
	if hooks[stage], err = json.Marshal(append([]specs.Hook{hook}, lists[stage]...)); err != nil {
		return false, fmt.Errorf("installing hook: %w", err)
	}
	if config["hooks"], err = json.Marshal(hooks); err != nil {
		return false, fmt.Errorf("installing hook: %w", err)
	}
	out, err := json.MarshalIndent(config, "", "\t")
	if err != nil {
		return false, fmt.Errorf("installing hook: %w", err)
	}
	return true, replaceFile(path, append(out, '\n'))
}

// sameHook reports whether two hooks run the same command with the same timeout.
func sameHook(a, b specs.Hook) bool {
	sameTimeout := (a.Timeout == nil && b.Timeout == nil) ||
		(a.Timeout != nil && b.Timeout != nil && *a.Timeout == *b.Timeout)
	return a.Path == b.Path && slices.Equal(a.Args, b.Args) && slices.Equal(a.Env, b.Env) &&
		sameTimeout
}

// countPath counts the hooks with path across the lists.
func countPath(lists map[string][]specs.Hook, path string) int {
	n := 0
	for _, list := range lists {
		for _, h := range list {
			if h.Path == path {
				n++
			}
		}
	}
	return n
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
