package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
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
	fs.StringVar(&o.ServiceAccount, "service-account", "", "also check the per-pod role path for pods of this `NAMESPACE/NAME`: tokenAttributes, the node's audience RBAC, the role annotation, and AssumeRoleWithWebIdentity")
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "with --service-account: ask the API server with this `FILE` (default: the kubelet's own kubeconfig)")
	tokenFile := fs.String("service-account-token", "", "with --service-account: a token for it in `FILE` ('-' for stdin), from 'kubectl create token NAME -n NS --audience sts.amazonaws.com', when the node may not request one")
	trustFile := fs.String("trust-policy", "", "with --service-account: the role's trust policy `FILE` ('aws iam get-role --role-name R --query Role.AssumeRolePolicyDocument'), to name the condition that refuses the token")
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
	if o.ServiceAccount == "" && (*tokenFile != "" || *trustFile != "" || o.Kubeconfig != "") {
		return usageError(env, "doctor", "--kubeconfig, --service-account-token and --trust-policy go with --service-account NAMESPACE/NAME")
	}
	if *tokenFile == "-" && *trustFile == "-" {
		return usageError(env, "doctor", "only one of --service-account-token and --trust-policy can read stdin")
	}
	for _, f := range []struct {
		flag, path string
		dst        func([]byte)
	}{
		{"--service-account-token", *tokenFile, func(b []byte) { o.ServiceAccountToken = strings.TrimSpace(string(b)) }},
		{"--trust-policy", *trustFile, func(b []byte) { o.TrustPolicy = b }},
	} {
		if f.path == "" {
			continue
		}
		b, err := readFileOrStdin(env, f.path)
		if err != nil {
			fmt.Fprintf(env.Stderr, "doctor: %s: %v\n", f.flag, err)
			return 2
		}
		if len(strings.TrimSpace(string(b))) == 0 {
			fmt.Fprintf(env.Stderr, "doctor: %s: %s is empty\n", f.flag, f.path)
			return 2
		}
		f.dst(b)
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

// readFileOrStdin reads path, or stdin for "-", bounded: these are a token
// and a policy document, never large.
func readFileOrStdin(env *Env, path string) ([]byte, error) {
	var r io.Reader
	if path == "-" {
		r = env.Stdin
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	return io.ReadAll(io.LimitReader(r, 1<<20))
}
