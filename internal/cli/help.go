package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/kubecred/ecr-credential-provider/internal/noderbac"
	"github.com/kubecred/ecr-credential-provider/internal/nodesetup"
	"github.com/kubecred/ecr-credential-provider/internal/plugin"
)

// doc is a command's help: what 'X --help', 'X -h' and 'help X' print,
// around the flags of the command's own flag set.
type doc struct {
	usage   string // after the binary's name
	about   string
	example string
}

// docs holds the help of every command and subcommand, keyed by the flag
// set's name, so the text lives next to no copy of the flags.
var docs = map[string]doc{
	"get-credentials": {
		usage: "[get-credentials] [flags] < request.json",
		about: `Answers one kubelet CredentialProviderRequest (any of v1alpha1, v1beta1, v1)
read from stdin with one CredentialProviderResponse on stdout. This is what the
kubelet runs: no command at all means get-credentials, and the flags below are
the provider's "args" in the kubelet's CredentialProviderConfig.`,
		example: `ecr-credential-provider get-credentials -v 1 < request.json
  # request.json: {"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"123456789012.dkr.ecr.us-east-1.amazonaws.com/app:v1"}`,
	},
	"install": {
		usage: "install [flags]",
		about: `Installs this binary and a CredentialProviderConfig for Amazon ECR on this
Linux node, and wires the kubelet to them the way the node's distribution expects.
It changes only its own entry, flags and keys, keeping everything else in
the files it edits; 'ecr-credential-provider uninstall' undoes it. Running
it again changes nothing.`,
		example: `ecr-credential-provider install --dry-run
  ecr-credential-provider install --public --restart`,
	},
	"uninstall": {
		usage: "uninstall [flags]",
		about: `Undoes what install did, from its record in ` + nodesetup.StateDir + `:
takes its provider entry, flags and keys out of the files it edited
(leaving every other line as it is now; a file unchanged since install
comes back whole from its backup) and removes the files and directories
it created. Files the kubelet's wiring still names are kept, and it then
exits 1. Running it again changes nothing.`,
		example: `ecr-credential-provider uninstall --dry-run
  ecr-credential-provider uninstall --restart`,
	},
	"config": {
		usage: "config validate|print [flags]",
		about: `Checks or prints a kubelet CredentialProviderConfig. Subcommands:
  validate   check a config with the kubelet's own rules; exit 1 on any error
  print      print the recommended config
Run 'ecr-credential-provider config SUBCOMMAND --help' for their flags.`,
		example: `ecr-credential-provider config validate /etc/kubernetes/image-credential-provider-config.yaml
  ecr-credential-provider config print --public > config.yaml`,
	},
	"config validate": {
		usage: "config validate [flags] FILE|DIR",
		about: `Checks a CredentialProviderConfig (a file, or a directory of them as the
kubelet reads it) with the rules of the chosen kubelet version, and warns about
ECR host forms it misses. Exit status: 0 when the kubelet accepts it, 1 when it
refuses it, 2 for usage errors.`,
		example: `ecr-credential-provider config validate --kubelet-version v1.29 --bin-dir /usr/local/libexec/kubelet-credential-providers config.yaml`,
	},
	"config print": {
		usage: "config print [flags]",
		about: `Prints the recommended CredentialProviderConfig: one provider matching every
ECR host form of every partition (and ECR Public with --public).`,
		example: `ecr-credential-provider config print --public > /etc/kubernetes/image-credential-provider-config.yaml`,
	},
	"match": {
		usage: "match --config FILE|DIR [flags] IMAGE...",
		about: `Shows which providers the kubelet would call for each image, and why each
other pattern does not match. Exit status: 0 when every image matches a
provider, 1 otherwise, 2 for usage errors.`,
		example: `ecr-credential-provider match --config config.yaml 123456789012.dkr.ecr.us-east-1.amazonaws.com/app:v1`,
	},
	"doctor": {
		usage: "doctor [flags] IMAGE",
		about: `Checks everything a pull of IMAGE depends on: the kubelet's provider wiring,
AWS credentials, the network path to ECR and its S3 layer bucket, the
authorization token, the registry's answer for the image, and the installed
plugin. Prints one line per check and a fix for each failure.
Exit status: 0 when a pull would work, 1 when something is broken, 2 for usage errors.`,
		example: `ecr-credential-provider doctor 123456789012.dkr.ecr.us-east-1.amazonaws.com/app:v1
  ecr-credential-provider doctor --config config.yaml --bin-dir ./bin --run-plugin --json IMAGE`,
	},
	"rbac": {
		usage: "rbac [--audience AUDIENCE]",
		about: `Prints the ClusterRole and ClusterRoleBinding that let every node (group
system:nodes) request service account tokens for the audience of per-pod
roles ('install --per-pod-roles'). Without them the API server refuses the
kubelet's token request, the plugin is never called, and the pull gets 401.`,
		example: noderbac.Apply,
	},
	"version": {
		usage:   "version",
		about:   `Prints the version of this binary.`,
		example: `ecr-credential-provider version`,
	},
	"help": {
		usage:   "help [COMMAND [SUBCOMMAND]]",
		about:   `Shows the overview, or the help of one command.`,
		example: `ecr-credential-provider help config validate`,
	},
}

