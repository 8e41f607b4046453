package setup

import (
	"fmt"
	"path/filepath"

	"github.com/scan-gate/scan-gate/cache"
	"github.com/scan-gate/scan-gate/gate"
	"github.com/scan-gate/scan-gate/gate/extract"
	"github.com/scan-gate/scan-gate/policy"
)

// NewTask assembles the gate of one task of a prewarm array job: a cache, a scratch
// directory and scanner state of its own under dir (which the caller creates, makes
// reachable by the scanning user and removes when done), and tier, the shared tier it
// reads and publishes to (opened for writing). Nothing of the node's own cache is used: the
// task may run as the prewarm account.
//
// Content keys are made with the tier's own secret (created in the tier on first use, 0600,
// for the prewarm account), so that every task, on whatever node, gives an image the same
// key. Nodes never need that secret: they find the tier's keys through its stat index.
func NewTask(p *policy.Policy, dir string, tier *cache.Store) (*gate.Gate, error) {
	own, err := cache.Open(filepath.Join(dir, "cache"), cache.Options{})
	if err != nil {
		return nil, fmt.Errorf("opening the task's cache: %w", err)
	}
	secret, err := LoadKeySecret(tier.Dir())
	if err != nil {
		return nil, fmt.Errorf("shared tier: %w", err)
	}
	cred, err := ScanCredential(p)
	if err != nil {
		return nil, err
	}
	backend, err := NewBackend(p, filepath.Join(dir, "scanner"))
	if err != nil {
		return nil, err
	}
	return &gate.Gate{
		Policy:    p,
		Node:      own,
		Shared:    tier,
		KeySecret: secret,
		Backend:   backend,
		Extract: extract.Options{
			ScratchDir:   filepath.Join(dir, "scratch"),
			TmpfsDir:     p.Extract.TmpfsDir,
			MemoryBudget: p.Extract.MemoryBudget,
			Credential:   cred,
		},
	}, nil
}
