// Command mkrelease writes the release directory (make release): static
// reproducible binaries of the plugin and the ecr-pull-secrets refresher,
// checksums, SBOMs, the plugin's deb and rpm packages and an OCI image of
// each, all from one commit of the checkout.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/kubecred/ecr-credential-provider/release/internal/dist"
	"github.com/kubecred/ecr-credential-provider/release/internal/source"
)

func main() {
	src := flag.String("source", "..", "the main module's checkout")
	out := flag.String("out", "../dist", "the release directory, replaced whole")
	version := flag.String("version", "", "release version (default: git describe --tags --always --dirty)")
	repo := flag.String("image-repository", "", "the plugin image's name without tag (default ghcr.io/kubecred/ecr-credential-provider)")
	refresherRepo := flag.String("refresher-image-repository", "", "the refresher image's name without tag (default "+dist.DefaultRefresherRepository+")")
	installerRepo := flag.String("node-installer-image-repository", "", "the fleet installer image's name without tag (default "+dist.DefaultNodeInstallerRepository+")")
	flag.Parse()
	if err := run(context.Background(), *src, *out, *version, *repo, *refresherRepo, *installerRepo); err != nil {
		fmt.Fprintln(os.Stderr, "mkrelease:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, src, out, version, repo, refresherRepo, installerRepo string) error {
	// SOURCE_DATE_EPOCH, as reproducible-builds.org defines it, and an
	// explicit version win over what git says; a source tree without git
	// needs both.
	var commitTime time.Time
	epoch := os.Getenv("SOURCE_DATE_EPOCH")
	if version == "" || epoch == "" {
		described, at, err := source.Describe(ctx, src)
		if err != nil {
			return err
		}
		if version == "" {
			version = described
		}
		commitTime = at
	}
	if epoch != "" {
		at, err := source.ParseEpoch(epoch)
		if err != nil {
			return err
		}
		commitTime = at
	}
	start := time.Now()
	res, err := dist.Run(ctx, dist.Options{Source: src, Out: out, Version: version, Time: commitTime,
		ImageRepository: repo, RefresherImageRepository: refresherRepo, NodeInstallerImageRepository: installerRepo, Log: func(f string, a ...any) { fmt.Fprintf(os.Stderr, "mkrelease: "+f+"\n", a...) }})
	if err != nil {
		return err
	}
	fmt.Printf("%s %s (timestamps %s) in %s, %s:\n", "ecr-credential-provider", version, commitTime.Format(time.RFC3339), out, time.Since(start).Round(time.Second))
	for _, a := range res.Artifacts {
		fmt.Println("  " + a)
	}
	return nil
}
