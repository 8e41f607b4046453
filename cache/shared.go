package cache

import "errors"

// A shared tier is a cache directory on a parallel filesystem, opened with Options.Shared.
// Prewarm jobs on many nodes write it; every node's gate reads it after its own cache and
// copies what it finds there into its own.
//
// Its writers take no lock: flock over a parallel filesystem is not trusted, and each
// writer only ever renames a complete, checksummed file into place (see writeAtomic), so a
// reader sees an old entry or a new one, never a part. Two jobs scanning the same image
// both write it; the last rename wins, and both results are complete.
//
// Its stat records leave out the device number, which differs between nodes that mount the
// same filesystem; inode, size, mtime and ctime still have to match.

// ErrSharedLock is returned by Lock on a shared tier.
var ErrSharedLock = errors.New("a shared cache tier has no locks: flock is not trusted " +
	"across nodes")

// Shared reports whether the store is a shared tier.
func (s *Store) Shared() bool { return s.shared }

// statID is the part of a file identity the stat index compares: all of it in a node cache,
// all but the device number in a shared tier.
func (s *Store) statID(id FileID) FileID {
	if s.shared {
		id.Dev = 0
	}
	return id
}
