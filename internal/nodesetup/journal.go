package nodesetup

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
)

const (
	// LockFile is install's and uninstall's lock. It lives beside the
	// state directory, not in it, and uninstall never removes it: a lock
	// file that its last holder unlinks lets a waiter lock a file nobody
	// else can see while a newcomer locks a new one, and the two then race
	// over a state directory that one of them is removing.
	LockFile    = "/var/lib/.ecr-credential-provider.lock"
	journalFile = StateDir + "/journal"
	// legacyLockFile is where earlier releases kept the lock; the last
	// uninstall removes one they left.
	legacyLockFile = StateDir + "/lock"
)

// stateLock is install's and uninstall's lock: an flock on LockFile, so
// that two runs on one node (a fleet installer and a person, say) take
// turns instead of overwriting each other's record.
type stateLock struct {
	f *os.File
	// made are the directories this run created, outermost first: the
	// lock file's missing parents (which stay, as it does) and the state
	// directory.
	made []string
}

// lockState takes the lock, then creates the state directory if need be.
// The lock file is created 0600 and opened without following symlinks.
// Nothing removes it or its directory, so the file a waiter locks is the
// one every other run locks too.
func lockState(n *nodeFS) (*stateLock, error) {
	l := &stateLock{}
	if err := l.mkdirs(n, path.Dir(LockFile), 0o755); err != nil {
		return nil, err
	}
	f, err := openNoFollow(n, LockFile, os.O_RDWR|os.O_CREATE)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", LockFile, err)
	}
	if err := lockExclusive(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", LockFile, err)
	}
	l.f = f
	if err := l.mkdirs(n, StateDir, 0o700); err != nil {
		f.Close()
		return nil, err
	}
	return l, nil
}

// mkdirs creates dir and its missing parents (0755, dir itself perm). A
// parent another run creates at the same time is no error.
func (l *stateLock) mkdirs(n *nodeFS, dir string, perm os.FileMode) error {
	missing, err := n.missingDirs(dir)
	if err != nil {
		return err
	}
	for _, d := range missing {
		mode := os.FileMode(0o755)
		if d == dir {
			mode = perm
		}
		err := n.mkdir(d, mode)
		if err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("create %s: %w", d, err)
		}
		if err == nil {
			l.made = append(l.made, d)
		}
	}
	return nil
}

// release drops the lock. When no install record is left (the last
// uninstall, or an install that changed nothing on a fresh node), the
// state directory goes first, while the lock is still held, so that the
// next run finds it whole or not at all. The lock file stays.
func (l *stateLock) release(n *nodeFS) error {
	defer l.f.Close()
	if n.exists(stateFile) {
		return nil
	}
	for _, p := range []string{journalFile, legacyLockFile} {
		if err := n.remove(p); err != nil {
			return err
		}
	}
	for _, d := range []string{backupDir, StateDir} {
		if _, err := n.removeDirIfEmpty(d); err != nil {
			return err
		}
	}
	return nil
}

// journalEntry is one step a run is about to take, written (and synced)
// before the step: if the run dies, the next one knows which temporary
// files may be left and removes them before it plans anything.
type journalEntry struct {
	Op   string `json:"op"`
	Path string `json:"path"`
	Tmp  string `json:"tmp,omitempty"`
}

type journal struct {
	n *nodeFS
	f *os.File
}

// openJournal starts this run's journal, after recovering from what an
// earlier, interrupted run's journal says.
func openJournal(n *nodeFS) (*journal, []string, error) {
	notes, err := recoverJournal(n)
	if err != nil {
		return nil, nil, err
	}
	f, err := openNoFollow(n, journalFile, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND)
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", journalFile, err)
	}
	return &journal{n: n, f: f}, notes, nil
}

// record writes an entry and syncs it, so it is on disk before the step.
func (j *journal) record(e journalEntry) error {
	if j == nil {
		return nil
	}
	b, _ := json.Marshal(e)
	if _, err := j.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("write %s: %w", journalFile, err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", journalFile, err)
	}
	return crashPoint("journal " + e.Op + " " + e.Path)
}

// close ends a run that finished (or rolled back): its journal goes.
func (j *journal) close() error {
	j.f.Close()
	return j.n.remove(journalFile)
}

// recoverJournal removes what an interrupted run may have left: the
// temporary files its journal names. The files it was editing are each
// either old or new (every write is a rename), and the install record was
// written before any of them, so planning again from the node as it is
// converges.
func recoverJournal(n *nodeFS) ([]string, error) {
	st, err := n.read(journalFile)
	if err != nil || !st.Exists || len(st.Data) == 0 {
		return nil, err
	}
	sc := bufio.NewScanner(bytes.NewReader(st.Data))
	removed := 0
	for sc.Scan() {
		var e journalEntry
		if json.Unmarshal(sc.Bytes(), &e) != nil || e.Tmp == "" {
			continue // a line torn by the crash: its step never started
		}
		if !path.IsAbs(e.Tmp) || !strings.HasPrefix(path.Base(e.Tmp), ".") || !strings.Contains(e.Tmp, ".tmp-") {
			return nil, fmt.Errorf("%s names %q, which is not a temporary file of install's; remove the journal by hand", journalFile, e.Tmp)
		}
		if n.exists(e.Tmp) {
			if err := n.remove(e.Tmp); err != nil {
				return nil, err
			}
			removed++
		}
	}
	if err := n.remove(journalFile); err != nil {
		return nil, err
	}
	note := "an earlier run was interrupted; this run picked up where it stopped"
	if removed > 0 {
		note += fmt.Sprintf(" (removed %d temporary file(s) it left)", removed)
	}
	return []string{note}, nil
}

// sweepBackups removes backups no install record names: left by a run
// that died after writing one and before the record that names it.
func sweepBackups(n *nodeFS, m *manifest) error {
	names, err := n.readDir(backupDir)
	if err != nil {
		return err
	}
	for _, name := range names {
		p := path.Join(backupDir, name)
		if m.findBackup(p) {
			continue
		}
		if err := n.remove(p); err != nil {
			return err
		}
	}
	return nil
}

func (m *manifest) findBackup(p string) bool {
	if m == nil {
		return false
	}
	return slices.ContainsFunc(m.Files, func(f manifestFile) bool { return f.Backup == p })
}

// errCrash is what crashPoint panics with in tests: a simulated kill -9.
type errCrash struct{ at string }

// crashAt, set only by tests, is called at every point where a real crash
// would leave the node in between two states; returning true panics
// there, and the test recovers the panic as if the process had died.
var crashAt func(at string) bool

func crashPoint(at string) error {
	if crashAt != nil && crashAt(at) {
		panic(errCrash{at})
	}
	return nil
}
