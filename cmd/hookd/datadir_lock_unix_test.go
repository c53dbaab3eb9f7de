//go:build unix

package main

import (
	"errors"
	"strings"
	"syscall"
	"testing"
)

// TestLockDataDir: a second lock on a data_dir is refused naming the holder; a file system that
// takes no locks gives errNoLock (serve warns and goes on) rather than stopping hookd.
func TestLockDataDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	unlock, err := lockDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockDataDir(dir); err == nil || !strings.Contains(err.Error(), "in use by another hookd (pid ") {
		t.Fatalf("second lock: %v, want refused naming the holder", err)
	}
	unlock()
	again, err := lockDataDir(dir)
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	again()

	for _, errno := range []syscall.Errno{syscall.ENOLCK, syscall.EOPNOTSUPP} {
		unlock, err := lockDataDirWith(t.TempDir(), func(int, int) error { return errno })
		if !errors.Is(err, errNoLock) || unlock == nil {
			t.Fatalf("flock failing with %v: %v, want errNoLock and an unlock to call", errno, err)
		}
		unlock()
	}
	if _, err := lockDataDirWith(t.TempDir(), func(int, int) error { return syscall.EBADF }); err == nil || errors.Is(err, errNoLock) {
		t.Fatalf("flock failing with EBADF: %v, want an error that stops serve", err)
	}
}
