package launch

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		line    string
		command string
		image   string
	}{
		{"apptainer exec img.sif echo hi", "exec", "img.sif"},
		{"apptainer run img.sif", "run", "img.sif"},
		{"apptainer shell img.sif", "shell", "img.sif"},
		{"apptainer test img.sif", "test", "img.sif"},
		{"apptainer instance start img.sif web", "instance start", "img.sif"},
		{"apptainer instance run img.sif web a b", "instance run", "img.sif"},
		{"singularity exec img.sif ls", "exec", "img.sif"},
		// Global options, with and without values.
		{"apptainer -d -c /etc/a.conf exec img.sif ls", "exec", "img.sif"},
		{"apptainer --config=/etc/a.conf --quiet run img.sif", "run", "img.sif"},
		{"apptainer -c exec exec img.sif ls", "exec", "img.sif"},
		{"apptainer -sd exec img.sif", "exec", "img.sif"},
		// Command options.
		{"apptainer exec --bind /a:/b img.sif ls", "exec", "img.sif"},
		{"apptainer exec -B /a:/b,/c img.sif ls", "exec", "img.sif"},
		{"apptainer exec -B/a:/b img.sif ls", "exec", "img.sif"},
		{"apptainer exec -B=/a:/b img.sif ls", "exec", "img.sif"},
		{"apptainer exec -cB /a img.sif ls", "exec", "img.sif"},
		{"apptainer exec -ce img.sif ls", "exec", "img.sif"},
		{"apptainer exec --nv --env A=1 --env-file e.env img.sif ls", "exec", "img.sif"},
		{"apptainer exec --overlay o.img:ro img.sif ls", "exec", "img.sif"},
		{"apptainer exec --writable-tmpfs=true img.sif ls", "exec", "img.sif"},
		{"apptainer exec -c --config /x img.sif", "exec", "img.sif"},
		{"apptainer exec --new-flag=x img.sif", "exec", "img.sif"},
		{"apptainer exec -- img.sif ls", "exec", "img.sif"},
		{"apptainer exec -- -odd-name.sif ls", "exec", "-odd-name.sif"},
		{"apptainer exec img.sif --bind x", "exec", "img.sif"},
		{"apptainer shell -s /bin/zsh img.sif", "shell", "img.sif"},
		{"apptainer exec -s img.sif ls", "exec", "img.sif"},
		{"apptainer instance start --pid-file p.pid -B /a img.sif web", "instance start",
			"img.sif"},
		{"apptainer instance --debug start img.sif web", "instance start", "img.sif"},
		{"apptainer exec docker://alpine:3 ls", "exec", "docker://alpine:3"},
		{"apptainer exec instance://web ls", "exec", "instance://web"},
		// Commands that start nothing.
		{"apptainer build out.sif def", "", ""},
		{"apptainer --version", "", ""},
		{"apptainer", "", ""},
		{"apptainer instance list", "", ""},
		{"apptainer help exec", "", ""},
		{"apptainer -c exec", "", ""},
	}
	for _, tt := range tests {
		l, err := Parse(strings.Fields(tt.line))
		if err != nil {
			t.Errorf("%s: %v", tt.line, err)
			continue
		}
		if l.Command != tt.command || l.Image != tt.image {
			t.Errorf("%s: got %q %q, want %q %q", tt.line, l.Command, l.Image, tt.command,
				tt.image)
		}
		if l.Image != "" && strings.Fields(tt.line)[l.ImageIndex] != l.Image {
			t.Errorf("%s: ImageIndex %d does not point at the image", tt.line, l.ImageIndex)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		line string
		want error
		text string
	}{
		{"apptainer exec --brand-new img.sif ls", ErrUnknownOption, "--brand-new"},
		{"apptainer exec -Z img.sif", ErrUnknownOption, "-Z"},
		{"apptainer --nope exec img.sif", ErrUnknownOption, "--nope"},
		{"apptainer exec --bind", ErrMissingValue, "--bind"},
		{"apptainer exec -B", ErrMissingValue, "-B"},
		{"apptainer exec --nv", ErrNoImage, "exec"},
		{"apptainer instance start", ErrNoImage, "instance start"},
	}
	for _, tt := range tests {
		_, err := Parse(strings.Fields(tt.line))
		if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.text) {
			t.Errorf("%s: error %v, want %v mentioning %q", tt.line, err, tt.want, tt.text)
		}
	}
	if _, err := Parse(nil); err == nil {
		t.Error("Parse(nil) succeeded")
	}
}

func TestImagesFromArgv(t *testing.T) {
	tests := []struct {
		argv []string
		want []string
	}{
		{[]string{"apptainer", "run", "a b.sif"}, []string{"a b.sif"}},
		{[]string{"apptainer", "exec", "instance://web", "ls"}, nil},
		{[]string{"apptainer", "pull", "docker://alpine"}, nil},
		{[]string{"apptainer", "exec", "oras://r/x:1", "ls"}, []string{"oras://r/x:1"}},
	}
	for _, tt := range tests {
		got, err := ImagesFromArgv(tt.argv)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("%q: got %q, %v; want %q", tt.argv, got, err, tt.want)
		}
	}
}

func TestScheme(t *testing.T) {
	tests := map[string]string{
		"docker://alpine":       "docker",
		"Library://a/b/c":       "library",
		"oras://r/x:1":          "oras",
		"docker-archive:x.tar":  "docker-archive",
		"instance://web":        "instance",
		"img.sif":               "",
		"./a:b.sif":             "",
		"/shared/x:y/z.sif":     "",
		"weird:name.sif":        "",
		"https://example.org/x": "https",
	}
	for ref, want := range tests {
		if got := Scheme(ref); got != want {
			t.Errorf("Scheme(%q) = %q, want %q", ref, got, want)
		}
	}
}
