// Package nodesetup installs ecr-credential-provider on a Kubernetes node and
// wires the kubelet to it the way the node's distribution expects (k3s and
// rke2 defaults or config.yaml, kubeadm's KUBELET_EXTRA_ARGS, a
// kubelet.service drop-in, an EKS AMI's own provider directory), and undoes
// it. Every change is planned and checked before the first write, written
// atomically, recorded with a backup of each file it edits, and rolled back
// if a later write fails.
package nodesetup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"strings"

	"github.com/kubecred/ecr-credential-provider/internal/providerconfig"
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
	// Systemctl runs systemctl with args; nil execs systemctl itself (only
	// allowed with Root "/", as it acts on this machine).
	Systemctl func(ctx context.Context, args ...string) error
}

// UsageError is a bad option, as opposed to a node install cannot handle.
type UsageError struct{ msg string }

func (e *UsageError) Error() string { return e.msg }

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
	Actions    []Action
	// Notes are findings the operator should know about.
	Notes []string
	// Next are the steps left to the operator.
	Next []string
	// Diff is, on a dry run, a unified diff of every file that would change.
	Diff string
	// Ran lists the systemctl commands run (with Restart).
	Ran []string
}

// Install installs the provider binary and config and wires the kubelet.
func Install(ctx context.Context, o Options) (*Result, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	if o.Distro == EKS && (o.BinDir != "" || o.Config != "") {
		return nil, usageErrorf("--bin-dir and --config do not apply to EKS: the AMI's kubelet already names its own paths")
	}
	binary, err := readBinary(o.Binary)
	if err != nil {
		return nil, err
	}
	n, m, err := openNode(o.Root)
	if err != nil {
		return nil, err
	}
	defer n.Close()
	res := &Result{Distro: o.Distro, DryRun: o.DryRun}
	if res.Distro == "" {
		if res.Distro, res.Evidence, err = detect(n); err != nil {
			return nil, err
		}
		if res.Distro == EKS && (o.BinDir != "" || o.Config != "") {
			return nil, usageErrorf("this is an EKS node (%s); --bin-dir and --config do not apply there: the AMI's kubelet already names its own paths", strings.Join(res.Evidence, ", "))
		}
	}

	var w wiring
	var changes []change
	binDir, config := o.BinDir, o.Config
	if res.Distro == EKS {
		if o.Provider.PerPodRoles || len(o.Provider.Env) > 0 {
			return nil, usageErrorf("this is an EKS node: install keeps the AMI's own provider config there, so --per-pod-roles and --env do not apply; set them in the node's bootstrap")
		}
		if w, err = planEKS(n, binary, o.Public); err != nil {
			return nil, err
		}
		binDir = path.Dir(w.Changes[0].Path)
	} else {
		binDir, config = defaultPaths(res.Distro, binDir, config)
		ro := o.Provider
		ro.Public = o.Public
		cfg, err := providerconfig.Recommended(ro)
		if err != nil {
			return nil, err
		}
		changes = []change{
			{Path: path.Join(binDir, providerconfig.DefaultName), Data: binary, Mode: 0o755, Binary: true},
			{Path: config, Data: cfg, Mode: 0o644},
		}
		if err := checkConfigTarget(n, m, config, cfg, o.Force); err != nil {
			return nil, err
		}
		switch res.Distro {
		case K3s, RKE2:
			w, err = planRancher(n, res.Distro, binDir, config)
		default:
			w, err = planKubeletUnit(n, res.Distro, ourFlags(config, binDir))
		}
		if err != nil {
			return nil, err
		}
	}
	changes = append(changes, w.Changes...)
	res.Notes = append(res.Notes, w.Notes...)

	p, err := planInstall(n, m, manifest{Version: manifestVersion, Distro: res.Distro, Service: w.Service, BinDir: binDir, Config: config}, changes)
	if err != nil {
		return nil, err
	}
	res.Notes = append(res.Notes, p.notes...)
	if len(p.nodeOps()) == 0 {
		res.Unchanged = true
		return res, nil
	}
	if res.Distro == EKS && !o.Force {
		res.NeedsForce = true
		res.Actions = p.actions()
		res.Diff = p.diff()
		res.Next = append(res.Next, "nothing was changed: run install again with --force to replace the EKS AMI's binary (a backup is kept, and uninstall puts it back)")
		return res, nil
	}
	return finish(ctx, n, o, res, p, w.Service)
}

