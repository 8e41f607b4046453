package hook

import (
	"errors"
	"os"
	"testing"
)

// A container's mount table at createRuntime, as runc leaves it before pivot_root (lines
// from a real runc 1.1), with a chroot's /proc of the host copied in before it.
const runcMountinfo = `24 1 0:22 / / rw,relatime - ext4 /dev/vda rw
30 24 0:5 / /proc rw,nosuid - proc proc rw
41 24 0:5 / /srv/old\040chroot/proc rw - proc proc rw
70 48 254:0 /tmp/rx/b/rootfs /tmp/rx/b/rootfs rw,relatime - ext4 /dev/vda rw
71 70 0:60 / /tmp/rx/b/rootfs/proc rw,relatime - proc proc rw
72 70 0:61 / /tmp/rx/b/rootfs/dev rw,nosuid - tmpfs tmpfs rw,size=65536k,mode=755
`

func TestContainerRoot(t *testing.T) {
	if root, ok := containerRoot([]byte(runcMountinfo)); !ok || root != "/tmp/rx/b/rootfs" {
		t.Errorf("containerRoot = %q, %v; want /tmp/rx/b/rootfs", root, ok)
	}
	host := "24 1 0:22 / / rw - ext4 /dev/vda rw\n30 24 0:5 / /proc rw - proc proc rw\n"
	if root, ok := containerRoot([]byte(host)); ok {
		t.Errorf("the host's table gave a container root %q", root)
	}
	if got := unescapeMount(`/srv/old\040chroot`); got != "/srv/old chroot" {
		t.Errorf("unescapeMount = %q", got)
	}
}

// TestVerifyMountedRootOwnNamespace checks that a process in the hook's own mount namespace
// gives no mounted root to compare with, rather than a refusal.
func TestVerifyMountedRootOwnNamespace(t *testing.T) {
	err := VerifyMountedRoot(os.Getpid(), t.TempDir())
	if !errors.Is(err, ErrRootUnknown) {
		t.Errorf("VerifyMountedRoot(own PID) = %v, want ErrRootUnknown", err)
	}
	if err := VerifyMountedRoot(0, t.TempDir()); !errors.Is(err, ErrRootUnknown) {
		t.Errorf("VerifyMountedRoot(0) = %v, want ErrRootUnknown", err)
	}
}
