// Package prewarm scans many images ahead of their launches, so that a launch finds its
// result in the cache: directories of images walked by the policy's globs, or a targets
// file, with bounded workers, on one node or as the tasks of a Slurm array job that fill a
// shared tier.
package prewarm

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/scan-gate/scan-gate/policy"
)

// Kind says what a target is and which scanner command it needs.
type Kind string

// Target kinds.
const (
	// File is an image file (SIF, bare squashfs) or a sandbox directory: what the gate
	// checks at launch. Its result is cached.
	File Kind = "file"
	// Registry is a registry image reference, for the scanner's image command.
	Registry Kind = "image"
	// Repo is a source tree, for the scanner's repo command.
	Repo Kind = "repo"
	// Unknown is a line that names nothing prewarm can scan; it is reported as an error.
	Unknown Kind = "unknown"
)

// Target is one thing to prewarm.
type Target struct {
	Kind Kind `json:"kind"`
	// Ref is the path (File, Repo) or the image reference (Registry) as prewarm uses it:
	// relative paths of a targets file are made absolute.
	Ref string `json:"ref"`
	// Line is the line of the targets file the target came from; 0 for a path given on the
	// command line or found in a directory.
	Line int `json:"line,omitempty"`
	// Problem, when set, says why the target cannot be prewarmed; it is reported as an error.
	Problem string `json:"problem,omitempty"`
}

// String names the target as a targets file would.
func (t Target) String() string {
	switch t.Kind {
	case Registry, Repo:
		return string(t.Kind) + ":" + t.Ref
	}
	return t.Ref
}

// Prefixes of targets file lines.
const (
	sifPrefix    = "sif:"
	imagePrefix  = "image:"
	repoPrefix   = "repo:"
	dockerScheme = "docker://"
)

