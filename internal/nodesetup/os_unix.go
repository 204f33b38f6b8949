//go:build unix

package nodesetup

import (
	"io/fs"
	"os"
	"syscall"
)

const oNoFollow = syscall.O_NOFOLLOW

// unsupportedOS is nil: install and uninstall are for Linux nodes.
func unsupportedOS() error { return nil }

func lockExclusive(f *os.File) error { return syscall.Flock(int(f.Fd()), syscall.LOCK_EX) }

// owner is fi's uid and gid, or -1 where the file system has none.
func owner(fi fs.FileInfo) (uid, gid int) {
	if s, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(s.Uid), int(s.Gid)
	}
	return -1, -1
}

func writable(p string) bool { return syscall.Access(p, 2 /* W_OK */) == nil }
