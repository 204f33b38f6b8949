package doctor

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/kubecred/ecr-credential-provider/internal/ecrhost"
	"github.com/kubecred/ecr-credential-provider/internal/kubeletwiring"
	"github.com/kubecred/ecr-credential-provider/internal/providerconfig"
)

// The kubelet's flags for credential providers.
const (
	flagConfig = kubeletwiring.FlagConfig
	flagBinDir = kubeletwiring.FlagBinDir
)

// wiring is how the node's kubelet is set up to call credential providers.
type wiring struct {
	found bool
	pid   int
	// proc is "kubelet", "k3s" or "rke2".
	proc string
	// configPath and binDir are as the kubelet sees them; configFrom and
	// binFrom say where the value came from.
	configPath, configFrom string
	binDir, binFrom        string
	// kubeconfig is the kubelet's own kubeconfig, as the kubelet sees it.
	kubeconfig string
	// environ is the kubelet's environment, which the plugin inherits; nil
	// when it cannot be read.
	environ []string
	// readErr is why its wiring could not be read (a k3s config.yaml that
	// is not YAML, say).
	readErr error

	// Filled by the checks.
	cfg      *providerconfig.Config
	matching []providerconfig.CredentialProvider
	binPath  string // host path of the first matching provider's binary, when usable
}

// hostPath maps a path as the node sees it into the doctor's filesystem
// root (a test's fake root).
func (r *run) hostPath(p string) string {
	if r.o.Root == "/" || r.o.Root == "" {
		return p
	}
	return filepath.Join(r.o.Root, p)
}

// findKubelet finds the running kubelet (or the k3s or RKE2 process that
// embeds one) and reads its wiring with the model install uses too, so
// both agree on which config and bin dir count: flags, k3s/rke2
// config.yaml and its config.yaml.d drop-ins, kubelet-arg, last flag wins.
func (r *run) findKubelet() wiring {
	p, ok := kubeletwiring.FindProcess(r.o.ProcRoot)
	if !ok {
		return wiring{}
	}
	w := wiring{found: true, pid: p.PID, proc: string(p.Kind), environ: p.Environ}
	kw, err := kubeletwiring.FromProcess(kubeletwiring.DirFS(r.o.Root), p)
	if err != nil {
		w.readErr = err
		return w
	}
	cfg, bin := kw.Config, kw.BinDir
	if p.Kind != kubeletwiring.Kubelet {
		// k3s passes its paths only once both exist; name them anyway, so
		// the checks below can say which one is missing.
		if cfg.Value == "" {
			cfg = kw.RancherConfig
		}
		if bin.Value == "" {
			bin = kw.RancherBinDir
		}
	}
	w.configPath, w.configFrom = cfg.Value, cfg.From
	w.binDir, w.binFrom = bin.Value, bin.From
	// The kubelet's own credentials, for the per-pod checks that ask the
	// API server as the node.
	if p.Kind == kubeletwiring.Kubelet {
		if f, ok := kubeletwiring.LastFlag(p.Args, "kubeconfig"); ok {
			w.kubeconfig = f.Value
		}
	} else {
		w.kubeconfig = "/var/lib/rancher/" + string(p.Kind) + "/agent/kubelet.kubeconfig"
	}
	if w.kubeconfig != "" && !filepath.IsAbs(w.kubeconfig) {
		w.kubeconfig = filepath.Join(p.Cwd, w.kubeconfig)
	}
	return w
}

// checkWiring checks the kubelet side: the process and its flags, the
// config file, that a provider matches the image, and its binary.
func (r *run) checkWiring() []Check {
	w := r.findKubelet()
	r.wiring = w
	out := []Check{r.checkKubelet()}
	cfgCheck := r.checkProviderConfig()
	out = append(out, cfgCheck, r.checkProviderMatch(), r.checkProviderBinary())
	return out
}

