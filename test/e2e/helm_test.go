package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helmVersion is the helm the charts are installed with: the version
// whose template engine the refresher module renders the plain manifests
// with, so both agree.
const helmVersion = "v3.22.0"

// helmBinary returns the real helm command, built from its Go module the
// first time and cached beside the kubelets.
func helmBinary(t *testing.T) string {
	t.Helper()
	dir, err := kubeletCacheDir()
	if err != nil {
		t.Fatalf("binary cache: %v", err)
	}
	bin := filepath.Join(dir, "helm-"+helmVersion)
	if isExecutable(bin) {
		return bin
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "helm.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if isExecutable(bin) {
		return bin
	}
	start := time.Now()
	t.Logf("building helm %s from helm.sh/helm/v3 (a few minutes the first time; cached in %s after)", helmVersion, dir)
	gobin, err := os.MkdirTemp(dir, "helm-build-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(gobin)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "install", "-trimpath", "helm.sh/helm/v3/cmd/helm@"+helmVersion)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOBIN="+gobin, "GOFLAGS=", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building helm: %v\n%s", err, out)
	}
	if err := os.Rename(filepath.Join(gobin, "helm"), bin); err != nil {
		t.Fatal(err)
	}
	t.Logf("built helm %s in %s", helmVersion, time.Since(start).Round(time.Second))
	return bin
}

// helmCmd runs helm against the cluster of kubeconfig, with its own
// config, cache and data directories (nothing of the machine's).
type helmCmd struct {
	bin, kubeconfig, home string
}

func newHelm(t *testing.T, kubeconfig string) *helmCmd {
	return &helmCmd{bin: helmBinary(t), kubeconfig: kubeconfig, home: t.TempDir()}
}

func (h *helmCmd) run(args ...string) (string, error) {
	cmd := exec.Command(h.bin, append(args, "--kubeconfig", h.kubeconfig)...)
	cmd.Env = append(baseEnv(),
		"HELM_CONFIG_HOME="+filepath.Join(h.home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(h.home, "cache"),
		"HELM_DATA_HOME="+filepath.Join(h.home, "data"))
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}
