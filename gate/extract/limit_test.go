package extract

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestLimitBoundsExtractionsAndSpace(t *testing.T) {
	l := NewLimit(2, 100)
	ctx := context.Background()

	// Two extractions fill the slots; a third waits for a slot, not for space.
	a, _ := l.acquire(ctx, 30)
	b, _ := l.acquire(ctx, 30)
	third := make(chan *grant)
	go func() { g, _ := l.acquire(ctx, 30); third <- g }()
	expectBlocked(t, third)
	a.extracted() // a's slot is free, its space still held
	c := <-third

	// Space: 90 held, 20 more does not fit until a tree is removed.
	b.extracted()
	fourth := make(chan *grant)
	go func() { g, _ := l.acquire(ctx, 20); fourth <- g }()
	expectBlocked(t, fourth)
	a.release()
	d := <-fourth

	// A tree larger than the whole space is let in only alone.
	big := make(chan *grant)
	go func() { g, _ := l.acquire(ctx, 500); big <- g }()
	expectBlocked(t, big)
	for _, g := range []*grant{b, c, d} {
		g.release()
		g.release() // twice is harmless
	}
	<-big

	if n, space := l.Peak(); n != 2 || space != 500 {
		t.Errorf("Peak = %d extractions, %d bytes; want 2, 500", n, space)
	}
	if reserve(-1) <= 1<<62 || reserve(7) != 7 {
		t.Errorf("an image of unknown size reserves %d bytes", reserve(-1))
	}
}

func TestLimitWaitEndsWithContext(t *testing.T) {
	l := NewLimit(1, 0)
	held, _ := l.acquire(context.Background(), 1)
	defer held.release()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := l.acquire(ctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("acquire past the deadline: %v", err)
	}
	var nilLimit *Limit
	if g, err := nilLimit.acquire(ctx, 1); g != nil || err != nil {
		t.Errorf("no limit: %v, %v", g, err)
	}
}

func TestLimitUnderLoad(t *testing.T) {
	l := NewLimit(3, 1000)
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			g, err := l.acquire(context.Background(), int64(100+i*10))
			if err != nil {
				t.Error(err)
				return
			}
			time.Sleep(time.Millisecond)
			g.extracted()
			time.Sleep(time.Millisecond)
			g.release()
		})
	}
	wg.Wait()
	if n, space := l.Peak(); n > 3 || space > 1000 {
		t.Errorf("Peak = %d extractions, %d bytes; bounds 3, 1000", n, space)
	}
	if l.extracting != 0 || l.used != 0 {
		t.Errorf("after all releases: %d extracting, %d bytes held", l.extracting, l.used)
	}
}

func expectBlocked(t *testing.T, ch chan *grant) {
	t.Helper()
	select {
	case <-ch:
		t.Fatal("acquire did not wait")
	case <-time.After(30 * time.Millisecond):
	}
}
