package policy

import (
	"path"
	"strconv"
	"strings"
	"time"
)

// Prewarm configures `scan-gate prewarm`, which scans many images ahead of their launches.
type Prewarm struct {
	// Workers is how many images are checked at once; 0 means one per CPU core.
	Workers int
	// MaxExtractions bounds the extractions running at once, whatever the workers.
	MaxExtractions int
	// ScratchSpace bounds the unpacked bytes of the extracted trees present at once. An
	// image larger than this is extracted only when nothing else is.
	ScratchSpace int64
	// Images are the glob patterns (path.Match, on the file name) that select image files
	// when a directory is walked.
	Images []string
	// Jitter spreads rescans: each result is rescanned at a point of its own (fixed by its
	// key) up to Jitter before it would turn stale, so that images scanned together do not
	// all expire together. 0 turns it off. Unset, it is DefaultJitter, or half of
	// timeouts.max_age when that is shorter.
	Jitter time.Duration
	// SlurmThrottle is the most array tasks of `prewarm --slurm` running at once (%N);
	// 0 means no limit.
	SlurmThrottle int
	// SlurmOptions are added to the array job as #SBATCH lines ("--partition=admin").
	SlurmOptions []string
}

// Defaults of the prewarm, shared tier and metrics keys.
const (
	DefaultMaxExtractions = 2
	DefaultScratchSpace   = 20 << 30
	DefaultJitter         = 48 * time.Hour
	DefaultSlurmThrottle  = 8
)

// DefaultImageGlobs select image files in prewarmed directories.
var DefaultImageGlobs = []string{"*.sif", "*.simg", "*.img", "*.sqsh", "*.squashfs", "*.sqfs"}

// defaultPrewarm is the [prewarm] table an empty policy means.
func defaultPrewarm() Prewarm {
	return Prewarm{
		MaxExtractions: DefaultMaxExtractions,
		ScratchSpace:   DefaultScratchSpace,
		Images:         append([]string(nil), DefaultImageGlobs...),
		Jitter:         DefaultJitter,
		SlurmThrottle:  DefaultSlurmThrottle,
	}
}

type (
	rawPrewarm struct {
		Workers        rawValue `toml:"workers"`
		MaxExtractions rawValue `toml:"max_extractions"`
		ScratchSpace   rawValue `toml:"scratch_space"`
		Images         rawValue `toml:"images"`
		Jitter         rawValue `toml:"jitter"`
		SlurmThrottle  rawValue `toml:"slurm_throttle"`
		SlurmOptions   rawValue `toml:"slurm_options"`
	}
	rawMetrics struct {
		Textfile rawValue `toml:"textfile"`
	}
)

