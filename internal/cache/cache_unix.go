//go:build unix

package cache

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"syscall"
	"time"
)

// Unavailable is empty where the disk cache works; see cache_windows.go.
const Unavailable = ""

// Open prepares dir for use, creating it 0700 if needed. It refuses a
// directory that is a symlink, is not owned by this user, or is open to
// others, because another user could then plant or read tokens.
func Open(dir string) (*Dir, error) {
	if dir == "" {
		return nil, errors.New("no cache directory given")
	}
	// path, not path/filepath: paths here are Linux paths (flock,
	// O_NOFOLLOW), and importing path/filepath would let the AWS SDK
	// initialize ahead of the cache-hit path (see package fastpath).
	dir = path.Clean(dir)
	if err := os.MkdirAll(path.Dir(dir), 0o755); err != nil {
		return nil, fmt.Errorf("cache directory %s: %w", dir, err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("cache directory %s: %w", dir, err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return nil, fmt.Errorf("cache directory %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("cache directory %s is not a directory (a symlink?): refusing to use it", dir)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || int(st.Uid) != os.Geteuid() {
		return nil, fmt.Errorf("cache directory %s is not owned by this user: refusing to use it", dir)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("cache directory %s is open to other users (mode %o): run 'chmod 700 %s'", dir, fi.Mode().Perm(), dir)
	}
	if err := checkParents(dir); err != nil {
		return nil, err
	}
	return &Dir{path: dir}, nil
}

// checkParents applies StrictModes to every directory above dir: each must
// be owned by root or this user, and not writable by group or others unless
// its sticky bit keeps them from renaming what they do not own. Symlinks
// among the parents are followed and their targets checked.
func checkParents(dir string) error {
	if !path.IsAbs(dir) {
		wd, err := os.Getwd()
		if err != nil {
			return fmt.Errorf("cache directory %s: %w", dir, err)
		}
		dir = path.Join(wd, dir)
	}
	for p := path.Dir(dir); ; p = path.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("cache directory %s: %w", dir, err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok || (st.Uid != 0 && int(st.Uid) != os.Geteuid()) {
			return fmt.Errorf("cache directory %s: parent %s is owned by another user (uid %d): refusing to use it", dir, p, st.Uid)
		}
		if fi.Mode().Perm()&0o022 != 0 && fi.Mode()&os.ModeSticky == 0 {
			return fmt.Errorf("cache directory %s: parent %s is writable by other users (mode %o): refusing to use it; run 'chmod go-w %s'", dir, p, fi.Mode().Perm(), p)
		}
		if p == "/" {
			return nil
		}
	}
}

// openEntry opens an entry's file for reading if it is a regular file of
// this user's, closed to others, and not reached through a symlink.
func openEntry(name string) (*os.File, bool) {
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, false
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o077 != 0 {
		f.Close()
		return nil, false
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != os.Geteuid() {
		f.Close()
		return nil, false
	}
	return f, true
}

// Lock is a held per-key lock.
type Lock struct{ f *os.File }

// Unlock releases the lock.
func (l *Lock) Unlock() {
	if l != nil && l.f != nil {
		syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
		l.f.Close()
	}
}

// Lock takes the exclusive lock for key, waiting until ctx ends. flock locks
// die with their process, so a killed plugin never leaves a stale lock.
func (d *Dir) Lock(ctx context.Context, key string) (*Lock, error) {
	name, err := d.file(key, ".lock")
	if err != nil {
		return nil, err
	}
	// O_NONBLOCK: a FIFO planted at name must not block the open.
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrUnavailable, name)
	}
	wait := time.Millisecond
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			// A lock in use is never old: the sweep goes by mtime.
			now := syscall.NsecToTimeval(time.Now().UnixNano())
			syscall.Futimes(int(f.Fd()), []syscall.Timeval{now, now})
			return &Lock{f: f}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("%w: flock: %v", ErrUnavailable, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for another plugin process to fetch the token: %w", ctx.Err())
		case <-time.After(wait):
		}
		if wait < 20*time.Millisecond {
			wait *= 2
		}
	}
}
