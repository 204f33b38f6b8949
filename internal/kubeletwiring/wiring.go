// Package kubeletwiring reads how a node's kubelet is wired to image
// credential providers (the effective --image-credential-provider-config
// and -bin-dir, the feature gates, hints of the kubelet's version) from a
// filesystem root, or from a running process, and says where each value
// came from. It is the one model of that wiring: install plans its edits
// and checks the node still boots with it, and doctor reports from it.
package kubeletwiring

import (
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/kubecred/ecr-credential-provider/internal/lazyregexp"
)

// FS reads a node's files by the paths the node sees.
type FS interface {
	// ReadFile returns a regular file's content; ok is false (and err nil)
	// when it does not exist.
	ReadFile(p string) (data []byte, ok bool, err error)
	// ReadDir lists a directory's entry names; a missing one is empty.
	ReadDir(p string) ([]string, error)
	// Exists reports whether p exists, symlinks followed.
	Exists(p string) bool
	// IsDir reports whether p is a directory, symlinks followed.
	IsDir(p string) bool
	// Readlink returns p's target if p itself is a symlink, else "".
	Readlink(p string) string
}

// Kind is what runs the kubelet.
type Kind string

// The kinds of kubelet this package reads.
const (
	// Kubelet is a kubelet of its own, run by kubelet.service (kubeadm,
	// EKS, a hand-written unit).
	Kubelet Kind = "kubelet"
	// K3s and RKE2 run the kubelet inside their own process (or, RKE2, as a
	// child), passing it flags from their own command line and config.
	K3s  Kind = "k3s"
	RKE2 Kind = "rke2"
)

// Value is one setting and where it came from ("file:line", "k3s
// default", "pid 42").
type Value struct {
	Value string
	From  string
}

// Gate is one feature gate setting.
type Gate struct {
	On   bool
	From string
}

// Wiring is what the kubelet is (or would be, at its next start) started
// with, as far as credential providers go.
type Wiring struct {
	Kind Kind
	// Service is the systemd unit that runs it, without ".service"; empty
	// when no unit was found (read from a process).
	Service string
	// Config and BinDir are the two flags as the kubelet gets them; a
	// zero Value when it does not get the flag.
	Config, BinDir Value
	// RancherConfig and RancherBinDir (k3s, rke2) are the paths k3s would
	// pass if both existed; it passes neither otherwise.
	RancherConfig, RancherBinDir Value
	// FeatureGates are the kubelet's --feature-gates (and its config file's
	// featureGates, which the flag overrides).
	FeatureGates map[string]Gate
	// VersionHints are kubelet (or cluster) versions the node's files name.
	VersionHints []Value
	// Args is the kubelet's command line, each word with its origin
	// (kubelet.service only).
	Args []ExpandedWord
	// Files are the files the wiring was read from.
	Files []string
}

// Paths lists the paths the kubelet's provider flags name: what must exist
// for it to start.
func (w *Wiring) Paths() []Value {
	var out []Value
	for _, v := range []Value{w.Config, w.BinDir} {
		if v.Value != "" {
			out = append(out, v)
		}
	}
	return out
}

// Units lists the systemd units that can run each kind, the one to prefer
// first.
func Units(k Kind) []string {
	switch k {
	case K3s:
		return []string{"k3s.service", "k3s-agent.service"}
	case RKE2:
		return []string{"rke2-server.service", "rke2-agent.service"}
	}
	return []string{"kubelet.service"}
}

// RancherConfigFile is the config file k3s or rke2 reads by default.
func RancherConfigFile(k Kind) string { return "/etc/rancher/" + string(k) + "/config.yaml" }

