package prewarm

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The targets file of the issue, with comments and blank lines: array index N is the N-th
// target line, counting from 1, whatever stands between.
const targetsFile = `# SIF files (a .sif suffix means a SIF)
/shared/containers/ubuntu-22.04.sif

sif:/shared/containers/custom.img
   # an indented comment, then blank lines

# registry images and source trees, for scanners that have such commands
docker.io/library/nginx:1.25
image:ghcr.io/org/app:latest
repo:/path/to/source
relative/app.sif
./tools/build.img
docker://alpine:3.20
oras://registry.example.org/x:1
nginx
image:not a reference
sif:
`

func TestParseTargets(t *testing.T) {
	got, err := ParseTargets(strings.NewReader(targetsFile), "/lists")
	if err != nil {
		t.Fatal(err)
	}
	want := []Target{
		{Kind: File, Ref: "/shared/containers/ubuntu-22.04.sif", Line: 2},
		{Kind: File, Ref: "/shared/containers/custom.img", Line: 4},
		{Kind: Registry, Ref: "docker.io/library/nginx:1.25", Line: 8},
		{Kind: Registry, Ref: "ghcr.io/org/app:latest", Line: 9},
		{Kind: Repo, Ref: "/path/to/source", Line: 10},
		{Kind: File, Ref: "/lists/relative/app.sif", Line: 11},
		{Kind: File, Ref: "/lists/tools/build.img", Line: 12},
		{Kind: Registry, Ref: "alpine:3.20", Line: 13},
		{Kind: Unknown, Ref: "oras://registry.example.org/x:1", Line: 14,
			Problem: `"oras://registry.example.org/x:1": unknown kind of target (want a ` +
				`path, sif:, image:, repo: or a registry image name)`},
		{Kind: Registry, Ref: "nginx", Line: 15},
		{Kind: Unknown, Ref: "image:not a reference", Line: 16,
			Problem: `"image:not a reference" is not a registry image reference`},
		{Kind: Unknown, Ref: "sif:", Line: 17, Problem: `"sif:" names no path`},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseTargets:\n got %+v\nwant %+v", got, want)
	}

	// Array index N maps to the N-th target line.
	for n, line := range map[int]int{1: 2, 2: 4, 3: 8, 5: 10, 12: 17} {
		target, err := Nth(got, n)
		if err != nil || target.Line != line {
			t.Errorf("Nth(%d) = line %d, %v; want line %d", n, target.Line, err, line)
		}
	}
	for _, n := range []int{0, 13, -1} {
		if _, err := Nth(got, n); err == nil {
			t.Errorf("Nth(%d) succeeded past the %d targets", n, len(got))
		}
	}
}

func TestExpand(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"a.sif", "b.img", "notes.txt", "sub/c.sif", "sub/deeper/d.sqsh",
		"sandbox/etc/os-release", "sandbox/e.sif"} {
		path := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(path), 0o755)
		os.WriteFile(path, []byte("x"), 0o644)
	}
	os.Symlink(filepath.Join(dir, "a.sif"), filepath.Join(dir, "latest.sif"))
	os.Symlink(filepath.Join(dir, "sub"), filepath.Join(dir, "linked-dir.sif"))
	os.Symlink(filepath.Join(dir, "sub"), filepath.Join(dir, "linked-dir"))
	os.Symlink(filepath.Join(dir, "nowhere"), filepath.Join(dir, "dangling.sif"))
	os.Symlink("loop.sif", filepath.Join(dir, "loop.sif"))
	os.MkdirAll(filepath.Join(dir, "dir.sif", "inner"), 0o755)
	os.WriteFile(filepath.Join(dir, "dir.sif", "inner", "f.sif"), []byte("x"), 0o644)
	os.MkdirAll(filepath.Join(dir, "box.sif", ".singularity.d"), 0o755)
	os.WriteFile(filepath.Join(dir, "box.sif", "g.sif"), []byte("x"), 0o644)

	got := Expand([]string{dir, filepath.Join(dir, "notes.txt"), filepath.Join(dir, "gone.sif"),
		filepath.Join(dir, "sandbox")}, []string{"*.sif", "*.img", "*.sqsh"})
	var names []string
	for _, target := range got {
		rel, _ := filepath.Rel(dir, target.Ref)
		if target.Problem != "" {
			rel += " (problem)"
		}
		names = append(names, rel)
	}
	// The sandbox directory found by the walk is walked like any other; named on the
	// command line it is one image. Links to files are images; links to directories are
	// not followed, and said so, as are links to nothing or to themselves. A directory
	// whose name matches is one image when it is a sandbox, else said and walked into.
	want := []string{"a.sif", "b.img", "box.sif", "dangling.sif (problem)",
		"dir.sif (problem)", "dir.sif/inner/f.sif", "latest.sif", "linked-dir.sif (problem)",
		"loop.sif (problem)", "sandbox/e.sif", "sub/c.sif", "sub/deeper/d.sqsh", "notes.txt",
		"gone.sif (problem)", "sandbox"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("Expand:\n got %q\nwant %q", names, want)
	}
}

// TestParseTargetsLocal checks that relative names that exist beside the targets file, or
// end in an image suffix, are local images, never registry references sent to a registry.
func TestParseTargetsLocal(t *testing.T) {
	base := t.TempDir()
	for _, name := range []string{"pw/notanimage.txt", "pw/tree/etc/os-release"} {
		path := filepath.Join(base, name)
		os.MkdirAll(filepath.Dir(path), 0o755)
		os.WriteFile(path, []byte("x"), 0o644)
	}
	got, err := ParseTargets(strings.NewReader(
		"pw/sub/p2.simg\npw/notanimage.txt\npw/tree\nlibrary/nginx:1.25\npw/missing\n"), base)
	if err != nil {
		t.Fatal(err)
	}
	want := []Target{
		{Kind: File, Ref: filepath.Join(base, "pw/sub/p2.simg"), Line: 1},
		{Kind: File, Ref: filepath.Join(base, "pw/notanimage.txt"), Line: 2},
		{Kind: File, Ref: filepath.Join(base, "pw/tree"), Line: 3},
		{Kind: Registry, Ref: "library/nginx:1.25", Line: 4},
		{Kind: Registry, Ref: "pw/missing", Line: 5},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseTargets:\n got %+v\nwant %+v", got, want)
	}
}
