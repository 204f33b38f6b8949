// Command render-manifests regenerates deploy/manifests/*.yaml from the
// Helm charts in deploy/charts. Run from the refresher module:
// go run ./cmd/render-manifests.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kubecred/ecr-credential-provider/refresher/internal/manifests"
)

func main() {
	repo := flag.String("repo", "..", "the repository's root")
	flag.Parse()
	for _, c := range manifests.Charts {
		s, err := manifests.RenderRelease(filepath.Join(*repo, c.Dir), c.Release, c.Namespace, c.Header, c.Overrides)
		if err == nil {
			err = os.WriteFile(filepath.Join(*repo, c.Out), []byte(s), 0o644)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "render-manifests: %s: %v\n", c.Dir, err)
			os.Exit(1)
		}
	}
}
