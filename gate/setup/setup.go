// Package setup assembles a gate from a policy the way every launch point needs it: caches
// chosen by who is running, the unprivileged scanning user, and the scanner backend. The
// scan-gate command and the Slurm helper share it.
package setup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/scan-gate/scan-gate/cache"
	"github.com/scan-gate/scan-gate/gate"
	"github.com/scan-gate/scan-gate/gate/extract"
	"github.com/scan-gate/scan-gate/gate/scanner"
	"github.com/scan-gate/scan-gate/gate/scanner/trivy"
	"github.com/scan-gate/scan-gate/internal/proc"
	"github.com/scan-gate/scan-gate/policy"
)

// OpenStores opens the caches this caller uses. Root reads and writes the node cache. Any
// other user reads the node cache (owned by root) and scans into a cache of their own, which
// no root-run gate ever reads.
func OpenStores(p *policy.Policy) (node, own *cache.Store, err error) {
	if os.Geteuid() == 0 {
		node, err = cache.Open(p.CacheDir, cache.Options{})
		if err != nil {
			return nil, nil, fmt.Errorf("opening node cache: %w", err)
		}
		return node, nil, nil
	}
	node, err = cache.Open(p.CacheDir, cache.Options{ReadOnly: true,
		TrustedUIDs: []uint32{0}})
	if err != nil {
		node = nil // an unusable node cache only costs a scan
	}
	if dir, err := cache.UserDir(); err == nil {
		own, _ = cache.Open(dir, cache.Options{})
	}
	return node, own, nil
}

// ErrConfig marks setup failures that are the policy's fault (a scanning user that does not
// exist, or is root): the gate is misconfigured, rather than unable to decide one launch.
var ErrConfig = errors.New("bad configuration")

// ScanCredential is who extracts and scans: the policy's unprivileged user when running as
// root, else the caller itself.
func ScanCredential(p *policy.Policy) (*proc.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(p.Extract.User)
	if err != nil {
		return nil, fmt.Errorf("%w: looking up scanning user %q ([extract] user): %w", ErrConfig,
			p.Extract.User, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil || uid == 0 {
		return nil, fmt.Errorf("%w: scanning user %q ([extract] user) must be an unprivileged "+
			"user", ErrConfig, p.Extract.User)
	}
	return &proc.Credential{UID: uint32(uid), GID: uint32(gid)}, nil
}

// NewBackend builds the scanner the policy names.
func NewBackend(p *policy.Policy, stateDir string) (scanner.Backend, error) {
	switch p.Scanner.Name {
	case "trivy":
		b, err := trivy.New(trivy.Config{Path: p.Scanner.Trivy.Path,
			DBDir: p.Scanner.Trivy.DBDir, Timeout: p.Timeouts.Scan,
			ExtraArgs: p.Scanner.Trivy.ExtraArgs, StateDir: stateDir})
		if err != nil {
			return nil, fmt.Errorf("setting up trivy: %w", err)
		}
		return b, nil
	case policy.ScannerGrype:
		return newGrype(p, stateDir)
	case policy.ScannerQScanner:
		return newQScanner(p, stateDir)
	}
	return nil, fmt.Errorf("unknown scanner %q", p.Scanner.Name)
}

// New assembles a gate from the policy.
func New(p *policy.Policy) (*gate.Gate, error) {
	node, own, err := OpenStores(p)
	if err != nil {
		return nil, err
	}
	cred, err := ScanCredential(p)
	if err != nil {
		return nil, err
	}
	stateDir := ""
	var secret []byte
	for _, s := range []*cache.Store{node, own} {
		if s != nil && !s.ReadOnly() {
			stateDir = filepath.Join(s.Dir(), "scanners")
			if secret, err = LoadKeySecret(s.Dir()); err != nil {
				return nil, err
			}
		}
	}
	backend, err := NewBackend(p, stateDir)
	if err != nil {
		return nil, err
	}
	scratch := p.Extract.ScratchDir
	if os.Geteuid() != 0 && own != nil && !writableDir(scratch) {
		// The node's scratch directory is root's; a user extracts under their own cache.
		scratch = filepath.Join(own.Dir(), "scratch")
	}
	// An unusable shared tier (none named, or refused) only costs a scan at this launch.
	shared, _ := OpenShared(p)
	return &gate.Gate{
		Policy:    p,
		Node:      node,
		User:      own,
		Shared:    shared,
		Backend:   backend,
		KeySecret: secret,
		Extract: extract.Options{
			ScratchDir:   scratch,
			TmpfsDir:     p.Extract.TmpfsDir,
			MemoryBudget: p.Extract.MemoryBudget,
			Credential:   cred,
		},
	}, nil
}

// writableDir reports whether dir exists and this process may create files in it, or does not
// exist yet but its parent is writable.
func writableDir(dir string) bool {
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := unix.Access(d, unix.W_OK|unix.X_OK); err == nil {
			return true
		} else if !errors.Is(err, fs.ErrNotExist) {
			return false
		}
	}
	return false
}
