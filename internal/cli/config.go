package cli

import "context"

func runConfig(_ context.Context, env *Env, _ []string) int {
	env.Stderr.Write([]byte("runConfig: not built yet\n"))
	return 2
}