// prewarmKeys decodes [prewarm], the shared tier keys of [cache], and [metrics].
func (d *decoder) prewarmKeys(raw *rawPolicy, p *Policy) {
	pw := &p.Prewarm
	d.count("prewarm.workers", raw.Prewarm.Workers, 0, &pw.Workers)
	d.count("prewarm.max_extractions", raw.Prewarm.MaxExtractions, 1, &pw.MaxExtractions)
	d.size("prewarm.scratch_space", raw.Prewarm.ScratchSpace, &pw.ScratchSpace)
	if raw.Prewarm.Images.set {
		d.patterns("prewarm.images", raw.Prewarm.Images, &pw.Images)
		if len(pw.Images) == 0 {
			d.fail("prewarm.images", "want at least one pattern, such as \"*.sif\"")
		}
	}
	d.optionalDuration("prewarm.jitter", raw.Prewarm.Jitter, &pw.Jitter)
	if !raw.Prewarm.Jitter.set && pw.Jitter >= p.Timeouts.MaxAge {
		// The default does not fit a short max_age: take half of it.
		pw.Jitter = p.Timeouts.MaxAge / 2
	}
	if pw.Jitter >= p.Timeouts.MaxAge {
		d.fail("prewarm.jitter", "jitter %s is not below timeouts.max_age %s: every result "+
			"would be rescanned at every prewarm", formatDuration(pw.Jitter),
			formatDuration(p.Timeouts.MaxAge))
	}
	d.count("prewarm.slurm_throttle", raw.Prewarm.SlurmThrottle, 0, &pw.SlurmThrottle)
	if d.stringList("prewarm.slurm_options", raw.Prewarm.SlurmOptions, &pw.SlurmOptions) {
		for _, opt := range pw.SlurmOptions {
			if !strings.HasPrefix(opt, "--") || strings.ContainsAny(opt, "\n\r") {
				d.fail("prewarm.slurm_options", "want sbatch long options on one line, "+
					"such as \"--partition=admin\", found %q", opt)
			}
		}
	}

	d.optionalAbsPath("cache.shared_dir", raw.Cache.SharedDir, &p.SharedCacheDir)
	if p.SharedCacheDir != "" && path.Clean(p.SharedCacheDir) == path.Clean(p.CacheDir) {
		d.fail("cache.shared_dir", "the shared tier must be another directory than "+
			"cache.dir, the node-local cache")
	}
	d.text("cache.shared_owner", raw.Cache.SharedOwner, &p.SharedCacheOwner)
	if owner := p.SharedCacheOwner; strings.TrimSpace(owner) != owner {
		d.fail("cache.shared_owner", "user name %q has surrounding spaces", owner)
	}

	d.optionalAbsPath("metrics.textfile", raw.Metrics.Textfile, &p.MetricsTextfile)
	if p.MetricsTextfile != "" && !strings.HasSuffix(p.MetricsTextfile, ".prom") {
		d.fail("metrics.textfile", "node_exporter's textfile collector reads only files "+
			"ending in .prom, found %q", p.MetricsTextfile)
	}
}

// count decodes a whole number of at least least.
func (d *decoder) count(at string, raw rawValue, least int, dst *int) {
	if !raw.set {
		return
	}
	n, ok := raw.value.(int64)
	if !ok {
		d.fail(at, "want a whole number, found %s", typeName(raw.value))
		return
	}
	if n < int64(least) || n > 1<<20 {
		d.fail(at, "want a number from %d to %d, found %d", least, 1<<20, n)
		return
	}
	*dst = int(n)
}

// optionalDuration decodes a duration that may be zero ("0s" turns the feature off).
func (d *decoder) optionalDuration(at string, raw rawValue, dst *time.Duration) {
	s, ok := d.stringValue(at, raw)
	if !ok {
		return
	}
	if zero, err := time.ParseDuration(s); err == nil && zero == 0 {
		*dst = 0
		return
	}
	d.duration(at, raw, dst)
}

// optionalAbsPath decodes an absolute path, or "" for none.
func (d *decoder) optionalAbsPath(at string, raw rawValue, dst *string) {
	if s, ok := raw.value.(string); raw.set && ok && s == "" {
		*dst = ""
		return
	}
	d.absPath(at, raw, dst)
}

// writePrewarm writes the [prewarm] and [metrics] tables of the canonical policy.
func (w *tomlWriter) writePrewarm(p *Policy) {
	w.table("prewarm")
	w.raw("workers", strconv.Itoa(p.Prewarm.Workers))
	w.raw("max_extractions", strconv.Itoa(p.Prewarm.MaxExtractions))
	if size := formatSize(p.Prewarm.ScratchSpace); strings.HasSuffix(size, "B") {
		w.str("scratch_space", size)
	} else {
		w.raw("scratch_space", size)
	}
	w.list("images", p.Prewarm.Images)
	w.str("jitter", formatDuration(p.Prewarm.Jitter))
	w.raw("slurm_throttle", strconv.Itoa(p.Prewarm.SlurmThrottle))
	w.list("slurm_options", p.Prewarm.SlurmOptions)

	w.table("metrics")
	w.str("textfile", p.MetricsTextfile)
}
