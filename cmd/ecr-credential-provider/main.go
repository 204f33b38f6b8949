// Command ecr-credential-provider is a kubelet image credential provider for
// Amazon ECR and ECR Public, with subcommands to set up and diagnose a node.
package main

import (
	"os"

	"github.com/kubecred/ecr-credential-provider/internal/cli"
	// Runs the process on one P from its first package inits on.
	_ "github.com/kubecred/ecr-credential-provider/internal/maxprocs"
	// Answers cache hits in its init, before the AWS SDK's packages
	// initialize; see its package doc.
	"github.com/kubecred/ecr-credential-provider/internal/fastpath"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], &cli.Env{Stdin: fastpath.Stdin(), Stdout: os.Stdout, Stderr: os.Stderr}))
}
