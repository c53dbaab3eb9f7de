//go:build unix

package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// dataDirLockFile is the file in nats.data_dir that an embedded JetStream's process holds locked.
const dataDirLockFile = "hookd.lock"

// lockDataDir takes the lock that keeps a second hookd from starting an embedded JetStream on the
// same store: two servers writing one file store corrupt it, and nats-server does not stop them.
// The lock is an flock on dir/hookd.lock, released by the returned func or when the process ends
// however it ends (a crashed hookd leaves no stale lock).
func lockDataDir(dir string) (unlock func(), err error) { return lockDataDirWith(dir, syscall.Flock) }

// lockDataDirWith is lockDataDir with the flock call given (tests give one that fails).
func lockDataDirWith(dir string, flock func(fd, how int) error) (unlock func(), err error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("nats.data_dir %s: %w (set data_dir or HOOKD_DATA_DIR to a directory hookd can write)", dir, err)
	}
	path := filepath.Join(dir, dataDirLockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("nats.data_dir %s: %w (set data_dir or HOOKD_DATA_DIR to a directory hookd can write)", dir, err)
	}
	if err := flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.ENOLCK) || errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.ENOTSUP) {
			// A file system without locks (some network file systems): run unguarded, as
			// nats-server itself would, rather than not at all.
			f.Close()
			return func() {}, fmt.Errorf("%w: %s cannot be locked (%v); make sure no other hookd uses nats.data_dir %s", errNoLock, path, err, dir)
		}
		holder := ""
		if b, rerr := os.ReadFile(path); rerr == nil {
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil {
				holder = fmt.Sprintf(" (pid %d)", pid)
			}
		}
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("nats.data_dir %s is in use by another hookd%s: two embedded JetStream servers on one store would corrupt it; stop the other hookd, or give this one its own data_dir (HOOKD_DATA_DIR)", dir, holder)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	// The pid is only for the message above; the lock is what counts.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() { f.Close() }, nil // closing the descriptor releases the flock
}
