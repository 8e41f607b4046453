package extract

import (
	"context"
	"fmt"
	"math"
	"sync"
)

// Limit bounds the extractions running at once and the scratch space their trees take
// together, across every extraction whose Options share it (the workers of one prewarm
// run). An extraction holds a slot while unsquashfs runs, and its share of the space until
// its tree is removed, after the scan. A tree larger than the whole space is let in alone.
//
// The space is counted from the unpacked size of the image's files (what `unsquashfs -lln`
// lists), whichever of the scratch and tmpfs directories the tree goes to.
type Limit struct {
	maxExtractions int
	space          int64

	mu         sync.Mutex
	extracting int
	used       int64
	changed    chan struct{} // closed and replaced whenever something is released

	peakExtracting int
	peakUsed       int64
}

// NewLimit returns a limit of extractions at once (at least 1) and space bytes of unpacked
// trees present at once (0 for no bound on space).
func NewLimit(extractions int, space int64) *Limit {
	return &Limit{maxExtractions: max(extractions, 1), space: space,
		changed: make(chan struct{})}
}

// Peak returns the most extractions that ran at once and the most space held at once.
func (l *Limit) Peak() (extractions int, space int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.peakExtracting, l.peakUsed
}

// reserve is the space an extraction of an image of size unpacked bytes holds: an image of
// unknown size counts as larger than any budget, so that it is extracted alone.
func reserve(size int64) int64 {
	if size < 0 {
		return math.MaxInt64
	}
	return size
}

// grant is one extraction's share of a Limit. A nil grant (no Limit) does nothing.
type grant struct {
	limit      *Limit
	size       int64
	extracting bool
	held       bool
}

// acquire waits until an extraction slot and size bytes of space are free, or ctx is done.
func (l *Limit) acquire(ctx context.Context, size int64) (*grant, error) {
	if l == nil {
		return nil, nil
	}
	for {
		l.mu.Lock()
		fits := l.space == 0 || l.used == 0 || size <= l.space-l.used
		if l.extracting < l.maxExtractions && fits {
			l.extracting++
			l.used += size
			l.peakExtracting = max(l.peakExtracting, l.extracting)
			l.peakUsed = max(l.peakUsed, l.used)
			l.mu.Unlock()
			return &grant{limit: l, size: size, extracting: true, held: true}, nil
		}
		changed := l.changed
		l.mu.Unlock()

		select {
		case <-changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for a free extraction slot and %d bytes of "+
				"scratch space: %w", size, context.Cause(ctx))
		}
	}
}

// extracted gives back the extraction slot; the space stays held.
func (g *grant) extracted() {
	if g == nil {
		return
	}
	g.limit.mu.Lock()
	defer g.limit.mu.Unlock()
	if g.extracting {
		g.extracting = false
		g.limit.extracting--
		g.limit.wake()
	}
}

// release gives back the slot, if still held, and the space. It is safe to call twice.
func (g *grant) release() {
	if g == nil {
		return
	}
	g.extracted()
	g.limit.mu.Lock()
	defer g.limit.mu.Unlock()
	if g.held {
		g.held = false
		g.limit.used -= g.size
		g.limit.wake()
	}
}

// wake tells every waiter that something was released; l.mu is held.
func (l *Limit) wake() {
	close(l.changed)
	l.changed = make(chan struct{})
}