// Read reads the wiring of the kubelet of kind below fsys, from its
// systemd unit and the files the unit and the kubelet read.
func Read(fsys FS, k Kind) (*Wiring, error) {
	switch k {
	case K3s, RKE2:
		for _, name := range Units(k) {
			u, err := LoadUnit(fsys, name, "")
			if err != nil {
				return nil, err
			}
			if len(u.Files) == 0 {
				continue
			}
			s, words, err := u.ExecStart()
			if err != nil {
				return nil, err
			}
			w, err := FromRancherArgs(fsys, k, subcommandArgs(words), s.Where())
			if err != nil {
				return nil, err
			}
			w.Service = strings.TrimSuffix(name, ".service")
			w.Files = append(append([]string{}, u.Files...), w.Files...)
			return w, nil
		}
		w, err := FromRancherArgs(fsys, k, nil, "")
		if err != nil {
			return nil, err
		}
		w.Service = strings.TrimSuffix(Units(k)[0], ".service")
		return w, nil
	case Kubelet:
		u, err := LoadUnit(fsys, "kubelet.service", "")
		if err != nil {
			return nil, err
		}
		if len(u.Files) == 0 {
			return nil, fmt.Errorf("found no kubelet.service (looked in %s)", strings.Join(UnitDirs, ", "))
		}
		s, words, err := u.ExecStart()
		if err != nil {
			return nil, err
		}
		env, _, err := u.Environment(fsys)
		if err != nil {
			return nil, err
		}
		args := Expand(words, env, s.Where())
		if len(args) > 0 {
			args = args[1:] // the program
		}
		w := FromKubeletArgs(fsys, args)
		w.Service, w.Files = "kubelet", append(u.Files, w.Files...)
		return w, nil
	}
	return nil, fmt.Errorf("unknown kubelet kind %q", k)
}

// subcommandArgs drops the program and its "server"/"agent" subcommand.
func subcommandArgs(words []string) []string {
	for i, w := range words {
		if w == "server" || w == "agent" {
			return words[i+1:]
		}
	}
	return nil
}

// FromKubeletArgs reads the wiring of a kubelet started with args (the
// program name left out), reading its --config file from fsys.
func FromKubeletArgs(fsys FS, args []ExpandedWord) *Wiring {
	w := &Wiring{Kind: Kubelet, Args: args, FeatureGates: map[string]Gate{}}
	words := make([]string, len(args))
	for i, a := range args {
		words[i] = a.Word
	}
	if o, ok := LastFlag(words, FlagConfig); ok {
		w.Config = Value{o.Value, args[o.Index].From}
	}
	if o, ok := LastFlag(words, FlagBinDir); ok {
		w.BinDir = Value{o.Value, args[o.Index].From}
	}
	if o, ok := LastFlag(words, "config"); ok && path.IsAbs(o.Value) {
		if data, ok, err := fsys.ReadFile(o.Value); err == nil && ok {
			w.Files = append(w.Files, o.Value)
			var kc struct {
				FeatureGates map[string]bool `json:"featureGates"`
			}
			if yaml.Unmarshal(data, &kc) == nil {
				for g, on := range kc.FeatureGates {
					w.FeatureGates[g] = Gate{on, o.Value}
				}
			}
		}
	}
	for _, o := range FindFlags(words, "feature-gates") {
		for g, on := range ParseFeatureGates(o.Value) {
			w.FeatureGates[g] = Gate{on, args[o.Index].From}
		}
	}
	w.VersionHints = versionHints(fsys, "/etc/kubernetes/manifests")
	return w
}

