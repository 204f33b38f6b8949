package nodesetup

import (
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/kubecred/ecr-credential-provider/internal/kubeletwiring"
	"github.com/kubecred/ecr-credential-provider/internal/providerconfig"
)

// overlay is the node as it will be once a plan's ops are applied: the
// node's files with the plan's writes, removals and directories laid over
// them. The wiring model reads it to check a plan before the first write.
type overlay struct {
	base  kubeletwiring.FS
	files map[string][]byte // nil: removed
	dirs  map[string]bool   // true: created, false: removed
}

func newOverlay(base kubeletwiring.FS, ops []op) *overlay {
	o := &overlay{base: base, files: map[string][]byte{}, dirs: map[string]bool{}}
	for _, op := range ops {
		switch op.kind {
		case opWrite:
			o.files[op.path] = append([]byte{}, op.data...)
		case opRemove:
			o.files[op.path] = nil
		case opMkdir:
			o.dirs[op.path] = true
		case opRmdir:
			// Removed only if nothing would be left in it.
			if names, _ := o.ReadDir(op.path); len(names) == 0 {
				o.dirs[op.path] = false
			}
		}
	}
	return o
}

func (o *overlay) ReadFile(p string) ([]byte, bool, error) {
	if d, ok := o.files[p]; ok {
		return d, d != nil, nil
	}
	return o.base.ReadFile(p)
}

func (o *overlay) ReadDir(p string) ([]string, error) {
	names, err := o.base.ReadDir(p)
	if err != nil {
		return nil, err
	}
	for f, d := range o.files {
		if path.Dir(f) != p {
			continue
		}
		i := slices.Index(names, path.Base(f))
		switch {
		case d == nil && i >= 0:
			names = slices.Delete(names, i, i+1)
		case d != nil && i < 0:
			names = append(names, path.Base(f))
		}
	}
	for d, made := range o.dirs {
		if path.Dir(d) == p && made && !slices.Contains(names, path.Base(d)) {
			names = append(names, path.Base(d))
		}
	}
	sort.Strings(names)
	return names, nil
}

func (o *overlay) Exists(p string) bool {
	if d, ok := o.files[p]; ok {
		return d != nil
	}
	return o.IsDir(p) || o.base.Exists(p)
}

func (o *overlay) IsDir(p string) bool {
	if made, ok := o.dirs[p]; ok {
		return made
	}
	for f, d := range o.files {
		if d != nil && strings.HasPrefix(f, p+"/") {
			return true
		}
	}
	return o.base.IsDir(p)
}

func (o *overlay) Readlink(p string) string { return o.base.Readlink(p) }

// kindOf is which kubelet a distribution runs.
func kindOf(d Distro) kubeletwiring.Kind {
	switch d {
	case K3s:
		return kubeletwiring.K3s
	case RKE2:
		return kubeletwiring.RKE2
	}
	return kubeletwiring.Kubelet
}

// tokenGate is the kubelet feature gate that decides whether tokenAttributes
// may be used.
const tokenGate = "KubeletServiceAccountTokenForCredentialProviders"

// bootProblems lists every reason the kubelet of d could not start with
// the files fsys holds, as far as credential providers go: a path its
// flags name that does not exist, a provider config it would refuse (for
// each kubelet version the node's files hint at, or every version since
// firstV1), a provider binary missing from the bin dir.
func bootProblems(fsys kubeletwiring.FS, d Distro) ([]problem, *kubeletwiring.Wiring, error) {
	return bootProblemsFor(fsys, d, nil)
}

// firstV1 is the oldest kubelet that reads the kubelet.config.k8s.io/v1
// config install writes: with no hint of the node's version, install's
// result is checked against it and every newer one.
var firstV1 = providerconfig.Version{Minor: 26}

// bootProblemsFor is bootProblems with the kubelet versions to assume when
// the node's files hint at none (nil: firstV1 to the newest).
func bootProblemsFor(fsys kubeletwiring.FS, d Distro, assumed []providerconfig.Version) ([]problem, *kubeletwiring.Wiring, error) {
	w, err := kubeletwiring.Read(fsys, kindOf(d))
	if err != nil {
		return nil, nil, err
	}
	return bootProblemsWith(fsys, w, assumed)
}

