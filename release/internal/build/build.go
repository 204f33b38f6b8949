// Package build compiles the plugin for each release target as a static,
// reproducible binary: the same commit gives the same bytes wherever and
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
)

// Package is the plugin's main package and VersionVar the variable that
// carries its version.
const (
	Package    = "github.com/kubecred/ecr-credential-provider/cmd/ecr-credential-provider"
	VersionVar = "github.com/kubecred/ecr-credential-provider/internal/cli.Version"
)

// Target is one platform the release ships a binary for.
type Target struct{ OS, Arch string }

// Targets are the nodes the release serves: Linux on x86 and Graviton, and
// Windows on x86, whose kubelet runs credential providers the same way (the
// Windows binary has no disk cache and no install subcommand; see the
// README).
var Targets = []Target{{"linux", "amd64"}, {"linux", "arm64"}, {"windows", "amd64"}}

func (t Target) String() string { return t.OS + "/" + t.Arch }

// FileName is the artifact's name, as upstream names its release binaries:
// ecr-credential-provider-linux-amd64, ...-windows-amd64.exe.
func (t Target) FileName() string {
	name := "ecr-credential-provider-" + t.OS + "-" + t.Arch
	if t.OS == "windows" {
		name += ".exe"
	}
	return name
}

// Options say what to build from where.
type Options struct {
	// Source is the root of the main module's checkout.
	Source string
	// Out is the directory the binaries are written to.
	Out     string
	Version string
	// Go is the go command; "" means go from PATH.
	Go string
}

// Binary builds the plugin for t into Out and returns the file's path.
func Binary(ctx context.Context, o Options, t Target) (string, error) {
	if o.Version == "" {
		return "", fmt.Errorf("no version to link in")
	}
	goCmd := o.Go
	if goCmd == "" {
		goCmd = "go"
	}
	out, err := filepath.Abs(filepath.Join(o.Out, t.FileName()))
	if err != nil {
		return "", err
	}
	// -trimpath drops the checkout's path, -buildvcs=false the git state
	// (the version is linked in instead), and an empty build ID leaves no
	// hash of the build's inputs' paths: the bytes then depend only on the
	// source, the module versions and the Go toolchain.
	cmd := exec.CommandContext(ctx, goCmd, "build", "-trimpath", "-buildvcs=false",
		"-ldflags", "-s -w -buildid= -X "+VersionVar+"="+o.Version,
		"-o", out, Package)
	cmd.Dir = o.Source
	cmd.Env = append(cleanEnv(os.Environ()), "CGO_ENABLED=0", "GOOS="+t.OS, "GOARCH="+t.Arch, "GOFLAGS=-mod=readonly")
	var errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &errb, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build for %s: %v\n%s", t, err, errb.String())
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
