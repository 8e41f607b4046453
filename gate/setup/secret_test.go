package setup

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// TestLoadKeySecretRace starts many first uses at once: all must get the same secret, and
// none may see a half-written file.
func TestLoadKeySecretRace(t *testing.T) {
	dir := t.TempDir()
	const callers = 32
	secrets := make([][]byte, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() { secrets[i], errs[i] = LoadKeySecret(dir) })
	}
	wg.Wait()
	for i := range callers {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if !bytes.Equal(secrets[i], secrets[0]) {
			t.Fatalf("caller %d got another secret", i)
		}
	}
	fi, err := os.Stat(filepath.Join(dir, secretFile))
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != secretSize {
		t.Fatalf("secret file: %v %v", fi, err)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".key.secret-*")); len(leftovers) > 0 {
		t.Fatalf("temporary files left: %v", leftovers)
	}
}

func TestKeySecretRefusesOpenModes(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadKeySecret(dir); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(dir, secretFile), 0o644)
	if _, err := LoadKeySecret(dir); err == nil {
		t.Fatal("a secret readable by others was accepted")
	}
}
