//go:build unix

package nodesetup

import (
	"io/fs"
	"os"
	"path"
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

// openNoFollow opens p (creating it 0600 if flag says so). Its directory
// is resolved as every path is (a node image may link /var/lib); the file
// is opened with openat and O_NOFOLLOW, so the kernel refuses a symlink
// planted at its name (os.Root's OpenFile follows one inside the root).
func openNoFollow(n *nodeFS, p string, flag int) (*os.File, error) {
	dir, err := n.resolve(path.Dir(p))
	if err != nil {
		return nil, err
	}
	d, err := n.root.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	fd, err := syscall.Openat(int(d.Fd()), path.Base(p), flag|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), p), nil
}
