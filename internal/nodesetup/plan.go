package nodesetup

import (
	"github.com/kubecred/ecr-credential-provider/internal/kubeletwiring"
	"path/filepath"

	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"path"
	"slices"
	"strings"

	"github.com/kubecred/ecr-credential-provider/internal/providerconfig"
)

// manifestVersion 2 records, per file, what install put in it (its role,
// the variable or keys it set), so that uninstall can take out exactly
// that; version 1 records are read as whole-file backups.
const manifestVersion = 2

// manifest is the install record: what install created, what it edited and
// where the originals are, so that uninstall can undo exactly that.
type manifest struct {
	Version int            `json:"version"`
	Distro  Distro         `json:"distro"`
	Service string         `json:"service"`
	BinDir  string         `json:"binDir,omitempty"`
	Config  string         `json:"config,omitempty"`
	Files   []manifestFile `json:"files"`
	// Dirs are the directories install created, outermost first.
	Dirs []string `json:"dirs,omitempty"`
	// Mirrors are the pull-through cache rules install put in the
	// provider's args and the runtime's mirrors.
	Mirrors []string `json:"mirrors,omitempty"`
}

type manifestFile struct {
	Path string `json:"path"`
	// SHA256 is the content install last wrote. A file that still has it
	// is restored whole (or removed); one that has not was edited since,
	// and uninstall takes out only what is install's.
	SHA256 string `json:"sha256"`
	// Role says what install put in the file: roleBinary, roleConfig (our
	// provider entry) or roleWiring (Var's flags, or Keys).
	Role string `json:"role,omitempty"`
	// Written are the contents install wrote here before (their SHA256s,
	// newest last): a run killed after recording a new one may have left
	// an older one in place, which is install's all the same.
	Written []string `json:"written,omitempty"`
	// Created is true when the file did not exist before install.
	Created bool `json:"created,omitempty"`
	// Backup is where the original is kept, until the file is edited by
	// someone else (then the original no longer undoes install alone).
	Backup   string      `json:"backup,omitempty"`
	Mode     fs.FileMode `json:"mode,omitempty"`
	UID      int         `json:"uid,omitempty"`
	GID      int         `json:"gid,omitempty"`
	Var      string      `json:"var,omitempty"`
	AddedVar bool        `json:"addedVar,omitempty"`
	Keys     []string    `json:"keys,omitempty"`
	// Set are the flags (or keys) a wiring file sets and their values;
	// Replaced are the values they had before install, put back by
	// uninstall.
	Set map[string]string `json:"set,omitempty"`
	// Values are every value install ever gave each flag or key in this
	// file (a run killed part way may have left any of them).
	Values   map[string][]string `json:"values,omitempty"`
	Replaced map[string]string   `json:"replaced,omitempty"`
	// Undo marks a file an install in progress is about to undo (its
	// paths changed); the record keeps it until that is done, so a crash
	// in between loses track of nothing.
	Undo bool `json:"undo,omitempty"`
}

// wrote reports whether data is content install wrote to the file.
func (f *manifestFile) wrote(data []byte) bool {
	s := sum(data)
	return s == f.SHA256 || slices.Contains(f.Written, s)
}

func (m *manifest) find(p string) *manifestFile {
	if m == nil {
		return nil
	}
	for i := range m.Files {
		if m.Files[i].Path == p {
			return &m.Files[i]
		}
	}
	return nil
}

