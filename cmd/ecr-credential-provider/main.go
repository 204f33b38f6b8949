// Command ecr-credential-provider is a kubelet image credential provider for
// Amazon ECR and ECR Public, with subcommands to set up and diagnose a node.
package main

import (
	"os"

	"github.com/kubecred/ecr-credential-provider/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], &cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}))
}
