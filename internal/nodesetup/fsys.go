package nodesetup

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"
)

// nodeFS reads and writes a node's files below a root directory. Every path
// it takes is the path as the node sees it ("/etc/default/kubelet"); it is
// resolved inside the root the way a chroot would, and os.Root guarantees
// that nothing below the resolution step can leave the root either.
type nodeFS struct {
	root *os.Root
	dir  string // the root as given, for messages
	// j, while a plan is applied, records each step before it is taken.
	j *journal
}

func openNodeFS(dir string) (*nodeFS, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("root %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("root %s is not a directory", dir)
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("root %s: %w", dir, err)
	}
	return &nodeFS{root: r, dir: dir}, nil
}

func (n *nodeFS) Close() error { return n.root.Close() }

// errEscape marks a path whose symlinks lead out of the root.
var errEscape = errors.New("leads outside the root")

const maxSymlinks = 40 // as Linux's MAXSYMLINKS

// resolve turns a node path into a path relative to the root with every
// symlink already followed. An absolute link target is taken relative to
// the root (a node image mounted at --root links /lib to /usr/lib, and means
// its own /usr/lib); a relative target that climbs above the root is refused
// rather than clamped, since it can only be a mistake or an attack.
// Components that do not exist yet are kept as they are, so the result is
// also where a new file goes.
func (n *nodeFS) resolve(p string) (string, error) {
	if !path.IsAbs(p) {
		return "", fmt.Errorf("%s: not an absolute path", p)
	}
	queue := splitPath(path.Clean(p))
	var cur []string
	links := 0
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(cur) == 0 {
				return "", fmt.Errorf("%s: a symlink on the way %w %s", p, errEscape, n.dir)
			}
			cur = cur[:len(cur)-1]
			continue
		}
		next := path.Join(append(append([]string{}, cur...), c)...)
		fi, err := n.root.Lstat(next)
		if errors.Is(err, fs.ErrNotExist) {
			cur = append(cur, c)
			continue
		}
		if err != nil {
			return "", fmt.Errorf("%s: %w", p, err)
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			cur = append(cur, c)
			continue
		}
		if links++; links > maxSymlinks {
			return "", fmt.Errorf("%s: too many levels of symbolic links", p)
		}
		target, err := n.root.Readlink(next)
		if err != nil {
			return "", fmt.Errorf("%s: %w", p, err)
		}
		if path.IsAbs(target) {
			cur = nil
		}
		queue = append(splitPath(target), queue...)
	}
	if len(cur) == 0 {
		return ".", nil
	}
	return path.Join(cur...), nil
}

func splitPath(p string) []string { return strings.Split(strings.Trim(p, "/"), "/") }

// fileState is what a file holds before a change, and how to put it back.
type fileState struct {
	Exists bool
	Data   []byte
	Mode   fs.FileMode
	UID    int
	GID    int
}

// read returns a regular file's content; a missing file is no error.
func (n *nodeFS) read(p string) (fileState, error) {
	rel, err := n.resolve(p)
	if err != nil {
		return fileState{}, err
	}
	fi, err := n.root.Stat(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return fileState{}, nil
	}
	if err != nil {
		return fileState{}, err
	}
	if !fi.Mode().IsRegular() {
		return fileState{}, fmt.Errorf("%s is not a regular file", p)
	}
	data, err := n.root.ReadFile(rel)
	if err != nil {
		return fileState{}, err
	}
	st := fileState{Exists: true, Data: data, Mode: fi.Mode().Perm(), UID: -1, GID: -1}
	st.UID, st.GID = owner(fi)
	return st, nil
}

// exists reports whether p exists (after following symlinks).
//
// Not inlined (go:noinline): it has a dozen call sites, and one out-of-line copy
// keeps the plugin binary, which links every operator command, smaller.
//
//go:noinline
func (n *nodeFS) exists(p string) bool {
	_, err := n.stat(p)
	return err == nil
}

func (n *nodeFS) isDir(p string) bool {
	fi, err := n.stat(p)
	return err == nil && fi.IsDir()
}

func (n *nodeFS) stat(p string) (fs.FileInfo, error) {
	rel, err := n.resolve(p)
	if err != nil {
		return nil, err
	}
	return n.root.Stat(rel)
}