func loadManifest(n *nodeFS) (*manifest, error) {
	st, err := n.read(stateFile)
	if err != nil || !st.Exists {
		return nil, err
	}
	var m manifest
	bad := func(why string) error {
		return fmt.Errorf("install record %s: %s; if it is damaged, restore the files listed in it by hand (originals are in %s) and remove it", stateFile, why, backupDir)
	}
	if err := json.Unmarshal(st.Data, &m); err != nil {
		return nil, bad(err.Error())
	}
	if m.Version != manifestVersion && m.Version != 1 {
		return nil, bad(fmt.Sprintf("version %d is not one this binary knows (%d)", m.Version, manifestVersion))
	}
	if !isService(m.Service) {
		return nil, bad(fmt.Sprintf("service %q is not one install manages", m.Service))
	}
	for i, f := range m.Files {
		if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path || f.Backup != "" && path.Dir(f.Backup) != backupDir {
			return nil, bad(fmt.Sprintf("entry %q/%q is not a path install writes", f.Path, f.Backup))
		}
		if m.Version == 1 {
			m.Files[i].Created = f.Backup == ""
			m.Files[i].Role = roleWiring
			switch {
			case path.Base(f.Path) == providerconfig.DefaultName:
				m.Files[i].Role = roleBinary
			case f.Path == m.Config:
				m.Files[i].Role = roleConfig
			}
		}
	}
	m.Version = manifestVersion
	for _, d := range m.Dirs {
		if !path.IsAbs(d) || path.Clean(d) != d || d == "/" {
			return nil, bad(fmt.Sprintf("directory %q is not a path install creates", d))
		}
	}
	return &m, nil
}

func (m *manifest) encode() []byte {
	b, _ := json.MarshalIndent(m, "", "  ")
	return append(b, '\n')
}

func backupPath(p string) string { return path.Join(backupDir, url.PathEscape(p)) }

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

type opKind int

const (
	opWrite opKind = iota
	opRemove
	opMkdir
	opRmdir
)

// op is one step of a plan. old is what the file held when the plan was
// made: the diff's left side, and what rollback puts back.
type op struct {
	kind     opKind
	path     string
	data     []byte
	mode     fs.FileMode
	uid, gid int
	old      fileState
	binary   bool
	unit     bool
	internal bool   // install's own record and backups: not in the diff
	restore  bool   // the write puts a backup back
	role     string // of a recorded file: what it is to the kubelet
	detail   string // for the report
}

type plan struct {
	ops   []op
	notes []string
	// left is true when uninstall leaves files of install's in place.
	left bool
}

func (p *plan) nodeOps() []op {
	var out []op
	for _, o := range p.ops {
		if !o.internal {
			out = append(out, o)
		}
	}
	return out
}

func (p *plan) touchesUnits() bool {
	return slices.ContainsFunc(p.ops, func(o op) bool { return o.unit })
}

