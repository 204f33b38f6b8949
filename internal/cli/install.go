package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/kubecred/ecr-credential-provider/internal/nodesetup"
	"github.com/kubecred/ecr-credential-provider/internal/providerconfig"
	"github.com/kubecred/ecr-credential-provider/internal/registrymap"
)

func runInstall(ctx context.Context, env *Env, args []string) int {
	fs := newFlagSet(env, "install")
	var o nodesetup.Options
	distro := fs.String("distro", "", "how the kubelet runs: kubeadm, k3s, rke2, systemd or eks (default: detected)")
	fs.StringVar(&o.Root, "root", "/", "the node's filesystem root; every path is taken below it")
	fs.StringVar(&o.BinDir, "bin-dir", "", "the kubelet's --image-credential-provider-bin-dir (default: the distro's; "+nodesetup.DefaultBinDir+" for kubeadm and systemd)")
	fs.StringVar(&o.Config, "config", "", "the kubelet's --image-credential-provider-config (default: the distro's; "+nodesetup.DefaultConfig+" for kubeadm and systemd)")
	fs.BoolVar(&o.Public, "public", false, "also match ECR Public images (public.ecr.aws)")
	fs.StringVar(&o.Binary, "binary", "", "the binary to install (default: this executable)")
	var mirrors []string
	fs.Func("pull-through-cache", "SOURCE=ECRREGISTRY/PREFIX: pull SOURCE's images (docker.io, ghcr.io...) through an ECR pull-through cache: writes the runtime's mirror (containerd hosts.toml, or k3s/rke2 registries.yaml) with no fallback to SOURCE, and the map into the provider's args (repeatable)", func(v string) error {
		mirrors = append(mirrors, v)
		return nil
	})
	fs.BoolVar(&o.PullThroughCacheFallback, "pull-through-cache-fallback", false, "let the runtime fall back to the source registry when the cache cannot serve an image; the source registry is then sent the node's ECR token")
	var pf providerFlags
	pf.register(fs)
	commonFlags(fs, &o, "write", "replace what install otherwise refuses to: an EKS AMI's binary, a provider config it cannot edit safely")
	if code, done := parseFlags(env, fs, args); done {
		return code
	}
	if *distro != "" {
		d, err := nodesetup.ParseDistro(*distro)
		if err != nil {
			fmt.Fprintf(env.Stderr, "install: %v\n", err)
			return 2
		}
		o.Distro = d
	}
	rules, err := registrymap.Parse(mirrors)
	if err != nil {
		fmt.Fprintf(env.Stderr, "install: --pull-through-cache: %v\n", err)
		return 2
	}
	o.PullThroughCache = rules.Rules()
	if o.PullThroughCacheFallback && len(mirrors) == 0 {
		fmt.Fprintln(env.Stderr, "install: --pull-through-cache-fallback only applies with --pull-through-cache")
		return 2
	}
	if o.PullThroughCacheFallback {
		fmt.Fprintln(env.Stderr, "install: warning: --pull-through-cache-fallback: images the cache cannot serve are pulled from the source registry, which is then sent the node's ECR token")
	}
	if o.Provider, err = pf.options(); err == nil {
		// Refuse what the config cannot hold before looking at the node.
		_, err = providerconfig.Recommended(o.Provider)
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "install: %v\n", err)
		return 2
	}
	res, err := nodesetup.Install(ctx, o)
	return report(env, "install", res, err)
}

func runUninstall(ctx context.Context, env *Env, args []string) int {
	fs := newFlagSet(env, "uninstall")
	var o nodesetup.Options
	fs.StringVar(&o.Root, "root", "/", "the node's filesystem root; every path is taken below it")
	commonFlags(fs, &o, "restore or remove", "put back the whole original of files changed since install, dropping those changes")
	if code, done := parseFlags(env, fs, args); done {
		return code
	}
	res, err := nodesetup.Uninstall(ctx, o)
	return report(env, "uninstall", res, err)
}

func commonFlags(fs *flag.FlagSet, o *nodesetup.Options, verb, force string) {
	fs.BoolVar(&o.DryRun, "dry-run", false, "print a diff of every file "+fs.Name()+" would "+verb+", and change nothing")
	fs.BoolVar(&o.Force, "force", false, force)
	fs.BoolVar(&o.Restart, "restart", false, "restart the kubelet's systemd service (kubelet, k3s or rke2) after a change")
}

// parseFlags parses args, reporting whether the command is done (help or a
// usage error) and with which exit code.
func parseFlags(env *Env, fs *flag.FlagSet, args []string) (int, bool) {
	if err := fs.Parse(args); err != nil {
		return parseFailed(env, fs, err), true
	}
	if fs.NArg() > 0 {
		return usageError(env, fs.Name(), "unexpected argument %q", fs.Arg(0)), true
	}
	return 0, false
}

// report prints a Result (or the error) and returns the exit code.
func report(env *Env, cmd string, res *nodesetup.Result, err error) int {
	if err != nil {
		fmt.Fprintf(env.Stderr, "%s: %v\n", cmd, err)
		var ue *nodesetup.UsageError
		if errors.As(err, &ue) {
			return 2
		}
		if res != nil {
			writeResult(env.Stdout, cmd, res)
		}
		return 1
	}
	writeResult(env.Stdout, cmd, res)
	if res.Incomplete {
		fmt.Fprintf(env.Stderr, "%s: incomplete: some of what install added is still in place (see the notes above); the kubelet can still start\n", cmd)
		return 1
	}
	return 0
}

func writeResult(w io.Writer, cmd string, res *nodesetup.Result) {
	if len(res.Evidence) > 0 {
		fmt.Fprintf(w, "detected %s (found %s)\n", res.Distro, strings.Join(res.Evidence, ", "))
	}
	if res.Diff != "" {
		io.WriteString(w, res.Diff)
	}
	for _, a := range res.Actions {
		fmt.Fprintln(w, a.String(res.DryRun || res.NeedsForce))
	}
	for _, n := range res.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	switch {
	case res.Unchanged && cmd == "install":
		fmt.Fprintf(w, "ecr-credential-provider is already installed (%s); nothing changed\n", res.Distro)
	case res.Unchanged:
		fmt.Fprintln(w, "nothing changed")
	case res.DryRun:
		fmt.Fprintln(w, "dry run: nothing was changed")
	case res.Changed && cmd == "install":
		fmt.Fprintf(w, "installed for %s; the install record is in %s ('ecr-credential-provider uninstall' undoes it)\n", res.Distro, nodesetup.StateDir)
	case cmd == "uninstall" && res.Incomplete:
		fmt.Fprintln(w, "uninstalled in part: the files named in the notes are kept")
	case cmd == "uninstall":
		fmt.Fprintln(w, "uninstalled")
	}
	for _, r := range res.Ran {
		fmt.Fprintf(w, "ran: %s\n", r)
	}
	for _, n := range res.Next {
		fmt.Fprintf(w, "next: %s\n", n)
	}
}
