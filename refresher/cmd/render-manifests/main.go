// Command render-manifests regenerates deploy/manifests/*.yaml from the
// Helm charts in deploy/charts (run from the refresher module: go run
// ./cmd/render-manifests), or with -chart and -out renders one of them
// elsewhere, as the end-to-end test does.
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
	chart := flag.String("chart", "", "render only this chart directory (one of deploy/charts)")
	out := flag.String("out", "", "with -chart: the file to write")
	flag.Parse()
	if err := run(*repo, *chart, *out); err != nil {
		fmt.Fprintln(os.Stderr, "render-manifests:", err)
		os.Exit(1)
	}
}

func run(repo, chart, out string) error {
	if (chart == "") != (out == "") {
		return fmt.Errorf("-chart and -out go together")
	}
	for _, c := range manifests.Charts {
		dir, dst := filepath.Join(repo, c.Dir), filepath.Join(repo, c.Out)
		if chart != "" {
			if filepath.Base(filepath.Clean(chart)) != filepath.Base(c.Dir) {
				continue
			}
			dir, dst = chart, out
		}
		s, err := manifests.RenderRelease(dir, c.Release, c.Namespace, c.Header, c.Overrides)
		if err != nil {
			return fmt.Errorf("%s: %w", dir, err)
		}
		if err := os.WriteFile(dst, []byte(s), 0o644); err != nil {
			return err
		}
		if chart != "" {
			return nil
		}
	}
	if chart != "" {
		return fmt.Errorf("%s is none of the charts in deploy/charts", chart)
	}
	return nil
}