// planInstall turns the wanted files into ops, with backups of the files
// it edits for the first time and an updated install record. A file an
// earlier install wrote and someone edited since loses its backup: putting
// the original back would drop their edit. Files an earlier install wrote
// that are no longer wanted (another --bin-dir, say) are undone as
// uninstall would.
func planInstall(n *nodeFS, old *manifest, m manifest, changes []change) (*plan, error) {
	p := &plan{}
	if old != nil {
		m.Files = append(m.Files, old.Files...)
		m.Dirs = append(m.Dirs, old.Dirs...)
	}
	var backups, node, internal []op
	wanted := map[string]bool{}
	for _, c := range changes {
		wanted[c.Path] = true
		cur, err := n.read(c.Path)
		if err != nil {
			return nil, err
		}
		mode := c.Mode
		if mode == 0 {
			mode = cur.Mode
			if !cur.Exists {
				mode = 0o644
			}
		}
		e := m.find(c.Path)
		if e != nil && cur.Exists && !e.wrote(cur.Data) && !backupHolds(n, e, cur) {
			// Nothing of ours left in it (a run was killed after putting
			// the original back): it is the operator's file again, to be
			// backed up afresh.
			undo, kept, err := undoFile(n, old, *e, false)
			if err != nil {
				return nil, err
			}
			if kept == "" && !slices.ContainsFunc(undo, func(o op) bool { return !o.internal }) {
				// Its old backup is overwritten by the fresh one below.
				i := slices.IndexFunc(m.Files, func(f manifestFile) bool { return f.Path == c.Path })
				m.Files = slices.Delete(m.Files, i, i+1)
				e = nil
			}
		}
		if e != nil && cur.Exists && !e.wrote(cur.Data) && !backupHolds(n, e, cur) {
			// Edited since install wrote it: from now on only our part of
			// it is ours.
			if e.Backup != "" {
				bk, err := n.read(e.Backup)
				if err != nil {
					return nil, err
				}
				internal = append(internal, op{kind: opRemove, path: e.Backup, old: bk, internal: true})
				e.Backup = ""
			}
			e.Created = false
			e.SHA256 = sum(cur.Data)
		}
		if sameContent(cur, c.Data) && cur.Mode == mode {
			continue
		}
		o := op{kind: opWrite, path: c.Path, data: c.Data, mode: mode, uid: -1, gid: -1, old: cur, binary: c.Binary, unit: c.Unit}
		if e == nil {
			m.Files = append(m.Files, manifestFile{Path: c.Path, Role: c.Role, Created: !cur.Exists, Var: c.Var, AddedVar: c.AddedVar, Replaced: c.Replaced})
			e = &m.Files[len(m.Files)-1]
			if cur.Exists {
				e.Backup, e.Mode, e.UID, e.GID = backupPath(c.Path), cur.Mode, cur.UID, cur.GID
				backups = append(backups, op{kind: opWrite, path: e.Backup, data: cur.Data, mode: 0o600, uid: -1, gid: -1, internal: true})
				o.detail = "original kept in " + e.Backup
			}
		}
		e.Keys = dedupe(append(e.Keys, c.Keys...))
		if e.SHA256 != "" && e.SHA256 != sum(c.Data) && !slices.Contains(e.Written, e.SHA256) {
			e.Written = append(e.Written, e.SHA256)
			if len(e.Written) > 8 {
				e.Written = e.Written[len(e.Written)-8:]
			}
		}
		e.SHA256 = sum(c.Data)
		if len(c.Set) > 0 {
			e.Set = c.Set
		}
		for k, v := range c.Set {
			if e.Values == nil {
				e.Values = map[string][]string{}
			}
			if !slices.Contains(e.Values[k], v) {
				e.Values[k] = append(e.Values[k], v)
			}
		}
		if cur.Exists {
			o.uid, o.gid = cur.UID, cur.GID
		}
		if c.Binary {
			o.detail = strings.TrimPrefix(o.detail+"; "+fmt.Sprintf("%d bytes, mode %04o", len(c.Data), mode), "; ")
		}
		node = append(node, o)
	}

	// What an earlier install wrote and is no longer wanted.
	var keep []manifestFile
	for _, f := range m.Files {
		if wanted[f.Path] {
			keep = append(keep, f)
			continue
		}
		undo, kept, err := undoFile(n, old, f, false)
		if err != nil {
			return nil, err
		}
		if kept != "" {
			p.notes = append(p.notes, kept)
			keep = append(keep, f)
		}
		for _, o := range undo {
			if o.internal {
				internal = append(internal, o)
			} else {
				node = append(node, o)
			}
		}
	}
	// Directories install made for files now gone go too, if empty.
	inUse := []string{StateDir}
	for _, f := range keep {
		inUse = append(inUse, f.Path)
	}
	for p := range wanted {
		inUse = append(inUse, p)
	}
	undoing := slices.ContainsFunc(node, func(o op) bool { return o.kind == opRemove || o.restore })
	var keptDirs []string
	for i := len(m.Dirs) - 1; i >= 0; i-- {
		d := m.Dirs[i]
		under := func(p string) bool { return strings.HasPrefix(p, d+"/") }
		if slices.ContainsFunc(m.Files, func(f manifestFile) bool { return under(f.Path) }) && !slices.ContainsFunc(inUse, under) {
			node = append(node, op{kind: opRmdir, path: d})
			continue
		}
		keptDirs = append([]string{d}, keptDirs...)
	}
	// The record written first still holds what is being undone (marked
	// so); the one written last does not.
	first := m
	first.Files = slices.Clone(m.Files)
	for i := range first.Files {
		if !wanted[first.Files[i].Path] && !slices.ContainsFunc(keep, func(f manifestFile) bool { return f.Path == first.Files[i].Path }) {
			first.Files[i].Undo = true
		}
	}
	m.Files, m.Dirs = keep, keptDirs
	if len(node) == 0 && len(internal) == 0 {
		return p, nil
	}

	// Backups first (one a crash leaves unrecorded is swept by the next
	// run), then the record, naming every directory, backup and file the
	// run may create, so a crash part way leaves a record uninstall can
	// work from; then directories; then the node's files (the
	// binary before the config before the wiring, so that the kubelet is
	// never pointed at something not there yet); backups no longer needed
	// go last.
	cur, err := n.read(stateFile)
	if err != nil {
		return nil, err
	}
	record := op{kind: opWrite, path: stateFile, mode: 0o600, uid: -1, gid: -1, old: cur, internal: true}
	writes := append(append(append([]op{}, backups...), record), node...)
	dirs, err := missingParents(n, writes)
	if err != nil {
		return nil, err
	}
	m.Dirs = dedupe(append(m.Dirs, dirs...))
	first.Dirs = dedupe(append(first.Dirs, dirs...))
	record.data = first.encode()
	var nodeDirs []op
	for _, d := range dirs {
		if d == StateDir || strings.HasPrefix(d, StateDir+"/") {
			p.ops = append(p.ops, op{kind: opMkdir, path: d, mode: 0o700, internal: true})
		} else {
			nodeDirs = append(nodeDirs, op{kind: opMkdir, path: d, mode: 0o755})
		}
	}
	p.ops = append(p.ops, backups...)
	p.ops = append(p.ops, record)
	p.ops = append(p.ops, nodeDirs...)
	p.ops = append(p.ops, node...)
	p.ops = append(p.ops, internal...)
	if undoing {
		final := record
		final.data, final.old = m.encode(), fileState{Exists: true, Data: record.data, Mode: 0o600, UID: -1, GID: -1}
		p.ops = append(p.ops, final)
	}
	return p, nil
}

