package cli

import "context"

func runDoctor(_ context.Context, env *Env, _ []string) int {
	env.Stderr.Write([]byte("runDoctor: not built yet\n"))
	return 2
}
