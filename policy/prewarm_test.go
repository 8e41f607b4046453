package policy

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestPrewarmKeys(t *testing.T) {
	p := mustParse(t, `
[cache]
shared_dir = "/lustre/scan-gate/tier"
shared_owner = "scanprewarm"
[prewarm]
workers = 6
max_extractions = 3
scratch_space = "5GiB"
images = ["*.sif"]
jitter = "0s"
slurm_throttle = 0
slurm_options = ["--partition=admin", "--time=01:00:00"]
[metrics]
textfile = "/var/lib/prometheus/node-exporter/scan-gate.prom"
`)
	want := Prewarm{Workers: 6, MaxExtractions: 3, ScratchSpace: 5 << 30,
		Images: []string{"*.sif"}, Jitter: 0, SlurmThrottle: 0,
		SlurmOptions: []string{"--partition=admin", "--time=01:00:00"}}
	if !reflect.DeepEqual(p.Prewarm, want) {
		t.Errorf("Prewarm = %+v, want %+v", p.Prewarm, want)
	}
	if p.SharedCacheDir != "/lustre/scan-gate/tier" || p.SharedCacheOwner != "scanprewarm" ||
		p.MetricsTextfile != "/var/lib/prometheus/node-exporter/scan-gate.prom" {
		t.Errorf("shared tier and metrics: %q %q %q", p.SharedCacheDir, p.SharedCacheOwner,
			p.MetricsTextfile)
	}

	// The effective policy says the same and parses back to it.
	var out bytes.Buffer
	p.WriteEffective(&out)
	again, err := Parse("effective.toml", out.Bytes())
	if err != nil || !reflect.DeepEqual(again, p) {
		t.Errorf("round trip: %v\n%s", err, out.String())
	}

	short := mustParse(t, "[timeouts]\nmax_age = \"1.5d\"\n")
	if short.Prewarm.Jitter != 18*time.Hour {
		t.Errorf("default jitter with max_age 36h: %s, want half of it", short.Prewarm.Jitter)
	}

	d := Default()
	if d.Prewarm.Workers != 0 || d.Prewarm.Jitter != 48*time.Hour || d.SharedCacheDir != "" {
		t.Errorf("defaults: %+v, shared %q", d.Prewarm, d.SharedCacheDir)
	}
}

func TestPrewarmKeyErrors(t *testing.T) {
	tests := []struct{ text, want string }{
		{"[prewarm]\nworkers = -1\n", "test.toml:2: prewarm.workers: want a number from 0"},
		{"[prewarm]\nworkers = \"4\"\n", "prewarm.workers: want a whole number, found a string"},
		{"[prewarm]\nmax_extractions = 0\n", "prewarm.max_extractions: want a number from 1"},
		{"[prewarm]\nscratch_space = \"lots\"\n", `prewarm.scratch_space: invalid size "lots"`},
		{"[prewarm]\nimages = []\n", "prewarm.images: want at least one pattern"},
		{"[prewarm]\nimages = [\"[x\"]\n", "prewarm.images: bad pattern"},
		{"[prewarm]\njitter = \"8d\"\n", "prewarm.jitter: jitter 192h is not below " +
			"timeouts.max_age 168h"},
		{"[prewarm]\njitter = \"-1h\"\n", "prewarm.jitter: duration must be above zero"},
		{"[prewarm]\nslurm_options = [\"-p admin\"]\n", "prewarm.slurm_options: want sbatch " +
			"long options"},
		{"[prewarm]\nworker = 2\n", "prewarm.worker: unknown key (did you mean prewarm.workers?)"},
		{"[cache]\nshared_dir = \"tier\"\n", `cache.shared_dir: want an absolute path`},
		{"[cache]\ndir = \"/c\"\nshared_dir = \"/c/\"\n", "cache.shared_dir: the shared tier " +
			"must be another directory"},
		{"[cache]\nshared_owner = \" bob\"\n", "cache.shared_owner: user name"},
		{"[metrics]\ntextfile = \"/var/lib/node/scan-gate.txt\"\n", "metrics.textfile: " +
			"node_exporter's textfile collector reads only files ending in .prom"},
	}
	for _, tt := range tests {
		_, err := Parse("test.toml", []byte(tt.text))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q) = %v, want an error containing %q", tt.text, err, tt.want)
		}
	}
}
