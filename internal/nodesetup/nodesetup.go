// Package nodesetup installs ecr-credential-provider on a Kubernetes node and
// wires the kubelet to it the way the node's distribution expects (k3s and
// rke2 defaults or config.yaml, kubeadm's KUBELET_EXTRA_ARGS, a
// kubelet.service drop-in, an EKS AMI's own provider directory), and undoes
// it. Every change is planned and checked before the first write, written
// atomically, recorded with a backup of each file it edits, and rolled back
// if a later write fails.
package nodesetup

import (
	"github.com/kubecred/ecr-credential-provider/internal/kubeletwiring"

	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"strings"

	"github.com/kubecred/ecr-credential-provider/internal/providerconfig"
	"github.com/kubecred/ecr-credential-provider/internal/registrymap"
)

// Paths install uses for kubeadm and plain systemd nodes, which have no
// convention of their own. The bin dir is one only credential providers
// live in: the kubelet runs whatever a config names in it.
const (
	DefaultBinDir = "/usr/local/libexec/kubelet-credential-providers"
	DefaultConfig = "/etc/kubernetes/image-credential-provider-config.yaml"
)

// StateDir holds the install record and the backups of edited files.
const StateDir = "/var/lib/ecr-credential-provider"

const (
	stateFile = StateDir + "/install-state.json"
	backupDir = StateDir + "/backups"
)

// Options control Install and Uninstall. Paths are as the node sees them;
// Root says where that node's filesystem is.
type Options struct {
	// Root is the node's filesystem root; "" means "/".
	Root string
	// Distro is how the kubelet runs; "" detects it.
	Distro Distro
	// BinDir and Config override the distribution's default paths for the
	// kubelet's --image-credential-provider-bin-dir and -config.
	BinDir, Config string
	// Public makes the config match ECR Public images too.
	Public bool
	// Provider shapes the rest of the config written (per-pod roles, env);
	// its Public is taken from Public.
	Provider providerconfig.RecommendedOptions
	// Binary is the file to install (outside Root); "" is this executable.
	Binary string
	// DryRun computes everything and writes nothing; Result.Diff shows it.
	DryRun bool
	// Force replaces what install would otherwise refuse to touch: a config
	// with other providers, an EKS AMI's binary, files changed since install
	// (uninstall).
	Force bool
	// Restart restarts the kubelet's service after a change.
	Restart bool
	// PullThroughCache maps source registries to ECR pull-through caches:
	// the provider gets the map, and the runtime a mirror for each source.
	PullThroughCache []registrymap.Rule
	// PullThroughCacheFallback lets the runtime fall back to the source
	// registry, which then gets the node's ECR token.
	PullThroughCacheFallback bool
	// Systemctl runs systemctl with args; nil execs systemctl itself (only
	// allowed with Root "/", as it acts on this machine).
	Systemctl func(ctx context.Context, args ...string) error
}

// UsageError is a bad option, as opposed to a node install cannot handle.
type UsageError struct{ msg string }

func (e *UsageError) Error() string { return e.msg }

// Not inlined (go:noinline): it has two dozen call sites, and one out-of-line copy
// keeps the plugin binary, which links every operator command, smaller.
//
//go:noinline
func usageErrorf(format string, a ...any) error { return &UsageError{fmt.Sprintf(format, a...)} }

// Action is one change to the node.
type Action struct {
	Kind   string // create, update, restore, remove, mkdir, rmdir
	Path   string
	Detail string
}

// String says what the action did, or (dryRun) would do.
func (a Action) String(dryRun bool) string {
	verbs := map[string][2]string{
		"create":  {"created", "would create"},
		"update":  {"updated", "would update"},
		"restore": {"restored", "would restore"},
		"remove":  {"removed", "would remove"},
		"mkdir":   {"created directory", "would create directory"},
		"rmdir":   {"removed directory", "would remove directory (if empty)"},
	}
	v := verbs[a.Kind][0]
	if dryRun {
		v = verbs[a.Kind][1]
	}
	s := v + " " + a.Path
	if a.Detail != "" {
		s += " (" + a.Detail + ")"
	}
	return s
}