// Uninstall undoes what Install recorded: it restores each edited file from
// its backup, removes the files and directories it created, and then its
// own record. Files changed since install are left alone (with a note)
// unless Force.
func Uninstall(ctx context.Context, o Options) (*Result, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	n, m, err := openNode(o.Root)
	if err != nil {
		return nil, err
	}
	defer n.Close()
	res := &Result{DryRun: o.DryRun}
	if m == nil {
		res.Unchanged = true
		res.Notes = append(res.Notes, "nothing to uninstall: there is no install record at "+stateFile)
		return res, nil
	}
	res.Distro = m.Distro
	p, err := planUninstall(n, m, o.Force)
	if err != nil {
		return nil, err
	}
	res.Notes = append(res.Notes, p.notes...)
	return finish(ctx, n, o, res, p, m.Service)
}

// openNode opens the node's root and reads install's record, if any.
func openNode(root string) (*nodeFS, *manifest, error) {
	n, err := openNodeFS(root)
	if err != nil {
		return nil, nil, err
	}
	m, err := loadManifest(n)
	if err != nil {
		n.Close()
		return nil, nil, err
	}
	return n, m, nil
}

// finish shows (dry run) or applies a plan, then restarts or says to.
func finish(ctx context.Context, n *nodeFS, o Options, res *Result, p *plan, service string) (*Result, error) {
	res.Actions = p.actions()
	res.Changed = len(p.nodeOps()) > 0
	if o.DryRun {
		res.Diff = p.diff()
		return res, nil
	}
	if err := p.apply(n); err != nil {
		return nil, err
	}
	if !res.Changed {
		return res, nil
	}
	restart := restartCommands(p.touchesUnits(), service)
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
// is checked against them, so a tampered record cannot name another.
var services = map[string]bool{"kubelet": true, "k3s": true, "k3s-agent": true, "rke2-server": true, "rke2-agent": true}

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
		return errors.New("install and uninstall write to /etc and /var/lib: run as root (sudo), or use --dry-run to see what they would do")
	}
	return nil
}

func defaultPaths(d Distro, binDir, config string) (string, string) {
	defBin, defCfg := DefaultBinDir, DefaultConfig
	if d == K3s || d == RKE2 {
		defBin, defCfg = RancherBinDir, RancherConfig
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

// checkConfigTarget refuses to replace a CredentialProviderConfig that
// holds providers other than ours (the kubelet would lose them), unless
// forced. A file install wrote itself is always its own to replace.
func checkConfigTarget(n *nodeFS, m *manifest, p string, want []byte, force bool) error {
	if m.find(p) != nil {
		return nil
	}
	st, err := n.read(p)
	if err != nil || !st.Exists || sameContent(st, want) || force {
		return err
	}
	var others []string
	cfg, perr := parseProviderConfig(st.Data)
	for _, pr := range cfg.Providers {
		if pr.Name != providerconfig.DefaultName {
			others = append(others, pr.Name)
		}
	}
	switch {
	case perr != nil:
		return fmt.Errorf("%s exists and is not a CredentialProviderConfig install can read (%v); pass --config to write elsewhere, or --force to replace it (a backup is kept)", p, perr)
	case len(others) > 0:
		return fmt.Errorf("%s already configures other providers (%s), which replacing it would drop; pass --config to write ours elsewhere, or --force to replace it (a backup is kept)", p, strings.Join(others, ", "))
	}
	return nil
}