// imageRef matches what a registry image reference may hold: [host[:port]/]path[:tag][@digest].
var imageRef = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._\-/:@+]*$`)

// ParseTargets reads a targets file, one target a line:
//
//	/shared/containers/ubuntu-22.04.sif   a path: an image file (a .sif suffix means a SIF)
//	sif:/shared/containers/custom.img      an image file, whatever its name
//	docker.io/library/nginx:1.25           a bare registry name: a registry image
//	image:ghcr.io/org/app:latest           a registry image
//	repo:/path/to/source                   a source tree
//
// A line without a prefix is a path when it is absolute, starts with ./ or ../, ends in an
// image file suffix (policy.DefaultImageGlobs: .sif, .simg, .img, ...), or names a file or
// directory that exists relative to base; only what is none of these is taken for a
// registry image.
// Lines starting with # and blank lines are ignored. Every other line is one target, in
// order: the N-th target (counting from 1) is the task of array index N. A line that names
// nothing prewarm can scan is still a target, of kind Unknown, so that it is reported and
// the numbering stays that of the file. Relative paths are taken relative to base (the
// targets file's directory, unless the caller says otherwise).
func ParseTargets(r io.Reader, base string) ([]Target, error) {
	var targets []Target
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		t := parseLine(line, base)
		t.Line = n
		targets = append(targets, t)
	}
	if err := sc.Err(); err != nil {
		return targets, fmt.Errorf("reading targets: %w", err)
	}
	return targets, nil
}

// Nth returns the n-th target, counting from 1, as array task n uses it.
func Nth(targets []Target, n int) (Target, error) {
	if n < 1 || n > len(targets) {
		return Target{}, fmt.Errorf("array index %d is outside the %d targets of the list",
			n, len(targets))
	}
	return targets[n-1], nil
}

func parseLine(line, base string) Target {
	switch {
	case strings.HasPrefix(line, sifPrefix):
		return pathTarget(File, strings.TrimPrefix(line, sifPrefix), base, line)
	case strings.HasPrefix(line, repoPrefix):
		return pathTarget(Repo, strings.TrimPrefix(line, repoPrefix), base, line)
	case strings.HasPrefix(line, imagePrefix):
		return refTarget(strings.TrimPrefix(line, imagePrefix), line)
	case strings.HasPrefix(line, dockerScheme):
		return refTarget(strings.TrimPrefix(line, dockerScheme), line)
	case strings.Contains(line, "://"):
		return Target{Kind: Unknown, Ref: line, Problem: fmt.Sprintf("%q: unknown kind of "+
			"target (want a path, sif:, image:, repo: or a registry image name)", line)}
	case filepath.IsAbs(line) || strings.HasPrefix(line, "./") ||
		strings.HasPrefix(line, "../") || hasImageSuffix(line) || existsUnder(base, line):
		return pathTarget(File, line, base, line)
	}
	return refTarget(line, line)
}

// hasImageSuffix reports whether the line's last element matches the default image globs
// (*.sif, *.simg, ...): such a line is a path, never a registry reference, whether or not
// the file exists yet.
func hasImageSuffix(line string) bool {
	return matchAny(policy.DefaultImageGlobs, path.Base(line))
}

// existsUnder reports whether the relative path p names something (even a dangling link)
// under base: a local image, not a registry reference that happens to look like a path.
func existsUnder(base, p string) bool {
	_, err := os.Lstat(filepath.Join(base, p))
	return err == nil
}

func pathTarget(kind Kind, p, base, line string) Target {
	p = strings.TrimSpace(p)
	if p == "" {
		return Target{Kind: Unknown, Ref: line, Problem: fmt.Sprintf("%q names no path", line)}
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(base, p)
	}
	return Target{Kind: kind, Ref: filepath.Clean(p)}
}

func refTarget(ref, line string) Target {
	ref = strings.TrimSpace(ref)
	if !imageRef.MatchString(ref) {
		return Target{Kind: Unknown, Ref: line, Problem: fmt.Sprintf("%q is not a registry "+
			"image reference", line)}
	}
	return Target{Kind: Registry, Ref: ref}
}

// Expand turns the paths given on the command line into targets: an image file or a sandbox
// directory is one target; any other directory is walked, without following links to
// directories, for files whose names match one of globs (path.Match patterns). A path that
// cannot be read is a target with a Problem, so that it is reported.
func Expand(paths []string, globs []string) []Target {
	var targets []Target
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			targets = append(targets, Target{Kind: File, Ref: p, Problem: err.Error()})
			continue
		}
		fi, err := os.Stat(abs)
		switch {
		case err != nil:
			targets = append(targets, Target{Kind: File, Ref: abs, Problem: err.Error()})
		case fi.IsDir() && !isSandbox(abs):
			targets = append(targets, walk(abs, globs)...)
		default:
			targets = append(targets, Target{Kind: File, Ref: abs})
		}
	}
	return targets
}

// isSandbox tells an unpacked container tree from a directory of images.
func isSandbox(dir string) bool {
	for _, marker := range []string{".singularity.d", "etc/os-release", "usr/lib/os-release"} {
		if _, err := os.Lstat(filepath.Join(dir, marker)); err == nil {
			return true
		}
	}
	return false
}

// walk lists the files under dir whose names match globs, in lexical order.
func walk(dir string, globs []string) []Target {
	var targets []Target
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			targets = append(targets, Target{Kind: File, Ref: p,
				Problem: fmt.Sprintf("walking %s: %v", p, err)})
			if d != nil && d.IsDir() && p != dir {
				return fs.SkipDir
			}
			return nil
		}
		if !matchAny(globs, d.Name()) || p == dir {
			return nil
		}
		if d.IsDir() {
			if isSandbox(p) {
				targets = append(targets, Target{Kind: File, Ref: p})
				return fs.SkipDir
			}
			// Walked on for the images it may hold, and said: a name that matches the
			// globs is meant to be an image.
			targets = append(targets, Target{Kind: File, Ref: p, Problem: fmt.Sprintf(
				"%s matches the image globs but is a directory, not an image file or a "+
					"sandbox", p)})
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			fi, err := os.Stat(p)
			switch {
			case err != nil:
				targets = append(targets, Target{Kind: File, Ref: p, Problem: fmt.Sprintf(
					"%s is a link that leads nowhere usable: %v", p, err)})
				return nil
			case fi.IsDir():
				targets = append(targets, Target{Kind: File, Ref: p, Problem: fmt.Sprintf(
					"%s is a link to a directory, which the walk does not follow; give "+
						"its target as a path of its own", p)})
				return nil
			}
		}
		targets = append(targets, Target{Kind: File, Ref: p})
		return nil
	})
	if err != nil && !errors.Is(err, fs.SkipDir) {
		targets = append(targets, Target{Kind: File, Ref: dir, Problem: err.Error()})
	}
	return targets
}

func matchAny(globs []string, name string) bool {
	return slices.ContainsFunc(globs, func(g string) bool {
		ok, _ := path.Match(g, name)
		return ok
	})
}