// Result reports what Install or Uninstall did, or would do.
type Result struct {
	Distro Distro
	// Evidence lists the files detection went by (empty with --distro).
	Evidence []string
	DryRun   bool
	// Changed is true when files were (or, dry run, would be) written.
	Changed bool
	// Unchanged is true when the node already was as asked: nothing to do.
	Unchanged bool
	// NeedsForce is true when install found what it would change but was
	// not allowed to (an EKS AMI's own provider, without Force).
	NeedsForce bool
	// Incomplete is true when uninstall had to leave something of ours in
	// place (the notes say what and why): the command fails.
	Incomplete bool
	Actions    []Action
	// Notes are findings the operator should know about.
	Notes []string
	// Next are the steps left to the operator.
	Next []string
	// Diff is, on a dry run, a unified diff of every file that would change.
	Diff string
	// Restart lists the systemctl commands the change needs before the
	// kubelet uses it (daemon-reload when a unit changed, then the restart);
	// empty when nothing changed.
	Restart []string
	// Ran lists the systemctl commands run (with Restart).
	Ran []string
}

// Install installs the provider binary and config and wires the kubelet.
// It edits rather than replaces: in a provider config it sets our entry
// and keeps every other provider (and, in ours, the operator's env, args
// and extra matchImages); in the kubelet's wiring it sets only our flags
// or keys. It refuses any plan after which the kubelet could not start.
func Install(ctx context.Context, o Options) (*Result, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	if o.Distro == EKS && (o.BinDir != "" || o.Config != "") {
		return nil, usageErrorf("--bin-dir and --config do not apply to EKS: the AMI's kubelet already names its own paths")
	}
	if o.Distro == EKS {
		// Refused before the lock, so a refused run leaves no lock file.
		if err := eksProviderOptions(o); err != nil {
			return nil, err
		}
	}
	binary, err := readBinary(o.Binary)
	if err != nil {
		return nil, err
	}
	s, err := openSession(o)
	if err != nil {
		return nil, err
	}
	defer s.abandonOnCrash()
	res := &Result{Distro: o.Distro, DryRun: o.DryRun, Notes: s.notes}
	p, service, err := planInstallRun(s, o, binary, res)
	if err != nil || p == nil {
		return res.orNil(err), s.close(err)
	}
	return s.finish(ctx, o, res, p, service)
}

// eksProviderOptions refuses the provider options an EKS node's own
// provider config does not take from install.
func eksProviderOptions(o Options) error {
	if o.Provider.PerPodRoles || len(o.Provider.Env) > 0 {
		return usageErrorf("this is an EKS node: install keeps the AMI's own provider config there, so --per-pod-roles and --env do not apply; set them in the node's bootstrap")
	}
	return nil
}