func (r *run) checkKubelet() Check {
	w := r.wiring
	if !w.found {
		return skipped(CheckKubelet, "no kubelet, k3s or rke2 process under "+r.o.ProcRoot+" (not a node, or the kubelet is not running)")
	}
	who := fmt.Sprintf("%s (pid %d)", w.proc, w.pid)
	var c Check
	switch {
	case w.readErr != nil:
		c = failed(CheckKubelet, who+": cannot read its wiring: "+w.readErr.Error(), "fix the file named, which "+w.proc+" cannot read either")
	case w.configPath == "":
		c = failed(CheckKubelet, who+" runs without --"+flagConfig+": it calls no credential provider",
			"run 'ecr-credential-provider install', or add --"+flagConfig+" and --"+flagBinDir+" to the kubelet's flags and restart it")
	case w.binDir == "":
		c = failed(CheckKubelet, who+" has --"+flagConfig+" but no --"+flagBinDir+": it cannot find any provider binary",
			"add --"+flagBinDir+" (the directory holding ecr-credential-provider) to the kubelet's flags and restart it")
	default:
		c = passed(CheckKubelet, fmt.Sprintf("%s: config %s (from %s), bin dir %s (from %s)", who, w.configPath, w.configFrom, w.binDir, w.binFrom))
	}
	c.fact("pid", strconv.Itoa(w.pid))
	c.fact("process", w.proc)
	c.fact("config", w.configPath)
	c.fact("binDir", w.binDir)
	if w.environ == nil {
		c.Notes = append(c.Notes, "the kubelet's environment could not be read (run as root to compare it with this shell's)")
	}
	return c
}

// configPath is the config to check and how it maps into the doctor's
// filesystem: an explicit --config is taken as given.
func (r *run) configPath() (shown, host string) {
	if r.o.ConfigPath != "" {
		return r.o.ConfigPath, r.o.ConfigPath
	}
	if r.wiring.configPath != "" {
		return r.wiring.configPath, r.hostPath(r.wiring.configPath)
	}
	return "", ""
}

func (r *run) binDir() (shown, host string) {
	if r.o.BinDir != "" {
		return r.o.BinDir, r.o.BinDir
	}
	if r.wiring.binDir != "" {
		return r.wiring.binDir, r.hostPath(r.wiring.binDir)
	}
	return "", ""
}

func (r *run) checkProviderConfig() Check {
	shown, host := r.configPath()
	if shown == "" {
		return skipped(CheckProviderConfig, "no config to check (no wired kubelet found; pass --config FILE)")
	}
	cfg, err := providerconfig.Load(host)
	if err != nil {
		rem := "write one: ecr-credential-provider config print > " + shown + " (or run 'ecr-credential-provider install')"
		if r.wiring.proc == "k3s" || r.wiring.proc == "rke2" {
			rem += "; " + r.wiring.proc + " passes the provider flags to its kubelet only when this file exists, so restart it afterwards"
		}
		return failed(CheckProviderConfig, shown+": "+err.Error(), rem)
	}
	r.wiring.cfg = cfg
	// Provider env values may be credentials: never let them be printed.
	for _, p := range cfg.Providers() {
		for _, e := range p.Env {
			r.secrets.add(e.Value)
		}
	}
	var errs, warns []string
	for _, f := range providerconfig.Validate(cfg, providerconfig.Options{}) {
		msg := r.shownPath(f.File, host, shown)
		if f.Field != "" {
			msg += " " + f.Field
		}
		msg += ": " + f.Message
		if f.Severity == providerconfig.Error {
			errs = append(errs, msg)
		} else {
			warns = append(warns, msg)
		}
	}
	if len(errs) > 0 {
		c := failed(CheckProviderConfig, fmt.Sprintf("%s: %d error(s), the kubelet would refuse it: %s", shown, len(errs), strings.Join(firstN(errs, 3), "; ")),
			"run 'ecr-credential-provider config validate "+shown+"' for every finding and its fix, or replace the file with 'ecr-credential-provider config print'")
		c.fact("path", shown)
		return c
	}
	var names []string
	for _, p := range cfg.Providers() {
		names = append(names, p.Name)
	}
	c := passed(CheckProviderConfig, fmt.Sprintf("%s: %d provider(s): %s", shown, len(names), strings.Join(names, ", ")))
	c.fact("path", shown)
	if len(warns) > 0 {
		c.Notes = append(c.Notes, fmt.Sprintf("%d warning(s), see 'ecr-credential-provider config validate %s'; first: %s", len(warns), shown, oneLine(warns[0])))
	}
	return c
}

// shownPath turns a file path under the doctor's view of the config (host)
// back into the node's view (shown).
func (r *run) shownPath(file, host, shown string) string {
	if rest, ok := strings.CutPrefix(file, host); ok {
		return shown + rest
	}
	return file
}

