// Command render-manifests regenerates deploy/manifests/ecr-pull-secrets.yaml
// from the Helm chart. Run from the refresher module: go run ./cmd/render-manifests.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/kubecred/ecr-credential-provider/refresher/internal/manifests"
)

func main() {
	chart := flag.String("chart", "../deploy/charts/ecr-pull-secrets", "chart directory")
	out := flag.String("out", "../deploy/manifests/ecr-pull-secrets.yaml", "file to write")
	flag.Parse()
	s, err := manifests.Render(*chart, manifests.PlainOverrides())
	if err == nil {
		err = os.WriteFile(*out, []byte(s), 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "render-manifests:", err)
		os.Exit(1)
	}
}
