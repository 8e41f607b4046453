package setup

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"slices"
	"strconv"

	"github.com/scan-gate/scan-gate/cache"
	"github.com/scan-gate/scan-gate/policy"
)

// ErrNoSharedTier is returned when the policy names no shared tier ([cache] shared_dir).
var ErrNoSharedTier = errors.New("the policy names no shared tier ([cache] shared_dir)")

// OpenShared opens the policy's shared tier for reading. Its files are trusted only when they
// belong to root or to the policy's prewarm account ([cache] shared_owner).
func OpenShared(p *policy.Policy) (*cache.Store, error) {
	return openShared(p, p.SharedCacheDir, true)
}

// OpenSharedWriter opens the shared tier dir for a prewarm job to write: the tier of the
// policy unless dir is given. The caller must be root or the prewarm account.
func OpenSharedWriter(p *policy.Policy, dir string) (*cache.Store, error) {
	if dir == "" {
		dir = p.SharedCacheDir
	}
	return openShared(p, dir, false)
}

func openShared(p *policy.Policy, dir string, readOnly bool) (*cache.Store, error) {
	if dir == "" {
		return nil, ErrNoSharedTier
	}
	trusted, err := sharedOwners(p)
	if err != nil {
		return nil, err
	}
	if !readOnly && !slices.Contains(trusted, uint32(os.Geteuid())) {
		return nil, fmt.Errorf("opening shared tier %s: run as root or as the prewarm account "+
			"%q ([cache] shared_owner): nodes trust no other writer", dir, p.SharedCacheOwner)
	}
	store, err := cache.Open(dir, cache.Options{ReadOnly: readOnly, Shared: true,
		TrustedUIDs: trusted})
	if err != nil {
		return nil, fmt.Errorf("opening shared tier: %w", err)
	}
	return store, nil
}

// sharedOwners are the uids whose files in the shared tier are trusted: root and the prewarm
// account.
func sharedOwners(p *policy.Policy) ([]uint32, error) {
	owners := []uint32{0}
	if p.SharedCacheOwner == "" {
		return owners, nil
	}
	u, err := user.Lookup(p.SharedCacheOwner)
	if err != nil {
		return nil, fmt.Errorf("looking up the prewarm account %q ([cache] shared_owner): %w",
			p.SharedCacheOwner, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("prewarm account %q has uid %q: %w", p.SharedCacheOwner, u.Uid,
			err)
	}
	return append(owners, uint32(uid)), nil
}
