package prewarm

import (
	"fmt"

	"github.com/scan-gate/scan-gate/cache"
	"github.com/scan-gate/scan-gate/gate"
)

// publish writes the result of a File target to the shared tier: the entry, unless the tier
// already holds the same scan, and a stat record without the device number, so that every
// node recognises the unchanged image without reading it.
//
// The stat record is only written for the identity before, taken before the check, when
// the gate recorded that very identity with the same key in its own cache: the gate hashes
// from the descriptor it opened, so a file replaced meanwhile is never paired with the old
// content's key. Nothing is locked: the tier's files are renamed into place whole.
func (r *Runner) publish(g *gate.Gate, path string, before cache.FileID,
	res gate.Result) (bool, error) {
	key := cache.Key{Content: res.Key, Scanner: g.Backend.Name(),
		Settings: g.Backend.Settings()}
	entry := r.ownEntry(g, key)
	if entry == nil {
		return false, fmt.Errorf("publishing %s to the shared tier: %w", path, errNoEntry)
	}

	published := false
	have, err := r.Tier.Get(key)
	if err != nil || !have.Scan.ScannedAt.Equal(entry.Scan.ScannedAt) {
		entry.Image = path
		if err := r.Tier.Put(key, entry); err != nil {
			return false, fmt.Errorf("publishing %s to the shared tier: %w", path, err)
		}
		published = true
	}

	if before == (cache.FileID{}) {
		return published, nil
	}
	if known, ok := r.Tier.LookupStat(path, before); ok && known == res.Key {
		return published, nil
	}
	for _, store := range []*cache.Store{g.Node, g.User} {
		if store == nil {
			continue
		}
		if recorded, ok := store.LookupStat(path, before); ok && recorded == res.Key {
			if err := r.Tier.RecordStat(path, before, res.Key); err != nil {
				return published, fmt.Errorf("publishing %s to the shared tier: %w", path,
					err)
			}
			return true, nil
		}
	}
	return published, nil
}

// ownEntry is the entry for key in the gate's own caches.
func (r *Runner) ownEntry(g *gate.Gate, key cache.Key) *cache.Entry {
	for _, store := range []*cache.Store{g.Node, g.User} {
		if store == nil {
			continue
		}
		if e, err := store.Get(key); err == nil {
			return e
		}
	}
	return nil
}
