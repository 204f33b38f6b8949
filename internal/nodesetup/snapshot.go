package nodesetup

import (
	"context"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/kubecred/ecr-credential-provider/internal/kubeletwiring"
	"github.com/kubecred/ecr-credential-provider/internal/providerconfig"
)

// Snapshot holds every file an Install or Uninstall is about to change, and
// the install record with its backups, as they are before it. A caller that
// restarts the kubelet afterwards and finds it unhealthy (the fleet
// installer) puts the node back with Restore: the previous version of ours,
// or none, byte for byte.
type Snapshot struct {
	root  string
	files map[string]fileState // Exists false: the file was not there
	dirs  []string             // directories the run would create
}

// TakeSnapshot records what Install (or, with uninstall, Uninstall) with o
// would change, by a dry run of it, and the state directory. Nothing is
// written.
func TakeSnapshot(ctx context.Context, o Options, uninstall bool) (*Snapshot, error) {
	o.DryRun, o.Restart = true, false
	run := Install
	if uninstall {
		run = Uninstall
	}
	res, err := run(ctx, o)
	if err != nil {
		return nil, err
	}
	n, err := openNodeFS(o.Root)
	if err != nil {
		return nil, err
	}
	defer n.Close()
	s := &Snapshot{root: o.Root, files: map[string]fileState{}}
	add := func(p string) error {
		if _, ok := s.files[p]; ok {
			return nil
		}
		st, err := n.read(p)
		if err != nil {
			return fmt.Errorf("snapshot of %s: %w", p, err)
		}
		s.files[p] = st
		return nil
	}
	for _, a := range res.Actions {
		switch a.Kind {
		case "mkdir":
			s.dirs = append(s.dirs, a.Path)
		case "rmdir":
		default:
			if err := add(a.Path); err != nil {
				return nil, err
			}
		}
	}
	for _, p := range stateFiles(n) {
		if err := add(p); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// stateFiles are the install record and its backups, not the lock and
// journal, which belong to whichever run holds them.
func stateFiles(n *nodeFS) []string {
	var out []string
	for _, dir := range []string{StateDir, backupDir} {
		names, _ := n.readDir(dir)
		for _, name := range names {
			p := path.Join(dir, name)
			if p == legacyLockFile || p == journalFile || p == backupDir || n.isDir(p) {
				continue
			}
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// Paths lists the files the snapshot holds, sorted.
func (s *Snapshot) Paths() []string {
	out := make([]string, 0, len(s.files))
	for p := range s.files {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// Restore puts every file of the snapshot back as it was, removes the
// files of the state directory that were not there, and the directories
// the run created once they are empty. It holds install's lock meanwhile,
// and writes as install does: atomically, journalled.
func (s *Snapshot) Restore(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	sess, err := openSession(Options{Root: s.root})
	if err != nil {
		return err
	}
	n := sess.n
	err = func() error {
		for _, p := range stateFiles(n) {
			if _, ok := s.files[p]; !ok {
				if err := n.remove(p); err != nil {
					return err
				}
			}
		}
		for _, p := range s.Paths() {
			st := s.files[p]
			if !st.Exists {
				if err := n.remove(p); err != nil {
					return err
				}
				continue
			}
			cur, err := n.read(p)
			if err == nil && sameContent(cur, st.Data) && cur.Mode == st.Mode {
				continue
			}
			missing, err := n.missingDirs(path.Dir(p))
			if err != nil {
				return err
			}
			for _, d := range missing {
				mode := os.FileMode(0o755)
				if d == StateDir || strings.HasPrefix(d, StateDir+"/") {
					mode = 0o700 // as install makes its own
				}
				if err := n.mkdir(d, mode); err != nil {
					return err
				}
			}
			if err := n.writeAtomic(p, st.Data, st.Mode, st.UID, st.GID); err != nil {
				return err
			}
		}
		dirs := slices.Clone(s.dirs)
		slices.SortStableFunc(dirs, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
		for _, d := range dirs {
			if d == StateDir || strings.HasPrefix(d, StateDir+"/") || strings.HasPrefix(StateDir, d+"/") {
				continue // the lock's release removes those with the record
			}
			if _, err := n.removeDirIfEmpty(d); err != nil {
				return err
			}
		}
		return nil
	}()
	return sess.close(err)
}

// CheckBoot lists every reason the kubelet could not start with the
// node's files below root as they are now, as far as credential providers
// go (the paths its flags name, its provider config by the rules of
// version v, the provider binaries), and returns the wiring it read. A
// zero v checks the versions the node's files hint at, or every version
// install supports. The fleet installer runs it with the version the node
// reports before it restarts anything.
func CheckBoot(root string, d Distro, v providerconfig.Version) ([]string, *kubeletwiring.Wiring, error) {
	n, err := openNodeFS(root)
	if err != nil {
		return nil, nil, err
	}
	defer n.Close()
	if d == "" {
		if d, _, err = detect(n); err != nil {
			return nil, nil, err
		}
	}
	w, err := kubeletwiring.Read(n, kindOf(d))
	if err != nil {
		return nil, nil, err
	}
	var assumed []providerconfig.Version
	if v.Minor != 0 {
		assumed = []providerconfig.Version{v}
		// The node said which kubelet it runs: its files' hints are
		// guesses beside that.
		w.VersionHints = nil
	}
	probs, _, err := bootProblemsWith(n, w, assumed)
	if err != nil {
		return nil, nil, err
	}
	out := make([]string, len(probs))
	for i, p := range probs {
		out[i] = p.Msg
	}
	return out, w, nil
}
