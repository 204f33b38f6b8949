package cli

import "context"

func runPlugin(_ context.Context, env *Env, _ []string) int {
	env.Stderr.Write([]byte("runPlugin: not built yet\n"))
	return 2
}
