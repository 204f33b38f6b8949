// Package cli parses the command line of ecr-credential-provider and runs
// the plugin or one of its operator subcommands. It holds no logic of its
// own beyond flags and output: each subcommand calls one internal package.
package cli

import (
	"context"
	"fmt"
	"io"
	"os"
)

// Env is what a command may touch of the process: tests pass their own.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Getenv reads the environment; nil means os.Getenv.
	Getenv func(string) string
}

func (e *Env) getenv(k string) string {
	if e.Getenv == nil {
		return os.Getenv(k)
	}
	return e.Getenv(k)
}

type command struct {
	run     func(ctx context.Context, env *Env, args []string) int
	summary string
}

var commands map[string]command

// commandOrder is the order the overview lists the commands in.
var commandOrder = []string{"get-credentials", "install", "uninstall", "config", "match", "doctor", "rbac", "version", "help"}

func init() {
	// Assigned in init because the table refers to runHelp, which reads it.
	commands = map[string]command{
		"get-credentials": {runPlugin, "answer one kubelet CredentialProviderRequest on stdin (the default)"},
		"install":         {runInstall, "install the plugin on this Linux node and wire the kubelet to it"},
		"uninstall":       {runUninstall, "undo what install did, taking out only what is ours"},
		"config":          {runConfig, "'config validate FILE|DIR' checks a CredentialProviderConfig; 'config print' prints the recommended one"},
		"match":           {runMatch, "show which providers the kubelet would call for each image, and why the others don't match"},
		"doctor":          {runDoctor, "find out why pulling an ECR image fails, and how to fix it"},
		"rbac":            {runRBAC, "print the ClusterRole and binding per-pod roles need: 'rbac | kubectl apply -f -'"},
		"version":         {runVersion, "print the version"},
		"help":            {runHelp, "show this overview, or one command's help"},
	}
}

// Version is set at link time with -ldflags "-X ...cli.Version=..."; when
// empty, version() reads it from the build info (see version.go).
var Version string

// Main runs the command line and returns the process exit code.
func Main(args []string, env *Env) int {
	// No signal handling: the plugin must die when the kubelet kills it,
	// and the other commands bound their own work with timeouts.
	ctx := context.Background()
	if len(args) > 0 {
		if c, ok := commands[args[0]]; ok {
			return c.run(ctx, env, args[1:])
		}
		if args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
			return runHelp(ctx, env, nil)
		}
		if args[0] == "--version" || args[0] == "-version" {
			return runVersion(ctx, env, nil)
		}
	}
	// The kubelet runs us with the config's args only: no subcommand means
	// plugin mode, and "get-credentials" may come after flags too.
	return runPlugin(ctx, env, args)
}

func runVersion(_ context.Context, env *Env, args []string) int {
	fs := newFlagSet(env, "version")
	if err := fs.Parse(args); err != nil {
		return parseFailed(env, fs, err)
	}
	if fs.NArg() > 0 {
		return usageError(env, "version", "unexpected argument %q", fs.Arg(0))
	}
	fmt.Fprintf(env.Stdout, "ecr-credential-provider %s\n", version())
	return 0
}
