package setup

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/scan-gate/scan-gate/cache"
	"github.com/scan-gate/scan-gate/gate/image"
)

// Content keys are made with a secret of each cache's own (see LoadKeySecret), so entries
// cannot move between caches as they are: the image each belongs to is hashed again, with
// a fresh secret for the archive on export and with the receiving cache's secret on import.
// Both sides therefore need the images, at the paths the entries name (import can map them).

// NewArchiveSecret returns a fresh secret for the keys of one export archive. The archive
// carries it: keep the archive as private as the cache.
func NewArchiveSecret() []byte {
	secret := make([]byte, secretSize)
	rand.Read(secret)
	return secret
}

// ExportRekey returns the cache.ExportOptions.Rekey of an export from store: it checks that
// each entry's image still has the content the entry was made from, and gives the entry
// the image's key under the archive's secret. An entry whose image is gone or changed is
// left out.
func ExportRekey(ctx context.Context, store *cache.Store,
	archiveSecret []byte) func(*cache.Entry) error {
	return func(e *cache.Entry) error {
		if e.Image == "" {
			return fmt.Errorf("entry %s names no image", e.Key.Content)
		}
		own, err := ImageKey(ctx, store, e.Image)
		if err != nil {
			return fmt.Errorf("image %s of entry %s: %w", e.Image, e.Key.Content, err)
		}
		if own != e.Key.Content {
			return fmt.Errorf("image %s no longer holds what entry %s was scanned from",
				e.Image, e.Key.Content)
		}
		key, err := keyWith(ctx, e.Image, archiveSecret, nil)
		if err != nil {
			return fmt.Errorf("image %s of entry %s: %w", e.Image, e.Key.Content, err)
		}
		e.Key.Content = key
		return nil
	}
}

// ImportRekey returns the cache.ImportOptions.Rekey of an import into store: it finds each
// entry's image (at the path the entry names, passed through where), checks that it holds
// what the entry was scanned from (its key under the archive's secret), and gives the entry
// the image's key under store's own secret, recording the image in store's stat index so
// that the first launch reads no image data.
func ImportRekey(ctx context.Context, store *cache.Store,
	where func(string) string) (func(*cache.Entry, []byte) error, error) {
	own, err := LoadKeySecret(store.Dir())
	if err != nil {
		return nil, err
	}
	return func(e *cache.Entry, archiveSecret []byte) error {
		if len(archiveSecret) == 0 {
			return errors.New("the archive carries no key secret")
		}
		path := where(e.Image)
		key, err := keyWith(ctx, path, archiveSecret, nil)
		if err != nil {
			return fmt.Errorf("image %s: %w", path, err)
		}
		if key != e.Key.Content {
			return fmt.Errorf("image %s does not hold what the entry was scanned from", path)
		}
		var resolved string
		if e.Key.Content, err = keyWith(ctx, path, own, func(im *image.Image, key string) {
			resolved = im.Resolved
			if im.Kind != image.Sandbox {
				store.RecordStat(im.Resolved, cache.FileID(im.ID), key)
			}
		}); err != nil {
			return fmt.Errorf("image %s: %w", path, err)
		}
		e.Image = resolved
		return nil
	}, nil
}

// keyWith hashes the image at path with secret and calls then, when set, with the open
// image and its key.
func keyWith(ctx context.Context, path string, secret []byte,
	then func(*image.Image, string)) (string, error) {
	im, err := image.Open(path)
	if err != nil {
		return "", err
	}
	defer im.Close()
	key, _, err := im.KeyWith(ctx, secret)
	if err != nil {
		return "", err
	}
	if then != nil {
		then(im, key)
	}
	return key, nil
}
