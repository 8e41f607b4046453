package gate

import "github.com/scan-gate/scan-gate/cache"

// The shared tier (Gate.Shared) is read after the caller's own caches. What is found there
// is copied into the writable cache, so that the next launch on this node finds it at home
// even when the parallel filesystem is slow or away. Nothing is ever written to the tier
// from here, and no lock is taken on it: its writers rename complete files into place.
//
// Prewarm jobs key images with the tier's own secret, nodes with theirs; a node learns the
// tier's key of an image from the tier's stat index. A known shortcoming: when a node has
// scanned an image itself, under its own key, and that result turns stale, the tier's fresh
// result (under the tier's key) is not found through it, and the node rescans as it would
// without a tier. Looking the tier's stat index up on every launch would cost the hot path
// a read on the parallel filesystem.

// sharedStat looks the image up in the shared tier's stat index, which leaves out the device
// number. A hit is recorded in the writable cache's own index, device included.
func (g *Gate) sharedStat(path string, id cache.FileID) (string, bool) {
	if g.Shared == nil {
		return "", false
	}
	key, ok := g.Shared.LookupStat(path, id)
	if !ok {
		return "", false
	}
	if store := g.writable(); store != nil {
		store.RecordStat(path, id, key) // an index failure only costs a lookup in the tier
	}
	return key, true
}

// sharedEntry returns the shared tier's entry for key, or nil.
func (g *Gate) sharedEntry(key cache.Key) *cache.Entry {
	if g.Shared == nil {
		return nil
	}
	entry, err := g.Shared.Get(key)
	if err != nil {
		return nil
	}
	return entry
}

// adopt copies an entry of the shared tier into the writable cache and returns the store
// that now holds it (the tier itself when there is no writable cache or the copy failed;
// the launch is decided from the entry either way).
func (g *Gate) adopt(key cache.Key, entry *cache.Entry) *cache.Store {
	store := g.writable()
	if store == nil || store.Put(key, entry) != nil {
		return g.Shared
	}
	return store
}
