// Package dist writes a release directory: the binaries of every program
// (the plugin and the ecr-pull-secrets refresher) and target with their
// checksums and SBOMs, the plugin's deb and rpm packages, one OCI image
// tarball per program and one SHA256SUMS over them all.
package dist

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/kubecred/ecr-credential-provider/internal/providerconfig"
	"github.com/kubecred/ecr-credential-provider/release/internal/build"
	"github.com/kubecred/ecr-credential-provider/release/internal/checksum"
	"github.com/kubecred/ecr-credential-provider/release/internal/image"
	"github.com/kubecred/ecr-credential-provider/release/internal/linuxpkg"
	"github.com/kubecred/ecr-credential-provider/release/internal/sbom"
)

// ImageFile and RefresherImageFile are the OCI layout tarballs' names in
// the release directory.
const (
	ImageFile              = "ecr-credential-provider-image.oci.tar"
	RefresherImageFile     = "ecr-pull-secrets-image.oci.tar"
	NodeInstallerImageFile = "ecr-node-installer-image.oci.tar"
)

// DefaultRefresherRepository names the refresher's image when the release
// names none; the chart's default image.
const DefaultRefresherRepository = "ghcr.io/kubecred/ecr-pull-secrets"

// DefaultNodeInstallerRepository names the fleet installer's image (the
// installer and the plugin it installs): the ecr-credential-provider
// chart's default image.
const DefaultNodeInstallerRepository = "ghcr.io/kubecred/ecr-node-installer"

// refresherPath is where the refresher sits in its image, and its
// entrypoint; nodeInstallerPath the same for the node installer, whose
// image also holds the plugin at image.BinaryPath.
const (
	refresherPath     = "/ecr-pull-secrets"
	nodeInstallerPath = "/ecr-node-installer"
)

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
	// Programs defaults to build.Programs.
	Programs []build.Program
	// ImageRepository names the plugin's image; "" is
	// image.DefaultRepository. RefresherImageRepository names the
	// refresher's; "" is DefaultRefresherRepository.
	ImageRepository, RefresherImageRepository string
	// NodeInstallerImageRepository names the node installer's image; ""
	// is DefaultNodeInstallerRepository.
	NodeInstallerImageRepository string
	// Log receives one line per step; nil discards them.
	Log func(format string, args ...any)
}

// Binary is one built binary of the release.
type Binary struct {
	Program build.Program
	Target  build.Target
	File    string // its name in Out
}

// Result lists what Run wrote, by file name in Out.
type Result struct {
	Binaries []Binary
	Packages []string
	// Image and RefresherImage are the programs' image tarballs ("" when
	// the release has no linux binary of the program).
	Image, RefresherImage string
	// NodeInstallerImage is the fleet installer's image tarball.
	NodeInstallerImage string
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
	if o.Programs == nil {
		o.Programs = build.Programs
	}
	if o.RefresherImageRepository == "" {
		o.RefresherImageRepository = DefaultRefresherRepository
	}
	if o.NodeInstallerImageRepository == "" {
		o.NodeInstallerImageRepository = DefaultNodeInstallerRepository
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

	res := &Result{}
	var artifacts []string
	linuxOf := map[string]map[string]string{} // program name -> arch -> binary
	for _, p := range o.Programs {
		linuxOf[p.Name] = map[string]string{}
		for _, t := range o.Targets {
			if !p.Builds(t) {
				continue
			}
			logf("building %s for %s", p.Name, t)
			path, err := build.Binary(ctx, build.Options{Source: o.Source, Out: stage, Version: o.Version, Program: p}, t)
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
			bomPath := filepath.Join(stage, SBOMFile(p.FileName(t)))
			if err := os.WriteFile(bomPath, bom, 0o644); err != nil {
				return nil, err
			}
			res.Binaries = append(res.Binaries, Binary{Program: p, Target: t, File: p.FileName(t)})
			artifacts = append(artifacts, path, bomPath)
			if t.OS == "linux" {
				linuxOf[p.Name][t.Arch] = path
			}
		}
	}
	linux := linuxOf[build.Plugin.Name]

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

	images := []struct {
		file string
		into *string
		opts image.Options
	}{
		{ImageFile, &res.Image, image.Plugin(linux, o.ImageRepository, o.Version, o.Time)},
		// The refresher alone, as the plugin is alone in its image: with
		// no /etc/ssl there it checks AWS's certificates against the
		// roots compiled into it (x509roots/fallback), and the API
		// server's against the service account's mounted CA.
		{RefresherImageFile, &res.RefresherImage, image.Options{
			Files:      []image.File{{Path: refresherPath, Binaries: linuxOf[build.Refresher.Name]}},
			Repository: o.RefresherImageRepository, Version: o.Version, Time: o.Time}},
		// The DaemonSet's container and the plugin binary it installs on
		// each node, from the same release.
		{NodeInstallerImageFile, &res.NodeInstallerImage, image.Options{
			Files: []image.File{
				{Path: nodeInstallerPath, Binaries: linuxOf[build.NodeInstaller.Name]},
				{Path: image.BinaryPath, Binaries: linux},
			},
			Repository: o.NodeInstallerImageRepository, Version: o.Version, Time: o.Time}},
	}
	for _, img := range images {
		if slices.ContainsFunc(img.opts.Files, func(f image.File) bool { return len(f.Binaries) == 0 }) {
			continue
		}
		logf("writing %s", img.file)
		imgPath := filepath.Join(stage, img.file)
		if _, err := image.WriteTarball(imgPath, img.opts); err != nil {
			return nil, fmt.Errorf("%s: %v", img.file, err)
		}
		*img.into = img.file
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