func planInstallRun(s *session, o Options, binary []byte, res *Result) (*plan, string, error) {
	n, m := s.n, s.m
	var err error
	if res.Distro == "" {
		if res.Distro, res.Evidence, err = detect(n); err != nil {
			return nil, "", err
		}
		if res.Distro == EKS && (o.BinDir != "" || o.Config != "") {
			return nil, "", usageErrorf("this is an EKS node (%s); --bin-dir and --config do not apply there: the AMI's kubelet already names its own paths", strings.Join(res.Evidence, ", "))
		}
	}

	var w wiring
	var changes []change
	binDir, config := o.BinDir, o.Config
	if res.Distro == EKS {
		if err := eksProviderOptions(o); err != nil {
			return nil, "", err
		}
		if len(o.PullThroughCache) > 0 {
			return nil, "", usageErrorf("--pull-through-cache is not supported on EKS nodes yet: the AMI owns containerd's config and the provider's; set up the hosts.toml and the provider's --registry-map by hand")
		}
		if w, err = planEKS(n, binary, o.Public); err != nil {
			return nil, "", err
		}
		binDir = path.Dir(w.Changes[0].Path)
	} else {
		binDir, config = defaultPaths(res.Distro, binDir, config)
		rec, err := providerconfig.Recommended(o.recommended())
		if err != nil {
			return nil, "", err
		}
		cfg, notes, err := configFor(n, m, config, rec, o.Force)
		if err != nil {
			return nil, "", err
		}
		res.Notes = append(res.Notes, notes...)
		if cfg, err = withMap(config, cfg, o.PullThroughCache, droppedRules(m, o.PullThroughCache)); err != nil {
			return nil, "", err
		}
		mirrors, notes, err := planMirrors(n, m, res.Distro, o)
		if err != nil {
			return nil, "", err
		}
		res.Notes = append(res.Notes, notes...)
		// The mirrors go in before the config that maps their sources: the
		// kubelet must never send an ECR token for a source the runtime
		// still fetches from the source registry itself.
		changes = append([]change{{Path: path.Join(binDir, providerconfig.DefaultName), Data: binary, Mode: 0o755, Binary: true, Role: roleBinary}}, mirrors...)
		changes = append(changes, change{Path: config, Data: cfg, Mode: 0o644, Role: roleConfig})
		switch res.Distro {
		case K3s, RKE2:
			w, err = planRancher(n, res.Distro, binDir, config, changes)
		default:
			w, err = planKubeletUnit(n, res.Distro, ourFlags(config, binDir))
		}
		if err != nil {
			return nil, "", err
		}
	}
	changes = append(changes, w.Changes...)
	res.Notes = append(res.Notes, w.Notes...)

	var rules []string
	for _, r := range o.PullThroughCache {
		rules = append(rules, r.String())
	}
	p, err := planInstall(n, m, manifest{Version: manifestVersion, Distro: res.Distro, Service: w.Service, BinDir: binDir, Config: config, Mirrors: rules}, changes)
	if err != nil {
		return nil, "", err
	}
	res.Notes = append(res.Notes, p.notes...)
	if len(p.ops) == 0 {
		res.Unchanged = true
		return nil, "", nil
	}
	// The kubelet must be able to start with what the plan leaves, and
	// (but on EKS, whose AMI wires its own paths) find ours.
	// The operator's --kubelet-version (which per-pod roles need) stands
	// in for the node's own version when its files name none.
	var assumed []providerconfig.Version
	if o.Provider.PerPodRoles {
		v := o.Provider.KubeletVersion
		if v.Minor == 0 {
			v = providerconfig.NewestVersion
		}
		assumed = []providerconfig.Version{v}
	}
	before, _, err := bootProblemsFor(n, res.Distro, assumed)
	if err != nil {
		return nil, "", err
	}
	after, got, err := bootProblemsFor(newOverlay(n, p.ops), res.Distro, assumed)
	if err != nil {
		return nil, "", err
	}
	if bad := newProblems(before, after, nil); len(bad) > 0 {
		return nil, "", fmt.Errorf("refusing to install: the kubelet could not start afterwards:%s", problemList(bad))
	}
	if res.Distro != EKS && (got.Config.Value != config || got.BinDir.Value != binDir) {
		return nil, "", fmt.Errorf("refusing to install: the kubelet would still get --%s=%q (%s) and --%s=%q (%s), not ours", flagConfig, got.Config.Value, got.Config.From, flagBinDir, got.BinDir.Value, got.BinDir.From)
	}
	if res.Distro == EKS && !o.Force && len(p.nodeOps()) > 0 {
		res.NeedsForce = true
		res.Actions = p.actions()
		res.Diff = p.diff()
		res.Next = append(res.Next, "the EKS AMI owns that binary, so install changes it only when asked: run install again with --force to make the change above (the AMI's binary is backed up, and uninstall puts it back)")
		return nil, "", nil
	}
	return p, w.Service, nil
}

// recommended is the provider entry install writes for these options.
func (o Options) recommended() providerconfig.RecommendedOptions {
	ro := o.Provider
	ro.Public = o.Public
	return ro
}

// configFor is what the provider config at p should hold: ours as
// recommended when there is none, else the file with our entry set and
// everything else kept. A file install cannot read strictly is replaced
// only with --force (a backup is kept).
func configFor(n *nodeFS, m *manifest, p string, rec []byte, force bool) ([]byte, []string, error) {
	st, err := n.read(p)
	if err != nil || !st.Exists {
		return rec, nil, err
	}
	data, notes, err := mergeConfig(p, st.Data, rec)
	if err != nil {
		if force {
			return rec, []string{fmt.Sprintf("replaced %s, which install cannot read (%v)", p, err)}, nil
		}
		return nil, nil, fmt.Errorf("%s exists and is not a CredentialProviderConfig install can edit without losing something (%v); pass --config to write ours elsewhere, or --force to replace it (a backup is kept)", p, err)
	}
	return data, notes, nil
}