// bootProblemsWith is bootProblemsFor with the wiring already read.
func bootProblemsWith(fsys kubeletwiring.FS, w *kubeletwiring.Wiring, assumed []providerconfig.Version) ([]problem, *kubeletwiring.Wiring, error) {
	var out []problem
	cfgPath, binDir := w.Config, w.BinDir
	if cfgPath.Value == "" {
		return nil, w, nil
	}
	if binDir.Value == "" {
		out = append(out, problem{cfgPath.Value, fmt.Sprintf("--%s=%s (%s) is set without --%s", flagConfig, cfgPath.Value, cfgPath.From, flagBinDir)})
	} else if !fsys.IsDir(binDir.Value) {
		out = append(out, problem{binDir.Value, fmt.Sprintf("--%s=%s (%s): no such directory", flagBinDir, binDir.Value, binDir.From)})
	}
	cfg, err := loadConfig(fsys, cfgPath.Value)
	if err != nil {
		return append(out, problem{cfgPath.Value, fmt.Sprintf("--%s=%s (%s): %v", flagConfig, cfgPath.Value, cfgPath.From, err)}), w, nil
	}
	var versions []providerconfig.Version
	for _, h := range w.VersionHints {
		if v, err := providerconfig.ParseVersion(h.Value); err == nil && !slices.Contains(versions, v) {
			versions = append(versions, v)
		}
	}
	if len(versions) == 0 {
		versions = assumed
	}
	if len(versions) == 0 {
		for m := firstV1.Minor; m <= providerconfig.NewestVersion.Minor; m++ {
			versions = append(versions, providerconfig.Version{Minor: m})
		}
	}
	opts := providerconfig.Options{}
	if g, ok := w.FeatureGates[tokenGate]; ok {
		opts.ServiceAccountTokenGate = &g.On
	}
	for _, v := range versions {
		opts.KubeletVersion = v
		for _, f := range providerconfig.Validate(cfg, opts) {
			if f.Severity == providerconfig.Error {
				out = append(out, problem{f.File, fmt.Sprintf("kubelet %s would refuse %s %s: %s", v, f.File, f.Field, f.Message)})
			}
		}
	}
	if binDir.Value != "" {
		for _, p := range cfg.Providers() {
			if p.Name != "" && !fsys.Exists(path.Join(binDir.Value, p.Name)) {
				bin := path.Join(binDir.Value, p.Name)
				out = append(out, problem{bin, fmt.Sprintf("provider %s in %s has no executable %s", p.Name, p.File, bin)})
			}
		}
	}
	return slices.Compact(out), w, nil
}

// problem is one reason the kubelet could not start, and the path it is
// about.
type problem struct{ Path, Msg string }

// loadConfig reads a provider config file (or directory) as
// providerconfig.Load does, through fsys.
func loadConfig(fsys kubeletwiring.FS, p string) (*providerconfig.Config, error) {
	if !fsys.Exists(p) {
		return nil, fmt.Errorf("no such file")
	}
	c := &providerconfig.Config{Path: p, Dir: fsys.IsDir(p)}
	files := []string{p}
	if c.Dir {
		names, err := fsys.ReadDir(p)
		if err != nil {
			return nil, err
		}
		files = nil
		for _, n := range names {
			if ext := path.Ext(n); (ext == ".json" || ext == ".yaml" || ext == ".yml") && !fsys.IsDir(path.Join(p, n)) {
				files = append(files, path.Join(p, n))
			}
		}
	}
	for _, f := range files {
		data, _, err := fsys.ReadFile(f)
		if err != nil {
			return nil, err
		}
		c.Files = append(c.Files, providerconfig.Decode(f, data))
	}
	return c, nil
}

// newProblems are the problems of after that before did not have: a run
// must not make a node that could boot unbootable, but it cannot be
// blamed for what was broken already.
// Only problems about a path in touched count (all, when touched is nil):
// uninstall puts back wiring that may have been broken before install,
// which is not its to fix, but it must not remove what wiring still names.
func newProblems(before, after []problem, touched func(string) bool) []problem {
	var out []problem
	for _, p := range after {
		if !slices.Contains(before, p) && (touched == nil || touched(p.Path)) {
			out = append(out, p)
		}
	}
	return out
}

// touchedBy reports whether a path is one the ops remove or change, or
// lies in a directory they remove.
func touchedBy(ops []op) func(string) bool {
	return func(p string) bool {
		for _, o := range ops {
			if o.internal {
				continue
			}
			if p == o.path || strings.HasPrefix(p, o.path+"/") || o.kind != opMkdir && strings.HasPrefix(o.path, p+"/") {
				return true
			}
		}
		return false
	}
}

func problemList(ps []problem) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteString("\n  - " + p.Msg)
	}
	return b.String()
}
