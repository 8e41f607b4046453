package cache

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/gofrs/flock"
)

// lockRetry is how often Lock tries again while another holder keeps the lock.
const lockRetry = 20 * time.Millisecond

// Lock takes the exclusive lock for k, waiting until ctx is done. The lock is a flock(2) on
// locks/<name>.lock, held by the returned unlock function's open descriptor, so it is
// released when unlock is called or the process dies. Lock files are never removed or
// renamed: removing one while it is held would let a second holder lock a new file of the
// same name. flock is not trusted across nodes; the cache is node-local.
//
// Readers do not need the lock. It serializes the scan that fills an entry, so that one
// process scans and the others wait and then Get the result.
func (s *Store) Lock(ctx context.Context, k Key) (unlock func() error, err error) {
	if s.readOnly {
		return nil, ErrReadOnly
	}
	if s.shared {
		return nil, ErrSharedLock
	}
	path := s.path(locksDir, k.Name()+lockSuffix)
	lock := flock.New(path,
		flock.SetFlag(os.O_CREATE|os.O_RDONLY|syscall.O_NOFOLLOW),
		flock.SetPermissions(lockPerm))

	locked, err := lock.TryLockContext(ctx, lockRetry)
	if err != nil {
		return nil, fmt.Errorf("waiting for cache lock %s: %w", path, err)
	}
	if !locked {
		return nil, fmt.Errorf("waiting for cache lock %s: not acquired", path)
	}

	return func() error {
		if err := lock.Unlock(); err != nil {
			return fmt.Errorf("releasing cache lock %s: %w", path, err)
		}
		return nil
	}, nil
}