// Uninstall takes out what Install put in: from each file it edited, our
// flags, keys or provider entry (the whole original when the file is still
// exactly as install left it); the files and directories it created; then
// its own record. Whatever the kubelet's wiring still names stays, with a
// note, and the result says Incomplete.
func Uninstall(ctx context.Context, o Options) (*Result, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	res := &Result{DryRun: o.DryRun}
	if n, err := openNodeFS(o.Root); err == nil && !o.DryRun {
		there := n.exists(StateDir)
		n.Close()
		if !there {
			res.Unchanged = true
			res.Notes = append(res.Notes, "nothing to uninstall: there is no install record at "+stateFile)
			return res, nil
		}
	}
	s, err := openSession(o)
	if err != nil {
		return nil, err
	}
	defer s.abandonOnCrash()
	res.Notes = s.notes
	if s.m == nil {
		res.Unchanged = true
		res.Notes = append(res.Notes, "nothing to uninstall: there is no install record at "+stateFile)
		return res, s.close(nil)
	}
	res.Distro = s.m.Distro
	keep := map[string]string{}
	before, _, err := bootProblems(s.n, s.m.Distro)
	if err != nil {
		return nil, s.close(err)
	}
	var p *plan
	for {
		if p, err = planUninstall(s.n, s.m, o.Force, keep); err != nil {
			return nil, s.close(err)
		}
		after, got, err := bootProblems(newOverlay(s.n, p.ops), s.m.Distro)
		if err != nil {
			return nil, s.close(err)
		}
		touched := touchedBy(p.ops)
		bad := newProblems(before, after, func(p string) bool { return s.n.exists(p) && touched(p) })
		if len(bad) == 0 {
			break
		}
		// The wiring stays (someone edited it, or we cannot take our part
		// out): so do the files it names.
		grew := false
		for _, f := range s.m.Files {
			if _, ok := keep[f.Path]; ok || f.Role == roleWiring {
				continue
			}
			for _, v := range got.Paths() {
				if f.Path == v.Value || strings.HasPrefix(f.Path, v.Value+"/") {
					keep[f.Path] = fmt.Sprintf("kept %s: the kubelet's --%s still names %s (set in %s); take that out, then run uninstall again", f.Path, map[string]string{roleConfig: flagConfig, roleBinary: flagBinDir}[f.Role], v.Value, v.From)
					grew = true
				}
			}
		}
		if !grew {
			return nil, s.close(fmt.Errorf("refusing to uninstall: the kubelet could not start afterwards:%s", problemList(bad)))
		}
		res.Incomplete = true
	}
	res.Notes = append(res.Notes, p.notes...)
	res.Incomplete = p.left
	return s.finish(ctx, o, res, p, s.m.Service)
}

// orNil returns err, or the result when there is none.
func (r *Result) orNil(err error) *Result {
	if err != nil {
		return nil
	}
	return r
}

// session is one run's hold on a node: the open root, the lock, the
// journal and the install record as it was when the lock was taken.
type session struct {
	n     *nodeFS
	m     *manifest
	lock  *stateLock
	notes []string
}

// openSession opens the node and, unless it is a dry run, takes the lock
// and recovers from an interrupted run before reading the record.
func openSession(o Options) (*session, error) {
	n, err := openNodeFS(o.Root)
	if err != nil {
		if errors.Is(err, os.ErrPermission) && os.Geteuid() != 0 {
			return nil, errRunAsRoot
		}
		return nil, err
	}
	s := &session{n: n}
	if !o.DryRun {
		if s.lock, err = lockState(n); err != nil {
			n.Close()
			if errors.Is(err, os.ErrPermission) && os.Geteuid() != 0 {
				return nil, errRunAsRoot
			}
			return nil, err
		}
		if n.j, s.notes, err = openJournal(n); err != nil {
			return nil, s.close(err)
		}
	}
	if s.m, err = loadManifest(n); err != nil {
		return nil, s.close(err)
	}
	if !o.DryRun {
		if err := sweepBackups(n, s.m); err != nil {
			return nil, s.close(err)
		}
	}
	return s, nil
}

// close ends the session: the journal goes (the run finished or rolled
// back), then the lock, and with it the state directory when no record
// is left. err is passed through.
func (s *session) close(err error) error {
	if s.n.j != nil {
		if cerr := s.n.j.close(); cerr != nil && err == nil {
			err = cerr
		}
		s.n.j = nil
	}
	if s.lock != nil {
		if rerr := s.lock.release(s.n); rerr != nil && err == nil {
			err = rerr
		}
	}
	s.n.Close()
	return err
}

// abandonOnCrash lets a test's simulated kill -9 (a panic at a crash
// point) release what the kernel would release: the lock and open files.
// Nothing is cleaned up, as nothing would be.
func (s *session) abandonOnCrash() {
	r := recover()
	if r == nil {
		return
	}
	if _, ok := r.(errCrash); ok {
		if s.n.j != nil {
			s.n.j.f.Close()
		}
		if s.lock != nil {
			s.lock.f.Close()
		}
		s.n.root.Close()
	}
	panic(r)
}

var errRunAsRoot = errors.New("install and uninstall write to /etc and /var/lib: run as root (sudo), or use --dry-run to see what they would do")