// newFlagSet returns the flag set of the command name. Parse errors go to
// stderr; -h prints nothing there: parseFailed prints the help to stdout.
//
// Not inlined (go:noinline): it has a dozen call sites, and one out-of-line copy
// keeps the plugin binary, which links every operator command, smaller.
//
//go:noinline
func newFlagSet(env *Env, name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {}
	return fs
}

// parseFailed finishes a command whose flags did not parse: -h is help on
// stdout and exit 0; anything else was reported by the flag package and
// is a usage error.
func parseFailed(env *Env, fs *flag.FlagSet, err error) int {
	if errors.Is(err, flag.ErrHelp) {
		writeHelp(env.Stdout, fs)
		return 0
	}
	return usageHint(env, fs.Name())
}

// usageError reports a usage error of command name on stderr and returns 2.
func usageError(env *Env, name, format string, a ...any) int {
	fmt.Fprintf(env.Stderr, name+": "+format+"\n", a...)
	return usageHint(env, name)
}

func usageHint(env *Env, name string) int {
	fmt.Fprintf(env.Stderr, "Run 'ecr-credential-provider %s --help' for usage.\n", name)
	return 2
}

// writeHelp prints the help of fs's command: usage, description, flags and
// an example.
func writeHelp(w io.Writer, fs *flag.FlagSet) {
	d := docs[fs.Name()]
	fmt.Fprintf(w, "Usage: ecr-credential-provider %s\n\n%s\n", d.usage, d.about)
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprint(w, "\nFlags:\n")
		printDefaults(w, fs)
	}
	fmt.Fprintf(w, "\nExample:\n  %s\n", d.example)
}

func printDefaults(w io.Writer, fs *flag.FlagSet) {
	out := fs.Output()
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(out)
}

// pluginFlagSet is the plugin's flag set, from its one definition in
// package plugin.
func pluginFlagSet(env *Env) *flag.FlagSet {
	fs := newFlagSet(env, "get-credentials")
	new(plugin.Flags).Register(fs, env.getenv)
	return fs
}

// runHelp prints the overview, or with a command name that command's help
// (the command itself prints it, from its own flag set).
func runHelp(ctx context.Context, env *Env, args []string) int {
	if len(args) > 0 && args[0] != "-h" && args[0] != "-help" && args[0] != "--help" {
		c, ok := commands[args[0]]
		if !ok || args[0] == "help" {
			if ok {
				return runHelp(ctx, env, nil)
			}
			return usageError(env, "help", "unknown command %q (commands: %s)", args[0], strings.Join(commandOrder, ", "))
		}
		return c.run(ctx, env, append(append([]string(nil), args[1:]...), "--help"))
	}
	fmt.Fprint(env.Stdout, `ecr-credential-provider: a kubelet image credential provider for Amazon ECR.

Usage:
  ecr-credential-provider [get-credentials] [flags]   run as the kubelet's exec plugin
  ecr-credential-provider COMMAND [flags]

Commands:
`)
	for _, name := range commandOrder {
		fmt.Fprintf(env.Stdout, "  %-16s %s\n", name, commands[name].summary)
	}
	fmt.Fprint(env.Stdout, "\nPlugin flags (the provider's args in the kubelet's CredentialProviderConfig):\n")
	printDefaults(env.Stdout, pluginFlagSet(env))
	fmt.Fprint(env.Stdout, `
Example:
  ecr-credential-provider install --dry-run

Run 'ecr-credential-provider help COMMAND' or 'ecr-credential-provider COMMAND --help' for a command's flags and examples.
`)
	return 0
}
