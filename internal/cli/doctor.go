package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/kubecred/ecr-credential-provider/internal/doctor"
)

func runDoctor(ctx context.Context, env *Env, args []string) int {
	fs := newFlagSet(env, "doctor")
	var o doctor.Options
	var asJSON bool
	var timeout time.Duration
	fs.StringVar(&o.ConfigPath, "config", "", "check this CredentialProviderConfig `FILE` (or directory) instead of the running kubelet's")
	fs.StringVar(&o.BinDir, "bin-dir", "", "check this provider bin `DIR` instead of the running kubelet's")
	fs.StringVar(&o.RegistryEndpoint, "registry-endpoint", "", "talk to the registry at this `URL` (a private mirror) instead of https://<image host>")
	fs.BoolVar(&o.RunPlugin, "run-plugin", false, "run the installed plugin even when no kubelet runs here (with --config and --bin-dir)")
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	fs.DurationVar(&timeout, "timeout", 30*time.Second, "bound on the whole run")
	fs.DurationVar(&o.CheckTimeout, "check-timeout", 5*time.Second, "bound on each network step and AWS call")
	fs.StringVar(&o.ProcRoot, "proc", "/proc", "process table to look for the kubelet in")
	fs.StringVar(&o.Root, "root", "/", "filesystem root the kubelet's paths are relative to (the host's, from inside a container)")
	if err := fs.Parse(args); err != nil {
		return parseFailed(env, fs, err)
	}
	// Flags may come after the image too: parse what follows it.
	rest := fs.Args()
	if len(rest) > 0 {
		o.Image = rest[0]
		if err := fs.Parse(rest[1:]); err != nil {
			return parseFailed(env, fs, err)
		}
		if fs.NArg() > 0 {
			return usageError(env, "doctor", "one image at a time; unexpected %q", fs.Arg(0))
		}
	}
	if o.Image == "" {
		return usageError(env, "doctor", "%v", doctor.ErrNoImage)
	}
	if timeout <= 0 {
		return usageError(env, "doctor", "--timeout must be positive, e.g. 30s")
	}
	o.Getenv = env.getenv
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rep, err := doctor.Run(ctx, o)
	if err != nil {
		fmt.Fprintln(env.Stderr, "doctor:", err)
		return 2
	}
	if asJSON {
		err = rep.WriteJSON(env.Stdout)
	} else {
		err = rep.WriteText(env.Stdout)
	}
	if err != nil {
		fmt.Fprintln(env.Stderr, "doctor: writing the report:", err)
		return 1
	}
	if !rep.OK {
		return 1
	}
	return 0
}
