// Package dist writes a release directory: the binaries of every target
// with their checksums and SBOMs, the deb and rpm packages, the OCI image
// tarball and one SHA256SUMS over them all.
package dist

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/kubecred/ecr-credential-provider/internal/providerconfig"
	"github.com/kubecred/ecr-credential-provider/release/internal/build"
	"github.com/kubecred/ecr-credential-provider/release/internal/checksum"
	"github.com/kubecred/ecr-credential-provider/release/internal/image"
	"github.com/kubecred/ecr-credential-provider/release/internal/linuxpkg"
	"github.com/kubecred/ecr-credential-provider/release/internal/sbom"
)

// ImageFile is the OCI layout tarball's name in the release directory.
const ImageFile = "ecr-credential-provider-image.oci.tar"

// SumsFile lists the SHA-256 of every artifact.
const SumsFile = "SHA256SUMS"

// SBOMFile is the name of the CycloneDX SBOM of the binary named binary.
func SBOMFile(binary string) string { return binary + ".sbom.cdx.json" }

// Options say what to release from where.
type Options struct {
	// Source is the main module's checkout; Out the release directory,
	// replaced whole once everything in it is written.
	Source, Out string
	Version     string
	// Time stands in for every timestamp: the commit time.
	Time time.Time
	// Targets defaults to build.Targets.
	Targets []build.Target
	// ImageRepository names the image; "" is image.DefaultRepository.
	ImageRepository string
	// Log receives one line per step; nil discards them.
	Log func(format string, args ...any)
}

// Result lists what Run wrote, by file name in Out.
type Result struct {
	Binaries map[build.Target]string
	Packages []string
	Image    string
	// Artifacts is every file SHA256SUMS covers, sorted.
	Artifacts []string
}

// Run writes the release into a fresh directory beside Out and then puts it
// in Out's place, so a failed release leaves the previous one whole.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Version == "" || o.Time.IsZero() {
		return nil, fmt.Errorf("a release needs a version and a timestamp")
	}
	if o.Targets == nil {
		o.Targets = build.Targets
	}
	logf := o.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	out, err := filepath.Abs(o.Out)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return nil, err
	}
	stage, err := os.MkdirTemp(filepath.Dir(out), "."+filepath.Base(out)+"-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(stage)
	if err := os.Chmod(stage, 0o755); err != nil {
		return nil, err
	}

	res := &Result{Binaries: map[build.Target]string{}}
	var artifacts []string
	// Every target gets its binary, checksum and SBOM; the packages and the
	// image are Linux's.
	linux := map[string]string{}
	for _, t := range o.Targets {
		logf("building %s", t)
		path, err := build.Binary(ctx, build.Options{Source: o.Source, Out: stage, Version: o.Version}, t)
		if err != nil {
			return nil, err
		}
		if _, err := checksum.WriteSidecar(path); err != nil {
			return nil, err
		}
		bom, err := sbom.FromBinary(path, sbom.Options{Version: o.Version, Time: o.Time})
		if err != nil {
			return nil, err
		}
		bomPath := filepath.Join(stage, SBOMFile(t.FileName()))
		if err := os.WriteFile(bomPath, bom, 0o644); err != nil {
			return nil, err
		}
		res.Binaries[t] = t.FileName()
		artifacts = append(artifacts, path, bomPath)
		if t.OS == "linux" {
			linux[t.Arch] = path
		}
	}

	// The same config 'ecr-credential-provider config print' prints.
	config, err := providerconfig.Recommended(providerconfig.RecommendedOptions{})
	if err != nil {
		return nil, err
	}
	for _, arch := range sortedKeys(linux) {
		logf("packaging linux/%s", arch)
		pkgs, err := linuxpkg.Build(linuxpkg.Options{Binary: linux[arch], Arch: arch, Version: o.Version,
			Config: config, Time: o.Time, Out: stage})
		if err != nil {
			return nil, fmt.Errorf("packaging linux/%s: %v", arch, err)
		}
		for _, p := range pkgs {
			res.Packages = append(res.Packages, filepath.Base(p))
		}
		artifacts = append(artifacts, pkgs...)
	}

	if len(linux) > 0 {
		logf("writing the image")
		imgPath := filepath.Join(stage, ImageFile)
		if _, err := image.WriteTarball(imgPath, image.Options{Binaries: linux, Repository: o.ImageRepository,
			Version: o.Version, Time: o.Time}); err != nil {
			return nil, fmt.Errorf("image: %v", err)
		}
		res.Image = ImageFile
		artifacts = append(artifacts, imgPath)
	}

	if err := checksum.WriteSums(filepath.Join(stage, SumsFile), artifacts); err != nil {
		return nil, err
	}
	for _, a := range artifacts {
		res.Artifacts = append(res.Artifacts, filepath.Base(a))
	}
	sort.Strings(res.Artifacts)

	// Swap the finished directory in; the old one goes only after.
	old := stage + ".old"
	if err := os.Rename(out, old); err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	if err := os.Rename(stage, out); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(old); err != nil {
		return nil, err
	}
	return res, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