// FromRancherArgs reads the wiring k3s or rke2 gives its kubelet when run
// with args (its own flags, after "server" or "agent"), reading its config
// file and config.yaml.d drop-ins from fsys. from says where args came from.
//
// k3s turns its config files into flags placed before the command line's
// (pkg/configfilearg), so a command-line flag wins over a key; drop-ins in
// config.yaml.d apply after config.yaml in name order, a key replacing the
// one before and "key+" appending to a list. It passes the two provider
// flags to the kubelet only when both paths exist (ImageCredProvAvailable),
// then every kubelet-arg after its own flags, where pflag's last-wins rule
// lets them override.
func FromRancherArgs(fsys FS, k Kind, args []string, from string) (*Wiring, error) {
	w := &Wiring{Kind: k, FeatureGates: map[string]Gate{}}
	cfgFile := RancherConfigFile(k)
	for _, name := range []string{"config", "c"} {
		if o, ok := LastFlag(singleDash(args), name); ok {
			cfgFile = o.Value
		}
	}
	type setting struct {
		value any
		from  string
	}
	merged := map[string]setting{}
	var kubeletArgs []Value
	apply := func(p string, m map[string]any) {
		keys := make([]string, 0, len(m))
		for key := range m {
			keys = append(keys, key)
		}
		sort.Strings(keys)
		for _, key := range keys {
			v := m[key]
			if key == "kubelet-arg" || key == "kubelet-arg+" {
				if key == "kubelet-arg" {
					kubeletArgs = nil
				}
				for _, word := range KubeletArgWords(v) {
					kubeletArgs = append(kubeletArgs, Value{word, p + " " + key})
				}
				continue
			}
			merged[key] = setting{v, p}
		}
	}
	files := []string{cfgFile}
	dropDir := cfgFile + ".d"
	names, err := fsys.ReadDir(dropDir)
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	for _, n := range names {
		if strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml") {
			files = append(files, path.Join(dropDir, n))
		}
	}
	for _, p := range files {
		data, ok, err := fsys.ReadFile(p)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		m, err := ParseRancherConfig(p, data)
		if err != nil {
			return nil, err
		}
		w.Files = append(w.Files, p)
		apply(p, m)
	}

	w.RancherConfig = Value{RancherConfig, string(k) + " default"}
	w.RancherBinDir = Value{RancherBinDir, string(k) + " default"}
	for key, dst := range map[string]*Value{FlagConfig: &w.RancherConfig, FlagBinDir: &w.RancherBinDir} {
		if s, ok := merged[key]; ok && s.value != nil {
			*dst = Value{fmt.Sprint(s.value), s.from}
		}
		if o, ok := LastFlag(args, key); ok {
			*dst = Value{o.Value, from}
		}
	}
	for _, o := range FindFlags(args, "kubelet-arg") {
		kubeletArgs = append(kubeletArgs, Value{"--" + strings.TrimLeft(o.Value, "-"), from + " --kubelet-arg"})
	}
	if fsys.IsDir(w.RancherBinDir.Value) && fsys.Exists(w.RancherConfig.Value) && !fsys.IsDir(w.RancherConfig.Value) {
		w.Config, w.BinDir = w.RancherConfig, w.RancherBinDir
	}
	words := make([]string, len(kubeletArgs))
	for i, a := range kubeletArgs {
		words[i] = a.Value
	}
	for _, o := range FindFlags(words, FlagConfig, FlagBinDir, "feature-gates") {
		v := Value{o.Value, kubeletArgs[o.Index].From}
		switch o.Name {
		case FlagConfig:
			w.Config = v
		case FlagBinDir:
			w.BinDir = v
		default:
			for g, on := range ParseFeatureGates(o.Value) {
				w.FeatureGates[g] = Gate{on, v.From}
			}
		}
	}
	w.VersionHints = versionHints(fsys, "/var/lib/rancher/"+string(k)+"/agent/pod-manifests")
	return w, nil
}

// singleDash lets "-c file" be found as a flag like "--c file".
func singleDash(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "--") {
			a = "-" + a
		}
		out[i] = a
	}
	return out
}

// ParseFeatureGates reads a --feature-gates value: "A=true,B=false".
// Malformed entries are skipped; the kubelet would refuse them anyway.
func ParseFeatureGates(s string) map[string]bool {
	out := map[string]bool{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			continue
		}
		on, err := strconv.ParseBool(strings.TrimSpace(v))
		if err == nil && k != "" {
			out[strings.TrimSpace(k)] = on
		}
	}
	return out
}

var versionImageRe = lazyregexp.New(`(?m)^\s*-?\s*image:\s*["']?\S*/(?:kube-apiserver|kube-controller-manager|kube-scheduler|kube-proxy):(v1\.\d+\.\d+)`)

// versionHints reads the Kubernetes versions the static pods in dir run
// (a control-plane node's kubelet is of the same minor, give or take one).
func versionHints(fsys FS, dir string) []Value {
	names, err := fsys.ReadDir(dir)
	if err != nil {
		return nil
	}
	sort.Strings(names)
	var out []Value
	for _, n := range names {
		p := path.Join(dir, n)
		data, ok, err := fsys.ReadFile(p)
		if err != nil || !ok {
			continue
		}
		if m := versionImageRe.FindSubmatch(data); m != nil {
			out = append(out, Value{string(m[1]), p})
		}
	}
	return out
}

// ErrNoProcess is returned by FromProc when no kubelet runs.
var ErrNoProcess = errors.New("no kubelet, k3s or rke2 process")
