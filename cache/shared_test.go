package cache

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// A shared tier matches stat records without the device number: nodes mounting the same
// parallel filesystem see different devices for the same file. A node cache does not.
func TestSharedStatIgnoresDevice(t *testing.T) {
	const path, content = "/shared/images/app.sif", "9f86d081884c7d65"
	onNodeA := FileID{Dev: 41, Ino: 7, Size: 4096, MtimeNs: 1e18, CtimeNs: 1e18 + 5}
	onNodeB := onNodeA
	onNodeB.Dev = 99

	shared := newStore(t, Options{Shared: true})
	if err := shared.RecordStat(path, onNodeA, content); err != nil {
		t.Fatal(err)
	}
	if got, ok := shared.LookupStat(path, onNodeB); !ok || got != content {
		t.Errorf("shared tier, other device: LookupStat = %q, %v; want a hit", got, ok)
	}
	changed := onNodeB
	changed.CtimeNs++
	if _, ok := shared.LookupStat(path, changed); ok {
		t.Error("shared tier: a changed ctime still hits")
	}

	node := newStore(t, Options{})
	if err := node.RecordStat(path, onNodeA, content); err != nil {
		t.Fatal(err)
	}
	if _, ok := node.LookupStat(path, onNodeB); ok {
		t.Error("node cache: another device hits")
	}
}

// No lock is trusted across nodes: a shared tier refuses to hand one out.
func TestSharedTierHasNoLocks(t *testing.T) {
	shared := newStore(t, Options{Shared: true})
	if _, err := shared.Lock(context.Background(), testKey(1)); !errors.Is(err, ErrSharedLock) {
		t.Errorf("Lock on a shared tier: %v, want ErrSharedLock", err)
	}
	if !shared.Shared() || newStore(t, Options{}).Shared() {
		t.Error("Shared() does not say which store is the shared tier")
	}
}

// Entries of a shared tier are believed only when root or the named prewarm account owns
// them, however readable they are.
func TestSharedTierTrust(t *testing.T) {
	requireRoot(t)
	const prewarmUID = 4242
	dir := filepath.Join(t.TempDir(), "tier")
	writer, err := Open(dir, Options{Shared: true})
	if err != nil {
		t.Fatal(err)
	}
	byRoot, byPrewarm, byOther := testKey(1), testKey(2), testKey(3)
	for _, k := range []Key{byRoot, byPrewarm, byOther} {
		if err := writer.Put(k, testEntry(k, 1)); err != nil {
			t.Fatal(err)
		}
	}
	chown(t, entryPath(writer, byPrewarm), prewarmUID)
	chown(t, entryPath(writer, byOther), otherUID)

	reader, err := Open(dir, Options{Shared: true, ReadOnly: true,
		TrustedUIDs: []uint32{0, prewarmUID}})
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[Key]bool{byRoot: true, byPrewarm: true, byOther: false} {
		_, err := reader.Get(k)
		if got := err == nil; got != want {
			t.Errorf("entry owned by uid %d: usable %v, want %v (%v)", ownerUID(t,
				entryPath(writer, k)), got, want, err)
		}
	}
}

func ownerUID(t *testing.T, path string) uint32 {
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := ownerOf(fi)
	return uid
}