// readlink returns the target of p if p itself is a symlink, else "".
func (n *nodeFS) readlink(p string) string {
	dir, err := n.resolve(path.Dir(p))
	if err != nil {
		return ""
	}
	t, err := n.root.Readlink(path.Join(dir, path.Base(p)))
	if err != nil {
		return ""
	}
	return t
}

// readDir lists a directory's entry names; a missing directory is empty.
func (n *nodeFS) readDir(p string) ([]string, error) {
	rel, err := n.resolve(p)
	if err != nil {
		return nil, err
	}
	f, err := n.root.Open(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// missingDirs lists the directories mkdirAll(p) would create, outermost first.
func (n *nodeFS) missingDirs(p string) ([]string, error) {
	var missing []string
	for d := p; d != "/"; d = path.Dir(d) {
		fi, err := n.stat(d)
		if err == nil {
			if !fi.IsDir() {
				return nil, fmt.Errorf("%s exists and is not a directory", d)
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		missing = append([]string{d}, missing...)
	}
	return missing, nil
}

func (n *nodeFS) mkdir(p string, perm fs.FileMode) error {
	rel, err := n.resolve(p)
	if err != nil {
		return err
	}
	if err := n.root.Mkdir(rel, perm); err != nil {
		return err
	}
	// Mkdir's mode passes through the umask; the brief wants exactly perm.
	return n.root.Chmod(rel, perm)
}

// removeDirIfEmpty removes an empty directory; a non-empty or missing one is
// left alone and reported as not removed.
func (n *nodeFS) removeDirIfEmpty(p string) (bool, error) {
	names, err := n.readDir(p)
	if err != nil || len(names) > 0 || !n.isDir(p) {
		return false, err
	}
	rel, err := n.resolve(p)
	if err != nil {
		return false, err
	}
	err = n.root.Remove(rel)
	if errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST) || errors.Is(err, fs.ErrNotExist) {
		return false, nil // someone else's run put something in it just now
	}
	return err == nil, err
}

func (n *nodeFS) remove(p string) error {
	rel, err := n.resolve(p)
	if err != nil {
		return err
	}
	err = n.root.Remove(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err == nil {
		n.syncDir(path.Dir(rel))
	}
	return err
}

// writeAtomic replaces p with data so that a reader (or a crash) sees the
// old file or the new one, never a half: a temporary file in the same
// directory, fsynced, renamed over p, then the directory fsynced.
func (n *nodeFS) writeAtomic(p string, data []byte, perm fs.FileMode, uid, gid int) (err error) {
	if failWrite != nil {
		if err := failWrite(p); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
	}
	rel, err := n.resolve(p)
	if err != nil {
		return err
	}
	dir, base := path.Dir(rel), path.Base(rel)
	var suffix [6]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return err
	}
	tmp := path.Join(dir, "."+base+".tmp-"+hex.EncodeToString(suffix[:]))
	if err := n.j.record(journalEntry{Op: "write", Path: p, Tmp: path.Join(path.Dir(p), path.Base(tmp))}); err != nil {
		return err
	}
	f, err := n.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|oNoFollow, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			n.root.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err = f.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	if uid >= 0 && gid >= 0 && (uid != os.Geteuid() || gid != os.Getegid()) {
		if err = f.Chown(uid, gid); err != nil {
			return fmt.Errorf("write %s: keep its owner %d:%d: %w", p, uid, gid, err)
		}
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	crashPoint("before rename " + p)
	if err = n.root.Rename(tmp, rel); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	n.syncDir(dir)
	return crashPoint("renamed " + p)
}

// syncDir makes a rename or removal in dir durable.
func (n *nodeFS) syncDir(dir string) {
	if d, err := n.root.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// failWrite, set only by tests, makes writing a given path fail, standing
// in for a full disk or an I/O error part way through a plan.
var failWrite func(p string) error

// sameContent reports whether a file's current content is data.
func sameContent(st fileState, data []byte) bool {
	return st.Exists && bytes.Equal(st.Data, data)
}

// The methods below let the wiring model read the node (kubeletwiring.FS).

func (n *nodeFS) ReadFile(p string) ([]byte, bool, error) {
	st, err := n.read(p)
	return st.Data, st.Exists, err
}

func (n *nodeFS) ReadDir(p string) ([]string, error) { return n.readDir(p) }
func (n *nodeFS) Exists(p string) bool               { return n.exists(p) }
func (n *nodeFS) IsDir(p string) bool                { return n.isDir(p) }
func (n *nodeFS) Readlink(p string) string           { return n.readlink(p) }
