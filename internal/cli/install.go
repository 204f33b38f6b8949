package cli

import "context"

func runInstall(_ context.Context, env *Env, _ []string) int {
	env.Stderr.Write([]byte("runInstall: not built yet\n"))
	return 2
}

func runUninstall(_ context.Context, env *Env, _ []string) int {
	env.Stderr.Write([]byte("runUninstall: not built yet\n"))
	return 2
}
