package cli

import (
	"context"
	"fmt"

	"github.com/kubecred/ecr-credential-provider/internal/noderbac"
	"github.com/kubecred/ecr-credential-provider/internal/providerconfig"
)

func runRBAC(_ context.Context, env *Env, args []string) int {
	fs := newFlagSet(env, "rbac")
	audience := fs.String("audience", providerconfig.DefaultAudience, "the provider config's tokenAttributes.serviceAccountTokenAudience")
	if code, done := parseFlags(env, fs, args); done {
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
