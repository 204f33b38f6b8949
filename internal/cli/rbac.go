package cli

import (
	"context"
	"flag"
	"fmt"

	"github.com/kubecred/ecr-credential-provider/internal/noderbac"
	"github.com/kubecred/ecr-credential-provider/internal/providerconfig"
)

func runRBAC(_ context.Context, env *Env, args []string) int {
	fs := flag.NewFlagSet("rbac", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	audience := fs.String("audience", providerconfig.DefaultAudience, "the provider config's tokenAttributes.serviceAccountTokenAudience")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: ecr-credential-provider rbac [--audience AUDIENCE]

Prints the ClusterRole and ClusterRoleBinding that let every node (group
system:nodes) request service account tokens for the audience of per-pod
roles ('install --per-pod-roles'). Without them the API server refuses the
kubelet's token request, the plugin is never called, and the pull gets 401.

Example:
  `+noderbac.Apply+`

Flags:
`)
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args); done {
		return code
	}
	out, err := noderbac.Manifest(*audience)
	if err != nil {
		fmt.Fprintf(env.Stderr, "rbac: %v\n", err)
		return 2
	}
	env.Stdout.Write(out)
	return 0
}