func firstN(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], fmt.Sprintf("and %d more", len(s)-n))
	}
	return s
}

func (r *run) checkProviderMatch() Check {
	cfg := r.wiring.cfg
	if cfg == nil {
		return skipped(CheckProviderMatch, "no readable provider config")
	}
	name, err := providerconfig.ImageName(r.o.Image)
	if err != nil {
		return failed(CheckProviderMatch, "the kubelet cannot parse the image: "+err.Error(), "fix the image reference in the pod spec")
	}
	var why []string
	for _, p := range cfg.Providers() {
		for _, g := range p.MatchImages {
			ok, reason := providerconfig.Explain(g, name)
			if ok {
				r.wiring.matching = append(r.wiring.matching, p)
				break
			}
			why = append(why, fmt.Sprintf("%s %q: %s", p.Name, g, reason))
		}
	}
	if len(r.wiring.matching) == 0 {
		rem := "add a matchImages pattern for this host to the provider"
		if pat := patternFor(r.reg); pat != "" {
			rem += fmt.Sprintf(" (%q covers it; 'ecr-credential-provider config print' has the patterns for every ECR host form)", pat)
		}
		c := failed(CheckProviderMatch, "no provider's matchImages matches "+name+": "+strings.Join(firstN(why, 3), "; "), rem)
		c.fact("image", name)
		return c
	}
	p := r.wiring.matching[0]
	c := passed(CheckProviderMatch, fmt.Sprintf("provider %s (apiVersion %s) matches %s", p.Name, p.APIVersion, name))
	c.fact("provider", p.Name)
	c.fact("image", name)
	if len(r.wiring.matching) > 1 {
		var more []string
		for _, m := range r.wiring.matching[1:] {
			more = append(more, m.Name)
		}
		c.Notes = append(c.Notes, "the kubelet also calls "+strings.Join(more, ", ")+" for this image and merges the answers")
	}
	return c
}

// patternFor is the recommended matchImages pattern that covers reg.
func patternFor(reg ecrhost.Registry) string {
	if !reg.ECR {
		return ""
	}
	for _, p := range ecrhost.MatchImages(reg.Public) {
		if ok, _ := providerconfig.URLsMatchStr(p, reg.Host+"/x"); ok {
			return p
		}
	}
	return ""
}

func (r *run) checkProviderBinary() Check {
	if len(r.wiring.matching) == 0 {
		return skipped(CheckProviderBinary, "no provider matches the image")
	}
	shown, host := r.binDir()
	if shown == "" {
		return skipped(CheckProviderBinary, "no bin dir known (pass --bin-dir DIR)")
	}
	p := r.wiring.matching[0]
	path := filepath.Join(host, p.Name)
	shownPath := filepath.Join(shown, p.Name)
	fi, err := os.Stat(path)
	if err != nil {
		c := failed(CheckProviderBinary, fmt.Sprintf("%s: no such file: the kubelet runs <bin dir>/<provider name>", shownPath),
			"install the binary under exactly that name: ecr-credential-provider install (or cp ecr-credential-provider "+shownPath+")")
		if similar := similarFiles(host, p.Name); len(similar) > 0 {
			c.Remedy = fmt.Sprintf("the bin dir has %s: rename it to %s (the file name must equal the provider name)", strings.Join(similar, ", "), p.Name)
		}
		return c
	}
	switch {
	case !fi.Mode().IsRegular():
		return failed(CheckProviderBinary, shownPath+" is not a regular file", "replace it with the ecr-credential-provider binary")
	case fi.Mode().Perm()&0o111 == 0:
		return failed(CheckProviderBinary, fmt.Sprintf("%s is not executable (mode %04o)", shownPath, fi.Mode().Perm()), "chmod 0755 "+shownPath)
	}
	r.wiring.binPath = path
	c := passed(CheckProviderBinary, fmt.Sprintf("%s is an executable file (mode %04o, %d bytes)", shownPath, fi.Mode().Perm(), fi.Size()))
	c.fact("path", shownPath)
	return c
}

// similarFiles lists bin dir entries that look like a misnamed provider
// (a release asset name such as ecr-credential-provider-linux-amd64).
func similarFiles(dir, name string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		n := e.Name()
		if n != name && (strings.HasPrefix(n, name) || strings.HasPrefix(name, n) || strings.Contains(n, "ecr-credential-provider")) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}