// finish shows (dry run) or applies a plan, then restarts or says to.
func (s *session) finish(ctx context.Context, o Options, res *Result, p *plan, service string) (*Result, error) {
	res.Actions = p.actions()
	if s.lock != nil {
		// Directories made to hold the lock file stay with it, and are named.
		var made []Action
		for _, d := range s.lock.made {
			if d != StateDir {
				made = append(made, Action{Kind: "mkdir", Path: d, Detail: "mode 0755"})
			}
		}
		res.Actions = append(made, res.Actions...)
	}
	res.Changed = len(p.nodeOps()) > 0
	if o.DryRun {
		res.Diff = p.diff()
		return res, s.close(nil)
	}
	if os.Geteuid() != 0 {
		if err := p.checkWritable(s.n); err != nil {
			return nil, s.close(err)
		}
	}
	if err := p.apply(s.n); err != nil {
		return nil, s.close(err)
	}
	if err := s.close(nil); err != nil {
		return nil, err
	}
	if !res.Changed {
		return res, nil
	}
	restart := restartCommands(p.touchesUnits(), service)
	res.Restart = restart
	if !o.Restart {
		res.Next = append(res.Next, fmt.Sprintf("the kubelet reads its flags and provider config only when it starts: run %s", strings.Join(restart, " && ")))
		return res, nil
	}
	run := o.Systemctl
	if run == nil {
		run = execSystemctl
	}
	for _, c := range restart {
		if err := run(ctx, strings.Fields(c)[1:]...); err != nil {
			return res, fmt.Errorf("the files are in place, but %q failed: %w; run it yourself", c, err)
		}
		res.Ran = append(res.Ran, c)
	}
	return res, nil
}

// services are the only units install ever restarts; the install record
// is checked against them, so a tampered record cannot name another. A
// switch, not a map: a map literal would be built by the package's init in
// every plugin call.
func isService(name string) bool {
	switch name {
	case "kubelet", "k3s", "k3s-agent", "rke2-server", "rke2-agent":
		return true
	}
	return false
}

func restartCommands(units bool, service string) []string {
	var cmds []string
	if units {
		cmds = append(cmds, "systemctl daemon-reload")
	}
	return append(cmds, "systemctl restart "+service+".service")
}

// execSystemctl runs systemctl with a fixed argument list: no shell, and
// the arguments come from restartCommands, never from the user.
func execSystemctl(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "systemctl", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (o *Options) check() error {
	if err := unsupportedOS(); err != nil {
		return err
	}
	if o.Root == "" {
		o.Root = "/"
	}
	if o.Distro != "" {
		if _, err := ParseDistro(string(o.Distro)); err != nil {
			return err
		}
	}
	for _, f := range []struct{ name, val string }{{"--bin-dir", o.BinDir}, {"--config", o.Config}} {
		if f.val == "" {
			continue
		}
		if err := checkPathFlag(f.name, f.val); err != nil {
			return &UsageError{err.Error()}
		}
		if f.val == StateDir || strings.HasPrefix(f.val, StateDir+"/") {
			return usageErrorf("%s %s is inside %s, which install keeps for its own record", f.name, f.val, StateDir)
		}
	}
	if o.Config != "" && o.BinDir != "" && path.Dir(o.Config) == o.BinDir && path.Base(o.Config) == providerconfig.DefaultName {
		return usageErrorf("--config %s is where the binary goes", o.Config)
	}
	if o.Restart && o.Systemctl == nil && o.Root != "/" {
		return usageErrorf("--restart acts on this machine's systemd, so it cannot be combined with --root %s", o.Root)
	}
	if !o.DryRun && o.Root == "/" && os.Geteuid() != 0 {
		return errRunAsRoot
	}
	return nil
}

func defaultPaths(d Distro, binDir, config string) (string, string) {
	defBin, defCfg := DefaultBinDir, DefaultConfig
	if d == K3s || d == RKE2 {
		defBin, defCfg = kubeletwiring.RancherBinDir, kubeletwiring.RancherConfig
	}
	if binDir == "" {
		binDir = defBin
	}
	if config == "" {
		config = defCfg
	}
	return binDir, config
}

// readBinary reads the executable to install.
func readBinary(p string) ([]byte, error) {
	if p == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("cannot find this executable to install (%v); pass --binary", err)
		}
		p = exe
	}
	fi, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("binary to install: %w", err)
	}
	if !fi.Mode().IsRegular() || fi.Size() == 0 {
		return nil, fmt.Errorf("binary to install %s is not a non-empty regular file", p)
	}
	return os.ReadFile(p)
}
