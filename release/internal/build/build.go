// Package build compiles the release's programs (the plugin and the
// ecr-pull-secrets refresher) for each release target as static,
// reproducible binaries: the same commit gives the same bytes wherever and
// whenever it is built.
package build

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/kubecred/ecr-credential-provider/internal/buildflags"
)

// Program is one binary the release ships.
type Program struct {
	// Name is the binary's name and its artifacts' prefix.
	Name string
	// Module is the directory of the program's Go module in the checkout,
	// "." for the main module.
	Module string
	// Package is its main package and VersionVar the variable that
	// carries its version.
	Package, VersionVar string
	// Windows is true for a program Windows nodes run too; the others are
	// built for Linux only.
	Windows bool
	// Tags are its build tags, "" for none.
	Tags string
}

// Builds reports whether the release builds p for t.
func (p Program) Builds(t Target) bool { return t.OS == "linux" || p.Windows }

// The release's programs. The refresher is its own module, so that the
// plugin never links client-go.
var (
	Plugin = Program{Name: "ecr-credential-provider", Module: ".",
		Package:    "github.com/kubecred/ecr-credential-provider/cmd/ecr-credential-provider",
		VersionVar: "github.com/kubecred/ecr-credential-provider/internal/cli.Version", Windows: true,
		Tags: buildflags.Tags}
	Refresher = Program{Name: "ecr-pull-secrets", Module: "refresher",
		Package:    "github.com/kubecred/ecr-credential-provider/refresher/cmd/ecr-pull-secrets",
		VersionVar: "github.com/kubecred/ecr-credential-provider/refresher.Version"}
	// NodeInstaller is the fleet installer's DaemonSet container; its
	// image holds the plugin too, which it installs.
	NodeInstaller = Program{Name: "ecr-node-installer", Module: "fleet",
		Package:    "github.com/kubecred/ecr-credential-provider/fleet/cmd/ecr-node-installer",
		VersionVar: "main.Version"}
	Programs = []Program{Plugin, Refresher, NodeInstaller}
)

// FileName is the program's artifact for t, named as upstream names its
// release binaries: ecr-credential-provider-linux-amd64, ...-windows-amd64.exe.
func (p Program) FileName(t Target) string {
	name := p.Name + "-" + t.OS + "-" + t.Arch
	if t.OS == "windows" {
		name += ".exe"
	}
	return name
}

// Target is one platform the release ships a binary for.
type Target struct{ OS, Arch string }

// Targets are the nodes the release serves: Linux on x86 and Graviton, and
// Windows on x86, whose kubelet runs credential providers the same way (the
// Windows binary has no disk cache and no install subcommand; see the
// README).
var Targets = []Target{{"linux", "amd64"}, {"linux", "arm64"}, {"windows", "amd64"}}

func (t Target) String() string { return t.OS + "/" + t.Arch }

// FileName is the plugin's artifact for t.
func (t Target) FileName() string { return Plugin.FileName(t) }

// Options say what to build from where.
type Options struct {
	// Source is the root of the main module's checkout.
	Source string
	// Out is the directory the binaries are written to.
	Out     string
	Version string
	// Program is what to build; the zero value is the plugin.
	Program Program
	// Go is the go command; "" means go from PATH.
	Go string
}

// Binary builds the program for t into Out and returns the file's path.
func Binary(ctx context.Context, o Options, t Target) (string, error) {
	if o.Version == "" {
		return "", fmt.Errorf("no version to link in")
	}
	goCmd := o.Go
	if goCmd == "" {
		goCmd = "go"
	}
	p := o.Program
	if p.Name == "" {
		p = Plugin
	}
	out, err := filepath.Abs(filepath.Join(o.Out, p.FileName(t)))
	if err != nil {
		return "", err
	}
	// -trimpath drops the checkout's path, -buildvcs=false the git state
	// (the version is linked in instead), and an empty build ID leaves no
	// hash of the build's inputs' paths: the bytes then depend only on the
	// source, the module versions and the Go toolchain.
	args := []string{"build", "-trimpath", "-buildvcs=false"}
	if p.Tags != "" {
		args = append(args, "-tags="+p.Tags)
	}
	args = append(args, "-ldflags", "-s -w -buildid= -X "+p.VersionVar+"="+o.Version, "-o", out, p.Package)
	cmd := exec.CommandContext(ctx, goCmd, args...)
	cmd.Dir = filepath.Join(o.Source, p.Module)
	cmd.Env = append(cleanEnv(os.Environ()), "CGO_ENABLED=0", "GOOS="+t.OS, "GOARCH="+t.Arch, "GOFLAGS=-mod=readonly")
	var errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &errb, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build of %s for %s: %v\n%s", p.Name, t, err, errb.String())
	}
	return out, nil
}

// cleanEnv drops settings of the caller's environment that would change the
// binary: another target, cgo, extra flags, a different amd64/arm64 level.
func cleanEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "GOOS", "GOARCH", "CGO_ENABLED", "GOFLAGS", "GOAMD64", "GOARM64", "GOEXPERIMENT", "CC", "CGO_CFLAGS", "CGO_LDFLAGS":
			continue
		}
		out = append(out, kv)
	}
	return out
}
