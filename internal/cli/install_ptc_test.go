package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestInstallPullThroughCacheCommand(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "ecr-credential-provider")
	os.WriteFile(bin, []byte("\x7fELF fake plugin\n"), 0o755)
	const rule = "docker.io=123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub"
	tests := []struct {
		name   string
		config string
		args   []string
		code   int
		stdout []string
		stderr []string
	}{
		{name: "bad entry", args: []string{"--pull-through-cache", "docker.io=ghcr.io/x"}, code: 2,
			stderr: []string{"--pull-through-cache", "not a private ECR registry"}},
		{name: "same source twice", args: []string{"--pull-through-cache", rule, "--pull-through-cache", "index.docker.io=123456789012.dkr.ecr.us-west-2.amazonaws.com/hub"}, code: 2,
			stderr: []string{"already mapped"}},
		{name: "fallback alone", args: []string{"--pull-through-cache-fallback"}, code: 2,
			stderr: []string{"only applies with --pull-through-cache"}},
		{name: "no fallback without the k3s setting", args: []string{"--pull-through-cache", rule}, code: 1,
			stderr: []string{"disable-default-registry-endpoint: true"}},
		{name: "fallback warns", args: []string{"--pull-through-cache", rule, "--pull-through-cache-fallback"}, code: 0,
			stdout: []string{"created /etc/rancher/k3s/registries.yaml", "note: WARNING"},
			stderr: []string{"warning: --pull-through-cache-fallback", "ECR token"}},
		{name: "k3s", config: "disable-default-registry-endpoint: true\n", args: []string{"--pull-through-cache", rule}, code: 0,
			stdout: []string{"created /etc/rancher/k3s/registries.yaml", "installed for k3s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := k3sNode(t, tt.config+"node-name: edge-1\n")
			before := tree(t, root)
			code, out, errs := run(t, runInstall, append([]string{"--root", root, "--binary", bin}, tt.args...)...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out, errs)
			}
			contains(t, "stdout", out, tt.stdout...)
			contains(t, "stderr", errs, tt.stderr...)
			if code != 0 {
				// A usage error (2) stops before the lock; a refused plan
				// (1) leaves only the lock file.
				want := before
				if code == 1 {
					want = withLock(root, before)
				}
				sameTree(t, "after a refused install", want, tree(t, root))
				return
			}
			if strings.Contains(errs, "warning") != strings.Contains(strings.Join(tt.args, " "), "fallback") {
				t.Errorf("warning printed %v for args %q", strings.Contains(errs, "warning"), tt.args)
			}
			if code, _, errs := run(t, runUninstall, "--root", root); code != 0 {
				t.Fatalf("uninstall: exit %d: %s", code, errs)
			}
			sameTree(t, "after uninstall", withLock(root, before), tree(t, root))
		})
	}
}
