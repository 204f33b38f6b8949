package nodesetup

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"
)

const (
	lockFile    = StateDir + "/lock"
	journalFile = StateDir + "/journal"
)

// stateLock is install's and uninstall's lock: an flock on a file in the
// state directory, so that two runs on one node (a fleet installer and a
// person, say) take turns instead of overwriting each other's record.
type stateLock struct {
	f *os.File
	// made are the directories taking the lock had to create (the state
	// directory and its missing parents), outermost first.
	made []string
}

// lockState takes the lock, creating the state directory if need be. The
// lock file is opened without following symlinks. A run that removes the
// state directory (the last uninstall) unlinks the file while holding it,
// so a waiter checks, once it has the lock, that the file it locked is
// still the one at the path, and starts again if not.
func lockState(n *nodeFS, inherit []string) (*stateLock, error) {
	l := &stateLock{made: inherit}
	for {
		missing, err := n.missingDirs(StateDir)
		if err != nil {
			return nil, err
		}
		for _, d := range missing {
			mode := os.FileMode(0o755)
			if d == StateDir {
				mode = 0o700
			}
			err := n.mkdir(d, mode)
			if errors.Is(err, os.ErrNotExist) {
				break // the last run removed a parent just now: again
			}
			if err != nil && !errors.Is(err, os.ErrExist) {
				return nil, fmt.Errorf("create %s: %w", d, err)
			}
			if err == nil {
				l.made = append(l.made, d)
			}
		}
		rel, err := n.resolve(lockFile)
		if err != nil {
			return nil, err
		}
		f, err := n.root.OpenFile(rel, os.O_RDWR|os.O_CREATE|oNoFollow|syscall.O_CLOEXEC, 0o600)
		if errors.Is(err, os.ErrNotExist) {
			continue // the last run removed the directory just now: again
		}
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", lockFile, err)
		}
		if err := lockExclusive(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", lockFile, err)
		}
		held, err1 := f.Stat()
		now, err2 := n.root.Lstat(rel)
		if err1 == nil && err2 == nil && os.SameFile(held, now) {
			l.f = f
			return l, l.remember()
		}
		f.Close()
	}
}

// remember adds the directories this run made (or inherited from a run
// that could not remove them) for the state directory to
// those the lock file lists, so that the run that removes the state
// directory, whichever it is, removes them too.
func (l *stateLock) remember() error {
	if len(l.made) == 0 {
		return nil
	}
	all := dedupe(append(l.dirs(), l.made...))
	b, _ := json.Marshal(all)
	if err := l.f.Truncate(0); err != nil {
		return err
	}
	if _, err := l.f.WriteAt(b, 0); err != nil {
		return err
	}
	return l.f.Sync()
}

// dirs are the directories the lock file lists.
func (l *stateLock) dirs() []string {
	b, err := io.ReadAll(io.NewSectionReader(l.f, 0, 1<<16))
	var out []string
	if err != nil || json.Unmarshal(b, &out) != nil {
		return nil
	}
	var clean []string
	for _, d := range out {
		if d == StateDir || strings.HasPrefix(StateDir, d+"/") {
			clean = append(clean, d)
		}
	}
	return clean
}

// release drops the lock. When no install record is left (the last
// uninstall, or an install that changed nothing on a fresh node), the
// state directory goes, with the directories the lock created for it:
// nothing of install's may outlive it.
func (l *stateLock) release(n *nodeFS, extraDirs []string) error {
	if n.exists(stateFile) {
		return l.f.Close()
	}
	dirs := dedupe(append(l.dirs(), extraDirs...))
	for _, p := range []string{journalFile, lockFile} {
		if err := n.remove(p); err != nil {
			l.f.Close()
			return err
		}
	}
	l.f.Close()
	// Directories the record listed may be left by a run killed before it
	// removed them; with the record gone, those are removed here.
	dirs = append([]string{backupDir, StateDir}, dirs...)
	slices.SortStableFunc(dirs, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	for _, d := range dedupe(dirs) {
		if d != StateDir && !strings.HasPrefix(StateDir, d+"/") && !strings.HasPrefix(d, StateDir+"/") {
			continue
		}
		if _, err := n.removeDirIfEmpty(d); err != nil {
			return err
		}
	}
	// Another run may have created the state directory again meanwhile
	// (it is empty, or holds just its lock file): then it needs to know
	// which directories are install's, or they outlive the last uninstall.
	if names, err := n.readDir(StateDir); err == nil && n.isDir(StateDir) && !slices.ContainsFunc(names, func(s string) bool { return s != "lock" && s != "journal" }) {
		next, err := lockState(n, dirs)
		if err != nil {
			return err
		}
		return next.release(n, nil)
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
	rel, err := n.resolve(journalFile)
	if err != nil {
		return nil, nil, err
	}
	f, err := n.root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND|oNoFollow|syscall.O_CLOEXEC, 0o600)
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
