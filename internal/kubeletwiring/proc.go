package kubeletwiring

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Process is a running kubelet, or a k3s or rke2 process that embeds one.
type Process struct {
	PID  int
	Kind Kind
	// Args are its arguments after the program (and subcommand) name.
	Args []string
	// Environ is its environment, which a provider plugin inherits; nil
	// when it cannot be read (not root).
	Environ []string
	// Cwd is its working directory, against which relative paths count.
	Cwd string
}

// FindProcess scans procRoot (/proc) for a kubelet, or a k3s or RKE2
// process that embeds one. A separate kubelet process wins: RKE2 runs one
// with all its flags on the command line.
func FindProcess(procRoot string) (Process, bool) {
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return Process{}, false
	}
	var best Process
	rank := map[Kind]int{Kubelet: 3, K3s: 2, RKE2: 1}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(procRoot, e.Name(), "cmdline"))
		if err != nil || len(raw) == 0 {
			continue
		}
		argv := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		kind, args := processKind(argv)
		if kind == "" || rank[kind] <= rank[best.Kind] {
			continue
		}
		p := Process{PID: pid, Kind: kind, Args: args}
		if env, err := os.ReadFile(filepath.Join(procRoot, e.Name(), "environ")); err == nil {
			p.Environ = splitNul(env)
		}
		p.Cwd, _ = os.Readlink(filepath.Join(procRoot, e.Name(), "cwd"))
		best = p
	}
	return best, best.Kind != ""
}

// FromProcess reads the wiring a running process has, its files read from
// fsys. Relative paths are made absolute against its working directory.
func FromProcess(fsys FS, p Process) (*Wiring, error) {
	from := "pid " + strconv.Itoa(p.PID)
	var w *Wiring
	if p.Kind == Kubelet {
		args := make([]ExpandedWord, len(p.Args))
		for i, a := range p.Args {
			args[i] = ExpandedWord{Word: a, From: from + " command line"}
		}
		w = FromKubeletArgs(fsys, args)
	} else {
		var err error
		if w, err = FromRancherArgs(fsys, p.Kind, p.Args, from+" command line"); err != nil {
			return nil, err
		}
	}
	for _, v := range []*Value{&w.Config, &w.BinDir, &w.RancherConfig, &w.RancherBinDir} {
		v.Value = absFrom(p.Cwd, v.Value)
	}
	return w, nil
}

// processKind says which kind of kubelet argv is, and returns the
// arguments after the program (and subcommand) name.
func processKind(argv []string) (Kind, []string) {
	// A process may rewrite its title into one NUL-free string.
	if len(argv) == 1 && strings.Contains(argv[0], " ") {
		argv = strings.Fields(argv[0])
	}
	base := filepath.Base(argv[0])
	switch {
	case base == "kubelet":
		return Kubelet, argv[1:]
	case base == "hyperkube" && len(argv) > 1 && argv[1] == "kubelet":
		return Kubelet, argv[2:]
	case (base == "k3s" || base == "rke2") && len(argv) > 1 && (argv[1] == "server" || argv[1] == "agent"):
		return Kind(base), argv[2:]
	}
	return "", nil
}

func splitNul(b []byte) []string {
	var out []string
	for _, kv := range bytes.Split(b, []byte{0}) {
		if len(kv) > 0 {
			out = append(out, string(kv))
		}
	}
	return out
}

func absFrom(cwd, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	if cwd == "" {
		cwd = "/"
	}
	return filepath.Join(cwd, p)
}

// DirFS reads a node's files below root by joining paths to it, for
// readers (doctor) that look at a node without changing it.
type DirFS string

func (d DirFS) host(p string) string { return filepath.Join(string(d), p) }

// ReadFile implements FS.
func (d DirFS) ReadFile(p string) ([]byte, bool, error) {
	fi, err := os.Stat(d.host(p))
	if os.IsNotExist(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if !fi.Mode().IsRegular() {
		return nil, false, &os.PathError{Op: "read", Path: p, Err: os.ErrInvalid}
	}
	b, err := os.ReadFile(d.host(p))
	return b, err == nil, err
}

// ReadDir implements FS.
func (d DirFS) ReadDir(p string) ([]string, error) {
	es, err := os.ReadDir(d.host(p))
	if os.IsNotExist(err) {
		return nil, nil
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out, err
}

// Exists implements FS.
func (d DirFS) Exists(p string) bool { _, err := os.Stat(d.host(p)); return err == nil }

// IsDir implements FS.
func (d DirFS) IsDir(p string) bool {
	fi, err := os.Stat(d.host(p))
	return err == nil && fi.IsDir()
}

// Readlink implements FS.
func (d DirFS) Readlink(p string) string { t, _ := os.Readlink(d.host(p)); return t }
