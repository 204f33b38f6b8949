package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/kubecred/ecr-credential-provider/internal/ecrhost"
	"github.com/kubecred/ecr-credential-provider/internal/providerconfig"
)

func runMatch(_ context.Context, env *Env, args []string) int {
	fs := newFlagSet(env, "match")
	config := fs.String("config", "", "the kubelet's --image-credential-provider-config (FILE or DIR)")
	all := fs.Bool("all", false, "also explain the non-matching patterns of providers that are called")
	var kf kubeletFlags
	kf.register(fs)
	images, err := parseInterspersed(fs, args)
	if err != nil {
		return parseFailed(env, fs, err)
	}
	if *config == "" || len(images) == 0 {
		return usageError(env, "match", "give --config FILE|DIR and at least one IMAGE")
	}
	opts, err := kf.options()
	if err != nil {
		fmt.Fprintf(env.Stderr, "match: %v\n", err)
		return 2
	}
	cfg, err := providerconfig.Load(*config)
	if err != nil {
		fmt.Fprintf(env.Stderr, "match: %v\n", err)
		return 1
	}
	var nerr int
	for _, f := range providerconfig.Validate(cfg, opts) {
		if f.Severity == providerconfig.Error {
			nerr++
		}
	}
	if nerr > 0 {
		fmt.Fprintf(env.Stderr, "match: warning: kubelet %s refuses this config (%s; run 'ecr-credential-provider config validate %s'); showing what it would match if it accepted it\n",
			opts.KubeletVersion, plural(nerr, "error"), *config)
	}
	providers := cfg.Providers()
	code := 0
	for i, image := range images {
		if i > 0 {
			fmt.Fprintln(env.Stdout)
		}
		fmt.Fprintln(env.Stdout, image)
		name, verdicts, err := providerconfig.MatchImage(providers, image, opts.KubeletVersion)
		if err != nil {
			fmt.Fprintf(env.Stdout, "  error: the kubelet cannot pull this image: %v\n", err)
			code = 1
			continue
		}
		if name != image {
			fmt.Fprintf(env.Stdout, "  the kubelet matches the name %s\n", name)
		}
		called := 0
		for _, v := range verdicts {
			if v.Called {
				called++
				fmt.Fprintf(env.Stdout, "  call %s (%s): %s matches\n", v.Provider.Name, where(v.Provider), quoteList(v.Matched))
				if target, ok, err := providerconfig.Mapping(v.Provider, name); err != nil {
					fmt.Fprintf(env.Stdout, "    the plugin refuses its registry map, so this pull fails: %v\n", err)
					code = 1
				} else if ok {
					reg, _, _ := strings.Cut(target, "/")
					fmt.Fprintf(env.Stdout, "    registry map: the plugin answers with the token of %s, where the runtime must pull it as %s\n", reg, target)
				}
				if *all {
					printMisses(env, v.Missed)
				}
			}
		}
		for _, v := range verdicts {
			if !v.Called {
				fmt.Fprintf(env.Stdout, "  skip %s (%s): no pattern matches\n", v.Provider.Name, where(v.Provider))
				printMisses(env, v.Missed)
			}
		}
		switch {
		case called == 0:
			fmt.Fprintln(env.Stdout, "  no provider matches: the kubelet pulls this image without plugin credentials")
			if host, _, _ := strings.Cut(name, "/"); slices.Contains(ecrhost.PublicHosts, host) {
				fmt.Fprintln(env.Stdout, "  hint: ECR Public needs its own patterns: 'ecr-credential-provider config print --public' (or 'install --public') adds them")
			}
			code = 1
		case called > 1:
			fmt.Fprintf(env.Stdout, "  the kubelet calls all %d, in this order, and tries their credentials in turn\n", called)
		}
	}
	return code
}

func where(p providerconfig.CredentialProvider) string {
	return fmt.Sprintf("%s providers[%d]", p.File, p.Index)
}

// printMisses prints why each pattern misses, folding the patterns that
// miss for the same reason (most often the label count: an image of
// another registry family) into one line when there are more than a few.
func printMisses(env *Env, misses []providerconfig.PatternMiss) {
	const fold = 3
	byCheck := map[string]int{}
	for _, m := range misses {
		byCheck[m.Check]++
	}
	folded := map[string]bool{}
	for _, m := range misses {
		n := byCheck[m.Check]
		switch {
		case n <= fold:
			fmt.Fprintf(env.Stdout, "      %q: %s\n", m.Pattern, m.Reason)
		case !folded[m.Check]:
			folded[m.Check] = true
			fmt.Fprintf(env.Stdout, "      %d patterns miss by %s, e.g. %q: %s\n", n, m.Check, m.Pattern, m.Reason)
		}
	}
}

func quoteList(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}
