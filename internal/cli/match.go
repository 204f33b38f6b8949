package cli

import "context"

func runMatch(_ context.Context, env *Env, _ []string) int {
	env.Stderr.Write([]byte("runMatch: not built yet\n"))
	return 2
}
