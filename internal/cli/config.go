package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strings"

	"github.com/kubecred/ecr-credential-provider/internal/protocol"
	"github.com/kubecred/ecr-credential-provider/internal/providerconfig"
)

func runConfig(ctx context.Context, env *Env, args []string) int {
	if len(args) > 0 {
		switch args[0] {
		case "validate":
			return runConfigValidate(ctx, env, args[1:])
		case "print":
			return runConfigPrint(ctx, env, args[1:])
		case "-h", "-help", "--help", "help":
			writeHelp(env.Stdout, newFlagSet(env, "config"))
			return 0
		}
		return usageError(env, "config", "unknown subcommand %q (validate or print)", args[0])
	}
	return usageError(env, "config", "give a subcommand: validate or print")
}

// kubeletVersionFlag adds --kubelet-version and --feature-gates, shared by
// 'config validate' and 'match'.
type kubeletFlags struct {
	version string
	gates   string
}

func (k *kubeletFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&k.version, "kubelet-version", providerconfig.NewestVersion.String(),
		fmt.Sprintf("apply the rules of this kubelet version (%s to %s)", providerconfig.OldestVersion, providerconfig.NewestVersion))
	fs.StringVar(&k.gates, "feature-gates", "", "the kubelet's --feature-gates, e.g. KubeletServiceAccountTokenForCredentialProviders=true, or KubeletCredentialProviders=true before v1.24")
}

const (
	tokenGate     = "KubeletServiceAccountTokenForCredentialProviders"
	providersGate = "KubeletCredentialProviders" // kubelets before v1.26
)

func (k *kubeletFlags) options() (providerconfig.Options, error) {
	var o providerconfig.Options
	v, err := providerconfig.ParseVersion(k.version)
	if err != nil {
		return o, err
	}
	o.KubeletVersion = v
	for _, g := range strings.Split(k.gates, ",") {
		if g = strings.TrimSpace(g); g == "" {
			continue
		}
		name, val, ok := strings.Cut(g, "=")
		if !ok || (val != "true" && val != "false") {
			return o, fmt.Errorf("--feature-gates: %q is not NAME=true or NAME=false", g)
		}
		on := val == "true"
		switch name {
		case tokenGate:
			o.ServiceAccountTokenGate = &on
		case providersGate:
			o.CredentialProvidersGate = &on
		}
	}
	return o, nil
}

// parseInterspersed parses flags that may come after the positional
// arguments too ("validate FILE --json"), as people type them.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func runConfigValidate(_ context.Context, env *Env, args []string) int {
	fs := newFlagSet(env, "config validate")
	var kf kubeletFlags
	kf.register(fs)
	binDir := fs.String("bin-dir", "", "the kubelet's --image-credential-provider-bin-dir: check each provider's executable there")
	asJSON := fs.Bool("json", false, "print the findings as JSON")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return parseFailed(env, fs, err)
	}
	if len(pos) != 1 {
		return usageError(env, "config validate", "give exactly one config FILE or DIR (the kubelet's --image-credential-provider-config)")
	}
	opts, err := kf.options()
	if err != nil {
		fmt.Fprintf(env.Stderr, "config validate: %v\n", err)
		return 2
	}
	opts.BinDir = *binDir
	cfg, err := providerconfig.Load(pos[0])
	if err != nil {
		fmt.Fprintf(env.Stderr, "config validate: %v\n", err)
		return 1
	}
	findings := providerconfig.Validate(cfg, opts)
	errs, warns := 0, 0
	for _, f := range findings {
		if f.Severity == providerconfig.Error {
			errs++
		} else {
			warns++
		}
	}
	if *asJSON {
		out := struct {
			Path           string                   `json:"path"`
			KubeletVersion string                   `json:"kubeletVersion"`
			Errors         int                      `json:"errors"`
			Warnings       int                      `json:"warnings"`
			Findings       []providerconfig.Finding `json:"findings"`
		}{pos[0], opts.KubeletVersion.String(), errs, warns, findings}
		if out.Findings == nil {
			out.Findings = []providerconfig.Finding{}
		}
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(out)
	} else {
		for _, f := range findings {
			where := f.File
			if f.Field != "" {
				where += ": " + f.Field
			}
			fmt.Fprintf(env.Stdout, "%s: %s: %s\n", f.Severity, where, f.Message)
			if f.Hint != "" {
				fmt.Fprintf(env.Stdout, "  hint: %s\n", f.Hint)
			}
		}
		verdict := "the kubelet accepts it"
		if errs > 0 {
			verdict = "the kubelet refuses it"
		}
		fmt.Fprintf(env.Stdout, "%s: %s, %s for kubelet %s: %s\n", pos[0], plural(errs, "error"), plural(warns, "warning"), opts.KubeletVersion, verdict)
	}
	if errs > 0 {
		return 1
	}
	return 0
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func runConfigPrint(_ context.Context, env *Env, args []string) int {
	fs := newFlagSet(env, "config print")
	public := fs.Bool("public", false, "also match ECR Public (public.ecr.aws, ecr-public.aws.com), for its higher pull rate limits")
	name := fs.String("name", providerconfig.DefaultName, "provider name: the executable's name in the kubelet's bin dir")
	apiVersion := fs.String("api-version", protocol.V1, "plugin protocol version, in full or short (v1, v1beta1, v1alpha1): "+strings.Join(protocol.Versions, ", "))
	var pf providerFlags
	pf.register(fs)
	if err := fs.Parse(args); err != nil {
		return parseFailed(env, fs, err)
	}
	if fs.NArg() > 0 {
		return usageError(env, "config print", "unexpected argument %q", fs.Arg(0))
	}
	if !strings.Contains(*apiVersion, "/") {
		*apiVersion = protocol.Group + "/" + *apiVersion
	}
	ro, err := pf.options()
	if err != nil {
		fmt.Fprintf(env.Stderr, "config print: %v\n", err)
		return 2
	}
	ro.Public, ro.Name, ro.APIVersion = *public, *name, *apiVersion
	out, err := providerconfig.Recommended(ro)
	if err != nil {
		fmt.Fprintf(env.Stderr, "config print: %v\n", err)
		return 2
	}
	env.Stdout.Write(out)
	return 0
}
