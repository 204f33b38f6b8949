// Package linuxpkg builds the deb and rpm packages of a release with nfpm:
// the static binary in the kubelet's plugin tree and the recommended
// provider config as a config file that upgrades leave alone once edited.
package linuxpkg

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
	"github.com/goreleaser/nfpm/v2/rpm"

	"github.com/kubecred/ecr-credential-provider/internal/nodesetup"
)

// Name is the package name.
const Name = "ecr-credential-provider"

// BinDir is where the packages put the binary, the directory to give the
// kubelet's --image-credential-provider-bin-dir. It sits beside the
// kubelet's own default plugin tree (/usr/libexec/kubernetes/kubelet-plugins,
// where --volume-plugin-dir points), in /usr because packages own /usr and
// leave /usr/local to the administrator, and it is a directory only
// credential providers live in, since the kubelet runs whatever a config
// names there.
const BinDir = "/usr/libexec/kubernetes/kubelet-plugins/credential-provider/exec"

// BinaryPath is the installed binary; ConfigPath the provider config, the
// same path the install subcommand writes, so both routes agree.
const (
	BinaryPath = BinDir + "/ecr-credential-provider"
	ConfigPath = nodesetup.DefaultConfig
)

// Options describe one architecture's packages.
type Options struct {
	// Binary is the linux binary for Arch (amd64 or arm64).
	Binary string
	Arch   string
	// Version is the release version as git describe spells it.
	Version string
	// Config is the provider config's content.
	Config []byte
	// Time stands in for every timestamp in the package.
	Time time.Time
	// Out is the directory the packages are written to.
	Out string
}

// Formats are the package formats Build writes, in order.
var Formats = []string{"deb", "rpm"}

var packagers = map[string]nfpm.Packager{"deb": deb.Default, "rpm": rpm.DefaultRPM}

// Build writes the deb and the rpm into Out and returns their paths.
func Build(o Options) ([]string, error) {
	if o.Time.IsZero() {
		return nil, fmt.Errorf("no timestamp for the packages' files")
	}
	stage, err := os.MkdirTemp("", "linuxpkg-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(stage)
	config := filepath.Join(stage, "config.yaml")
	if err := os.WriteFile(config, o.Config, 0o644); err != nil {
		return nil, err
	}
	var out []string
	for _, format := range Formats {
		info := o.info(config)
		p := packagers[format]
		info = nfpm.WithDefaults(info)
		if err := nfpm.PrepareForPackager(info, format); err != nil {
			return nil, fmt.Errorf("%s: %v", format, err)
		}
		path := filepath.Join(o.Out, p.ConventionalFileName(info))
		if err := write(path, func(f *os.File) error { return p.Package(info, f) }); err != nil {
			return nil, fmt.Errorf("%s: %v", format, err)
		}
		out = append(out, path)
	}
	return out, nil
}

func (o Options) info(config string) *nfpm.Info {
	return &nfpm.Info{
		Name:          Name,
		Arch:          o.Arch,
		Platform:      "linux",
		Version:       Version(o.Version),
		VersionSchema: "none",
		Release:       "1",
		Section:       "admin",
		Priority:      "optional",
		Maintainer:    "ecr-credential-provider maintainers <noreply@github.com>",
		Description: "kubelet image credential provider for Amazon ECR\n" +
			"Answers the kubelet's CredentialProviderRequests for ECR and ECR Public\n" +
			"images. Point the kubelet's --image-credential-provider-bin-dir at " + BinDir + "\n" +
			"and --image-credential-provider-config at " + ConfigPath + ".",
		Vendor:   "kubecred",
		Homepage: "https://github.com/kubecred/ecr-credential-provider",
		License:  "Apache-2.0",
		MTime:    o.Time,
		Overridables: nfpm.Overridables{
			Contents: files.Contents{
				{Source: o.Binary, Destination: BinaryPath, Type: files.TypeFile,
					FileInfo: &files.ContentFileInfo{Mode: 0o755, MTime: o.Time}},
				// config|noreplace: rpm keeps an edited file in place (and
				// writes the new one as .rpmnew); deb marks every config
				// file a conffile, which dpkg keeps when edited.
				{Source: config, Destination: ConfigPath, Type: files.TypeConfigNoReplace,
					FileInfo: &files.ContentFileInfo{Mode: 0o644, MTime: o.Time}},
			},
		},
	}
}

// Version turns a git describe version into one deb and rpm both order
// after the tag it builds on: v1.2.3 is 1.2.3, v1.2.3-4-gabc1234 (four
// commits later) is 1.2.3+git4.gabc1234, and a bare commit hash (no tag yet)
// is 0.0.0+gitHASH.
func Version(describe string) string {
	if bareHash.MatchString(describe) || !startsNumeric.MatchString(describe) {
		return "0.0.0+git" + strings.ReplaceAll(strings.TrimPrefix(describe, "v"), "-", ".")
	}
	v := strings.TrimPrefix(describe, "v")
	base, rest, ok := strings.Cut(v, "-")
	if !ok {
		return v
	}
	return base + "+git" + strings.ReplaceAll(rest, "-", ".")
}

var (
	// git describe --always without a tag: an abbreviated hash, which may
	// begin with (or be all) decimal digits.
	bareHash = regexp.MustCompile(`^[0-9a-f]{7,64}(-dirty)?$`)
	// A tag-based version: v1, 1.2.3, v1.2.3-rc.1.
	startsNumeric = regexp.MustCompile(`^v?[0-9]`)
)

// write creates path through a temporary file, so a failed build leaves no
// half-written package behind.
func write(path string, fill func(*os.File) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := fill(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
