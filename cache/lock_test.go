package cache

import (
	"context"
	"errors"
	"os"
	"syscall"
	"testing"
	"time"
)

func TestLockExcludes(t *testing.T) {
	s := newStore(t, Options{})
	k := testKey(1)
	unlock, err := s.Lock(t.Context(), k)
	if err != nil {
		t.Fatal(err)
	}

	// A second locker, through its own descriptor as another process would have, times out.
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := s.Lock(ctx, k); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Lock = %v, want context.DeadlineExceeded", err)
	}
	if waited := time.Since(start); waited < 90*time.Millisecond {
		t.Errorf("second Lock gave up after %v, before its deadline", waited)
	}

	// Another key is not held up.
	unlockOther, err := s.Lock(t.Context(), testKey(2))
	if err != nil {
		t.Fatalf("locking another key: %v", err)
	}
	if err := unlockOther(); err != nil {
		t.Fatal(err)
	}

	// A waiter gets the lock once the holder lets go.
	acquired := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		unlock, err := s.Lock(ctx, k)
		if err == nil {
			err = unlock()
		}
		acquired <- err
	}()
	select {
	case err := <-acquired:
		t.Fatalf("waiter returned while the lock was held: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	if err := <-acquired; err != nil {
		t.Errorf("waiter: %v", err)
	}
}

func TestLockCanceled(t *testing.T) {
	s := newStore(t, Options{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Lock(ctx, testKey(1)); !errors.Is(err, context.Canceled) {
		t.Errorf("Lock with a canceled context = %v, want context.Canceled", err)
	}
}

func TestLockFileIsPrivate(t *testing.T) {
	s := newStore(t, Options{})
	k := testKey(1)
	unlock, err := s.Lock(t.Context(), k)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	fi, err := os.Lstat(s.path(locksDir, k.Name()+lockSuffix))
	if err != nil {
		t.Fatal(err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("lock file mode %v, want a regular file only its owner can open", fi.Mode())
	}
}

func TestLockFilesSurvivePurgeAndGC(t *testing.T) {
	s := newStore(t, Options{})
	k := testKey(1)
	unlock, err := s.Lock(t.Context(), k)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(k, testEntry(k, 1)); err != nil {
		t.Fatal(err)
	}
	lockPath := s.path(locksDir, k.Name()+lockSuffix)
	old := time.Now().Add(-365 * 24 * time.Hour)
	if err := os.Chtimes(lockPath, old, old); err != nil {
		t.Fatal(err)
	}
	inode := func() uint64 {
		t.Helper()
		fi, err := os.Lstat(lockPath)
		if err != nil {
			t.Fatalf("lock file gone: %v", err)
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	want := inode()

	if _, err := s.GC(time.Nanosecond, time.Now().Add(365*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := inode(); got != want {
		t.Errorf("after GC the lock file is inode %d, want %d", got, want)
	}
	if _, err := s.Purge(); err != nil {
		t.Fatal(err)
	}
	if got := inode(); got != want {
		t.Errorf("after Purge the lock file is inode %d, want %d", got, want)
	}
	if _, err := s.Get(k); !errors.Is(err, ErrMiss) {
		t.Errorf("entry survived Purge: %v", err)
	}

	// The lock is still held through the same file: a second locker waits.
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := s.Lock(ctx, k); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Lock after Purge while held = %v, want context.DeadlineExceeded", err)
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
}
