package setup

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/scan-gate/scan-gate/cache"
	"github.com/scan-gate/scan-gate/gate/image"
)

// secretFile is the content-key secret's name inside a writable cache directory.
const secretFile = "key.secret"

// secretSize is how many random bytes a new secret holds.
const secretSize = 32

// LoadKeySecret returns the secret that seeds content keys for the cache in dir, creating it
// (random, mode 0600) on first use. A secret that others may read or write is refused: it is
// what stops anyone from making a vulnerable image share a clean image's key.
func LoadKeySecret(dir string) ([]byte, error) {
	path := filepath.Join(dir, secretFile)
	secret, err := readSecret(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return secret, err
	}

	fresh := make([]byte, secretSize)
	rand.Read(fresh)
	// Written whole under a temporary name, then linked into place: a concurrent reader
	// sees no secret or all of it, and the first of several racing processes wins.
	tmp, err := os.CreateTemp(dir, ".key.secret-")
	if err != nil {
		return nil, fmt.Errorf("creating content-key secret: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(fresh)
	if err == nil {
		err = tmp.Sync()
	}
	if closeErr := tmp.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return nil, fmt.Errorf("creating content-key secret: %w", err)
	}
	if err := os.Link(tmp.Name(), path); errors.Is(err, fs.ErrExist) {
		return readSecret(path) // another process made it first
	} else if err != nil {
		return nil, fmt.Errorf("creating content-key secret: %w", err)
	}
	return fresh, nil
}

// ReadKeySecret returns the secret of the cache in dir without creating one: nil when there
// is none yet.
func ReadKeySecret(dir string) ([]byte, error) {
	secret, err := readSecret(filepath.Join(dir, secretFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return secret, err
}

// ImageKey returns the content key the gate gives the image at path in the cache in dir: from
// the cache's stat index when the file is unchanged, else by hashing it with the cache's
// secret.
func ImageKey(ctx context.Context, store *cache.Store, path string) (string, error) {
	im, err := image.Open(path)
	if err != nil {
		return "", err
	}
	defer im.Close()
	if im.Kind != image.Sandbox {
		if key, ok := store.LookupStat(im.Resolved, cache.FileID(im.ID)); ok {
			return key, nil
		}
	}
	secret, err := ReadKeySecret(store.Dir())
	if err != nil {
		return "", err
	}
	key, _, err := im.KeyWith(ctx, secret)
	return key, err
}

func readSecret(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading content-key secret: %w", err)
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("content-key secret %s is not a regular file", path)
	case st == nil || st.Uid != uint32(os.Geteuid()):
		return nil, fmt.Errorf("content-key secret %s is not owned by uid %d", path,
			os.Geteuid())
	case fi.Mode().Perm()&0o077 != 0:
		return nil, fmt.Errorf("content-key secret %s is readable or writable by others "+
			"(mode %v); it must be 0600", path, fi.Mode().Perm())
	case fi.Size() < 16 || fi.Size() > 4096:
		return nil, fmt.Errorf("content-key secret %s has %d bytes; want 16 to 4096", path,
			fi.Size())
	}
	secret := make([]byte, fi.Size())
	if _, err := f.ReadAt(secret, 0); err != nil {
		return nil, fmt.Errorf("reading content-key secret: %w", err)
	}
	return secret, nil
}
