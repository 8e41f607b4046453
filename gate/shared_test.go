package gate

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/scan-gate/scan-gate/cache"
)

// publish fills a shared tier the way a prewarm job does: the fixture's node cache scans the
// image, and its entry and a stat record go to the tier.
func publish(t *testing.T, f *fixture, image string) *cache.Store {
	t.Helper()
	res := f.check(t, image)
	if res.Error != "" {
		t.Fatal(res.Error)
	}
	tier, err := cache.Open(filepath.Join(t.TempDir(), "tier"), cache.Options{Shared: true})
	if err != nil {
		t.Fatal(err)
	}
	key := cache.Key{Content: res.Key, Scanner: f.backend.Name(), Settings: f.backend.Settings()}
	entry, err := f.gate.Node.Get(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := tier.Put(key, entry); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(image)
	if err != nil {
		t.Fatal(err)
	}
	if err := tier.RecordStat(image, cache.FileIDOf(fi), res.Key); err != nil {
		t.Fatal(err)
	}
	reader, err := cache.Open(tier.Dir(), cache.Options{Shared: true, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	return reader
}

// A node with an empty cache decides from the shared tier, reading no image data and running
// no scanner, and keeps a copy: the next launch is a hit at home.
func TestSharedTierHit(t *testing.T) {
	f := newFixture(t)
	tier := publish(t, f, f.vulnerable)

	empty, err := cache.Open(filepath.Join(t.TempDir(), "node2"), cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f.gate.Node, f.gate.Shared = empty, tier
	res := f.check(t, f.vulnerable)
	if res.Cache != CacheHit || res.HashedBytes != 0 || res.Action != "block" {
		t.Fatalf("from the shared tier: cache %s, hashed %d, action %s, error %q", res.Cache,
			res.HashedBytes, res.Action, res.Error)
	}
	if runs := f.backend.runs.Load(); runs != 1 {
		t.Fatalf("scanner ran %d times, want only the publishing scan", runs)
	}

	f.gate.Shared = nil
	again := f.check(t, f.vulnerable)
	if again.Cache != CacheHit || again.HashedBytes != 0 {
		t.Fatalf("after the tier is gone: cache %s, hashed %d", again.Cache, again.HashedBytes)
	}
}

// A stale entry at home gives way to a fresh one in the shared tier (a prewarm job rescanned
// the image after a DB update); a stale one in the tier does not replace it.
func TestSharedTierFresherThanHome(t *testing.T) {
	f := newFixture(t)
	tier := publish(t, f, f.patched) // scanned with the DB of day 0

	f.gate.Shared = tier
	f.backend.dbDate = f.backend.dbDate.Add(24 * time.Hour)
	if res := f.check(t, f.patched); res.Cache != CacheStale {
		t.Fatalf("home and tier both stale: cache %s", res.Cache)
	}

	// A prewarm job rescans with the new DB and publishes.
	f.gate.Shared = nil
	f.gate.Policy.On.Stale = "rescan"
	fresh := publish(t, f, f.patched)
	runs := f.backend.runs.Load()

	home, err := cache.Open(filepath.Join(t.TempDir(), "node2"), cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	staleEntries, _ := f.gate.Node.List()
	for _, e := range staleEntries {
		e.Scan.DBUpdatedAt = e.Scan.DBUpdatedAt.Add(-48 * time.Hour)
		home.Put(e.Key, &e)
	}
	f.gate.Node, f.gate.Shared = home, fresh
	if res := f.check(t, f.patched); res.Cache != CacheHit || f.backend.runs.Load() != runs {
		t.Fatalf("stale at home, fresh in the tier: cache %s, runs %d -> %d", res.Cache, runs,
			f.backend.runs.Load())
	}
}