// missingParents lists the directories the writes need created, each
// after its parent.
func missingParents(n *nodeFS, writes []op) ([]string, error) {
	var dirs []string
	for _, o := range writes {
		if o.kind != opWrite {
			continue
		}
		missing, err := n.missingDirs(path.Dir(o.path))
		if err != nil {
			return nil, err
		}
		dirs = append(dirs, missing...)
	}
	dirs = dedupe(dirs)
	slices.SortStableFunc(dirs, func(a, b string) int { return strings.Count(a, "/") - strings.Count(b, "/") })
	return dirs, nil
}

func dedupe(s []string) []string {
	var out []string
	for _, v := range s {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// undoFile plans taking out of one recorded file what install put in. A
// file that still holds exactly what install wrote is put back whole: its
// backup restored, or removed when install created it. Otherwise only
// install's part goes (our provider entry, our flags, our keys), and every
// other line stays as it is now. kept is a note when the file is left as
// it is although something of ours may be in it.
func undoFile(n *nodeFS, m *manifest, f manifestFile, force bool) (ops []op, kept string, err error) {
	cur, err := n.read(f.Path)
	if err != nil {
		return nil, "", err
	}
	var bk fileState
	if f.Backup != "" {
		if bk, err = n.read(f.Backup); err != nil {
			return nil, "", err
		}
	}
	dropBackup := func(ops []op) []op {
		if bk.Exists {
			ops = append(ops, op{kind: opRemove, path: f.Backup, old: bk, internal: true})
		}
		return ops
	}
	unit, bin := isUnitFile(f.Path), f.Role == roleBinary
	remove := op{kind: opRemove, path: f.Path, old: cur, unit: unit, binary: bin || isBinary(f.Path, cur.Data), role: f.Role}
	if !cur.Exists || bk.Exists && sameContent(bk, cur.Data) {
		// Gone, or still the original: install never got to write it (it
		// was killed first), or someone put the original back.
		return dropBackup(nil), "", nil
	}
	ours := f.wrote(cur.Data)
	if ours || force {
		switch {
		case bk.Exists:
			return dropBackup([]op{{kind: opWrite, path: f.Path, data: bk.Data, mode: f.Mode, uid: f.UID, gid: f.GID, old: cur, restore: true, unit: unit, binary: bin || isBinary(f.Path, bk.Data), role: f.Role}}), "", nil
		case f.Created:
			return []op{remove}, "", nil
		}
	}
	edit := func(data []byte, changed bool, empty bool, err error) ([]op, string, error) {
		switch {
		case err != nil:
			return nil, fmt.Sprintf("%s was edited since install and install cannot take its part out (%v), so it was left as it is; take it out by hand", f.Path, err), nil
		case empty && (f.Created || f.Role == roleConfig):
			return dropBackup([]op{remove}), "", nil
		case !changed:
			return dropBackup(nil), "", nil
		}
		return dropBackup([]op{{kind: opWrite, path: f.Path, data: data, mode: cur.Mode, uid: cur.UID, gid: cur.GID, old: cur, unit: unit, role: f.Role, detail: "took out what install added"}}), "", nil
	}
	flags := ourFlags(m.Config, m.BinDir)
	for name, vs := range f.Values {
		for _, v := range vs {
			flags = append(flags, kubeletFlag{Name: name, Value: v})
		}
	}
	switch {
	case f.Role == roleBinary:
		return nil, fmt.Sprintf("%s changed since install (another binary?), so it was left in place; remove it yourself if it is no longer needed, or pass --force", f.Path), nil
	case f.Role == roleConfig:
		data, changed, empty, err := withoutOurProvider(f.Path, cur.Data)
		return edit(data, changed, empty, err)
	case f.Role == roleMirror && len(f.Keys) > 0:
		var rules []string
		if m != nil {
			rules = m.Mirrors
		}
		return edit(withoutMirrors(f.Path, cur.Data, f.Keys, rules))
	case f.Role == roleMirror:
		return nil, fmt.Sprintf("%s was edited since install wrote it, so it was left in place: containerd still fetches its registry's images from the ECR pull-through cache; remove it yourself if that is no longer wanted, or pass --force", f.Path), nil
	case f.Var != "" && f.Path == ourDropIn:
		base, err := baseExtraArgs(n)
		if err != nil {
			return edit(nil, false, false, err)
		}
		return edit(dropInWithoutOurFlags(cur.Data, base, flags))
	case f.Var != "":
		data, changed, err := withoutOurFlags(f.Path, cur.Data, f.Var, f.AddedVar, flags, f.Replaced)
		return edit(data, changed, changed && f.Created && onlyOurLines(data), err)
	case len(f.Keys) > 0:
		data, changed, err := withoutYAMLKeys(f.Path, cur.Data, f.Keys, flags, f.Replaced)
		return edit(data, changed, changed && f.Created && onlyOurLines(data), err)
	}
	return nil, fmt.Sprintf("%s changed since install, so it was left in place; its original is in %s (pass --force to restore it anyway)", f.Path, f.Backup), nil
}

// ourLines are the lines install writes around its settings in files it
// creates: a file with nothing else left in it is install's to remove.
var ourLines = []string{
	envFileHeader, addedCommentLine, "[Service]",
	"# Written by 'ecr-credential-provider install'; 'ecr-credential-provider uninstall' removes it.",
	"# kubelet.service's ExecStart expands $" + extraArgsVar + "; this adds the image",
	"# credential provider flags to it.",
}

func onlyOurLines(data []byte) bool {
	for _, l := range strings.Split(string(data), "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !slices.ContainsFunc(ourLines, func(o string) bool { return strings.HasPrefix(l, o) }) {
			return false
		}
	}
	return true
}

// backupHolds reports whether a file still holds its original, kept in
// the backup: install recorded what it would write but died before it did.
func backupHolds(n *nodeFS, e *manifestFile, cur fileState) bool {
	if e.Backup == "" {
		return false
	}
	bk, err := n.read(e.Backup)
	return err == nil && sameContent(bk, cur.Data)
}

// baseExtraArgs is KUBELET_EXTRA_ARGS as kubelet.service sets it without
// our drop-in.
func baseExtraArgs(n *nodeFS) (string, error) {
	u, err := kubeletwiring.LoadUnit(n, kubeletService, ourDropIn)
	if err != nil || len(u.Files) == 0 {
		return "", err
	}
	env, _, err := u.Environment(n)
	return env[extraArgsVar].Value, err
}

func isUnitFile(p string) bool {
	return strings.Contains(p, "/systemd/") && (strings.HasSuffix(p, ".conf") || strings.HasSuffix(p, ".service"))
}

// isBinary tells a file to show as "Binary files differ" rather than text.
func isBinary(p string, data []byte) bool {
	return path.Base(p) == providerconfig.DefaultName || slices.Contains(data, 0)
}

// roleOrder undoes the wiring first, then the config, then the runtime's
// mirrors (the config's map goes before them, so no token is sent for a
// source pulled from the source registry), then the binary:
// a crash between any two steps leaves the kubelet pointed only at what
// is still there.
// A switch, not a map: a map literal would be built by the package's init
// in every plugin call.
func roleOrder(role string) int {
	switch role {
	case roleConfig:
		return 1
	case roleMirror:
		return 2
	case roleBinary:
		return 3
	}
	return 0 // roleWiring
}

// planUninstall undoes every recorded file, then removes the record, the
// backups and the directories install created (those left empty). keep
// are files uninstall must leave although they are ours, because the
// kubelet's wiring still names them.
func planUninstall(n *nodeFS, m *manifest, force bool, keep map[string]string) (*plan, error) {
	p := &plan{}
	var node, internal []op
	var left []manifestFile
	files := slices.Clone(m.Files)
	slices.SortStableFunc(files, func(a, b manifestFile) int { return roleOrder(a.Role) - roleOrder(b.Role) })
	for _, f := range files {
		if why, ok := keep[f.Path]; ok {
			p.notes = append(p.notes, why)
			left = append(left, f)
			continue
		}
		ops, kept, err := undoFile(n, m, f, force)
		if err != nil {
			return nil, err
		}
		if kept != "" {
			p.notes = append(p.notes, kept)
			left = append(left, f)
		}
		for _, o := range ops {
			if o.internal {
				internal = append(internal, o)
			} else {
				node = append(node, o)
			}
		}
	}
	p.ops = append(p.ops, node...)
	cur, err := n.read(stateFile)
	if err != nil {
		return nil, err
	}
	if len(left) > 0 {
		rest := *m
		rest.Files = left
		// Backups go after the record that names them: one a crash leaves
		// behind unnamed is swept by the next run.
		p.ops = append(p.ops, op{kind: opWrite, path: stateFile, data: rest.encode(), mode: 0o600, uid: -1, gid: -1, old: cur, internal: true})
		p.ops = append(p.ops, internal...)
		p.notes = append(p.notes, "the install record "+stateFile+" keeps the files above; run uninstall again once they are sorted out")
		p.left = true
		return p, nil
	}
	// Directories before the record that lists them: a crash in between
	// leaves the record, and the next run removes the rest. The state
	// directory goes when the lock is released; its parents hold the lock
	// file, which stays. Backups go after the
	// record: one a crash leaves behind unnamed is swept by the next run.
	for i := len(m.Dirs) - 1; i >= 0; i-- {
		if d := m.Dirs[i]; d != StateDir && !strings.HasPrefix(d, StateDir+"/") && !strings.HasPrefix(StateDir, d+"/") {
			p.ops = append(p.ops, op{kind: opRmdir, path: d})
		}
	}
	p.ops = append(p.ops, op{kind: opRemove, path: stateFile, old: cur, internal: true})
	p.ops = append(p.ops, internal...)
	return p, nil
}

// apply runs the plan. If a step fails, the steps done so far are undone in
// reverse, so the node is as it was before.
func (p *plan) apply(n *nodeFS) error {
	var undo []func() error
	for _, o := range p.ops {
		u, err := o.do(n)
		if err != nil {
			var rbErrs []error
			for i := len(undo) - 1; i >= 0; i-- {
				if rerr := undo[i](); rerr != nil {
					rbErrs = append(rbErrs, rerr)
				}
			}
			if len(rbErrs) > 0 {
				return fmt.Errorf("%w; rolling back also failed, check these by hand: %v", err, errors.Join(rbErrs...))
			}
			return fmt.Errorf("%w (every change made before it was rolled back)", err)
		}
		if u != nil {
			undo = append(undo, u)
		}
	}
	return nil
}

// do performs one op and returns how to take it back.
func (o op) do(n *nodeFS) (func() error, error) {
	putBack := func() error {
		if !o.old.Exists {
			return n.remove(o.path)
		}
		return n.writeAtomic(o.path, o.old.Data, o.old.Mode, o.old.UID, o.old.GID)
	}
	switch o.kind {
	case opWrite:
		return putBack, n.writeAtomic(o.path, o.data, o.mode, o.uid, o.gid)
	case opRemove:
		if err := n.j.record(journalEntry{Op: "remove", Path: o.path}); err != nil {
			return nil, err
		}
		defer crashPoint("removed " + o.path)
		if err := n.remove(o.path); err != nil {
			return nil, fmt.Errorf("remove %s: %w", o.path, err)
		}
		return putBack, nil
	case opMkdir:
		if err := n.mkdir(o.path, o.mode); err != nil {
			return nil, fmt.Errorf("create directory %s: %w", o.path, err)
		}
		return func() error { _, err := n.removeDirIfEmpty(o.path); return err }, nil
	case opRmdir:
		fi, err := n.stat(o.path)
		if err != nil {
			return nil, nil // already gone
		}
		removed, err := n.removeDirIfEmpty(o.path)
		if err != nil || !removed {
			return nil, nil // still in use: not install's to remove
		}
		return func() error { return n.mkdir(o.path, fi.Mode().Perm()) }, nil
	}
	return nil, fmt.Errorf("unknown op %d", o.kind)
}

// actions describes the node ops for the report.
func (p *plan) actions() []Action {
	var out []Action
	for _, o := range p.nodeOps() {
		a := Action{Path: o.path, Detail: o.detail}
		switch {
		case o.kind == opMkdir:
			a.Kind, a.Detail = "mkdir", fmt.Sprintf("mode %04o", o.mode)
		case o.kind == opRmdir:
			a.Kind = "rmdir"
		case o.kind == opRemove:
			a.Kind = "remove"
		case o.restore:
			a.Kind, a.Detail = "restore", "from its backup"
		case o.old.Exists:
			a.Kind = "update"
		default:
			a.Kind = "create"
			if a.Detail == "" {
				a.Detail = fmt.Sprintf("mode %04o", o.mode)
			}
		}
		out = append(out, a)
	}
	return out
}

// diff renders the plan's file changes as one unified diff; binaries are
// summarised as diff -u does, with their size and checksum.
func (p *plan) diff() string {
	var b strings.Builder
	for _, o := range p.nodeOps() {
		if o.kind != opWrite && o.kind != opRemove {
			continue
		}
		from, to := o.path, o.path
		var newData []byte
		if o.kind == opWrite {
			newData = o.data
		} else {
			to = "/dev/null"
		}
		if !o.old.Exists {
			from = "/dev/null"
		}
		if o.binary || isBinary(o.path, o.old.Data) {
			fmt.Fprintf(&b, "Binary files %s and %s differ", from, to)
			if o.kind == opWrite {
				fmt.Fprintf(&b, " (new: %d bytes, sha256 %s, mode %04o)", len(newData), sum(newData)[:16], o.mode)
			}
			b.WriteString("\n")
			continue
		}
		d := unifiedDiff(from, to, o.old.Data, newData)
		if d == "" && o.old.Mode != o.mode && o.kind == opWrite {
			d = fmt.Sprintf("mode of %s: %04o -> %04o\n", o.path, o.old.Mode, o.mode)
		}
		b.WriteString(d)
	}
	return b.String()
}

// checkWritable tells a user who is not root, before the first write, that
// the plan needs root, rather than failing part way with EACCES.
func (p *plan) checkWritable(n *nodeFS) error {
	for _, o := range p.ops {
		d := path.Dir(o.path)
		for d != "/" && !n.exists(d) {
			d = path.Dir(d)
		}
		rel, err := n.resolve(d)
		if err != nil {
			return err
		}
		if !writable(filepath.Join(n.dir, rel)) {
			return fmt.Errorf("%s: %w", d, errRunAsRoot)
		}
	}
	return nil
}
