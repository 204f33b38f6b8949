package cli

import (
	"bytes"
	"context"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubecred/ecr-credential-provider/internal/nodesetup"
)

// k3sNode writes a small k3s node below a temporary root.
func k3sNode(t *testing.T, configYAML string) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"etc/rancher/k3s/config.yaml":      configYAML,
		"etc/systemd/system/k3s.service":   "[Service]\nType=notify\nExecStart=/usr/local/bin/k3s server\n",
		"usr/local/bin/k3s":                "fake k3s\n",
		"var/lib/kubelet/.keep-this-there": "",
	}
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// tree maps every path below root to its mode and content.
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := d.Info()
		c := ""
		if d.Type().IsRegular() {
			b, _ := os.ReadFile(p)
			c = string(b)
		}
		out[p] = fi.Mode().String() + " " + c
		return nil
	})
	return out
}

func sameTree(t *testing.T, what string, a, b map[string]string) {
	t.Helper()
	for p, v := range a {
		if b[p] != v {
			t.Errorf("%s: %s differs", what, p)
		}
	}
	for p := range b {
		if _, ok := a[p]; !ok {
			t.Errorf("%s: %s was added", what, p)
		}
	}
}

// withLock is the tree want of the node at root plus what a run that took
// install's lock leaves for good: the empty lock file, and the directories
// made to hold it.
func withLock(root string, want map[string]string) map[string]string {
	out := maps.Clone(want)
	out[filepath.Join(root, nodesetup.LockFile)] = "-rw------- "
	for d := filepath.Dir(nodesetup.LockFile); d != "/"; d = filepath.Dir(d) {
		if _, ok := out[filepath.Join(root, d)]; !ok {
			out[filepath.Join(root, d)] = "drwxr-xr-x "
		}
	}
	return out
}

func run(t *testing.T, f func(context.Context, *Env, []string) int, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := f(context.Background(), &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb}, args)
	return code, out.String(), errb.String()
}

func contains(t *testing.T, what, s string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(s, w) {
			t.Errorf("%s does not say %q:\n%s", what, w, s)
		}
	}
}

func TestInstallUninstallCommands(t *testing.T) {
	root := k3sNode(t, "# mine\nnode-name: edge-1\n")
	bin := filepath.Join(t.TempDir(), "ecr-credential-provider")
	os.WriteFile(bin, []byte("\x7fELF fake plugin\n"), 0o755)
	before := tree(t, root)

	code, out, errs := run(t, runInstall, "--root", root, "--binary", bin, "--dry-run")
	if code != 0 {
		t.Fatalf("install --dry-run: exit %d: %s", code, errs)
	}
	contains(t, "install --dry-run", out, "detected k3s",
		"Binary files /dev/null and /var/lib/rancher/credentialprovider/bin/ecr-credential-provider differ",
		"+++ /var/lib/rancher/credentialprovider/config.yaml", "+kind: CredentialProviderConfig",
		"would create /var/lib/rancher/credentialprovider/config.yaml", "dry run: nothing was changed")
	sameTree(t, "after install --dry-run", before, tree(t, root))

	code, out, errs = run(t, runInstall, "--root", root, "--binary", bin, "--public")
	if code != 0 {
		t.Fatalf("install: exit %d: %s", code, errs)
	}
	contains(t, "install", out, "created /var/lib/rancher/credentialprovider/bin/ecr-credential-provider",
		"installed for k3s", "next: the kubelet reads its flags and provider config only when it starts: run systemctl restart k3s.service")
	cfg, err := os.ReadFile(filepath.Join(root, "var/lib/rancher/credentialprovider/config.yaml"))
	if err != nil || !bytes.Contains(cfg, []byte("public.ecr.aws")) {
		t.Errorf("config with --public: %v\n%s", err, cfg)
	}
	installed := tree(t, root)

	code, out, _ = run(t, runInstall, "--root", root, "--binary", bin, "--public")
	if code != 0 || !strings.Contains(out, "already installed (k3s); nothing changed") {
		t.Errorf("second install: exit %d:\n%s", code, out)
	}
	sameTree(t, "after second install", installed, tree(t, root))

	code, out, errs = run(t, runUninstall, "--root", root)
	if code != 0 {
		t.Fatalf("uninstall: exit %d: %s", code, errs)
	}
	contains(t, "uninstall", out, "removed /var/lib/rancher/credentialprovider/config.yaml", "uninstalled")
	sameTree(t, "after uninstall", withLock(root, before), tree(t, root))

	code, out, _ = run(t, runUninstall, "--root", root)
	if code != 0 || !strings.Contains(out, "nothing to uninstall") {
		t.Errorf("second uninstall: exit %d:\n%s", code, out)
	}
}

func TestInstallCommandErrors(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "ecr-credential-provider")
	os.WriteFile(bin, []byte("\x7fELF fake plugin\n"), 0o755)
	tests := []struct {
		name   string
		config string
		args   []string
		code   int
		stderr []string
	}{
		{"unknown distro", "", []string{"--distro", "openshift"}, 2, []string{"unknown distro \"openshift\"", "kubeadm, k3s"}},
		{"stray argument", "", []string{"now"}, 2, []string{"unexpected argument \"now\""}},
		{"unknown flag", "", []string{"--yes"}, 2, []string{"flag provided but not defined: -yes"}},
		{"restart with another root", "", []string{"--restart"}, 2, []string{"--restart acts on this machine's systemd"}},
		{"relative bin dir", "", []string{"--bin-dir", "bin"}, 2, []string{"must be an absolute path"}},
		{"unparsable config.yaml", "node-name: a\nkubelet-arg:\n\t- x\n", nil, 1, []string{"/etc/rancher/k3s/config.yaml", "line 3", "not valid YAML"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := k3sNode(t, tt.config)
			before := tree(t, root)
			code, _, errs := run(t, runInstall, append([]string{"--root", root, "--binary", bin}, tt.args...)...)
			if code != tt.code {
				t.Errorf("exit %d, want %d: %s", code, tt.code, errs)
			}
			contains(t, "stderr", errs, tt.stderr...)
			// A usage error (exit 2) comes before the lock; a run that
			// reached the node took it, and leaves its file.
			want := before
			if tt.code != 2 {
				want = withLock(root, before)
			}
			sameTree(t, "after the error", want, tree(t, root))
		})
	}
}

// On EKS without --force, install says what it would change and how to
// make it change it, and does not contradict itself.
func TestInstallEKSWithoutForce(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{
		"etc/eks/image-credential-provider/config.json":             `{"apiVersion":"kubelet.config.k8s.io/v1","kind":"CredentialProviderConfig","providers":[{"name":"ecr-credential-provider","matchImages":["*.dkr.ecr.*.amazonaws.com"],"defaultCacheDuration":"12h","apiVersion":"credentialprovider.kubelet.k8s.io/v1"}]}`,
		"etc/eks/image-credential-provider/ecr-credential-provider": "the AMI's binary\n",
		"etc/systemd/system/kubelet.service":                        "[Service]\nExecStart=/usr/bin/kubelet --image-credential-provider-config=/etc/eks/image-credential-provider/config.json --image-credential-provider-bin-dir=/etc/eks/image-credential-provider\n",
	}
	for p, c := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755)
		os.WriteFile(filepath.Join(root, p), []byte(c), 0o755)
	}
	bin := filepath.Join(t.TempDir(), "ecr-credential-provider")
	os.WriteFile(bin, []byte("\x7fELF fake plugin\n"), 0o755)
	before := tree(t, root)
	code, out, errs := run(t, runInstall, "--root", root, "--binary", bin)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	contains(t, "install on EKS", out, "would update /etc/eks/image-credential-provider/ecr-credential-provider", "run install again with --force to make the change above")
	if strings.Contains(out, "nothing was changed") || strings.Contains(out, "installed for") {
		t.Errorf("install on EKS without --force contradicts itself:\n%s", out)
	}
	sameTree(t, "after install on EKS without --force", withLock(root, before), tree(t, root))
}

// Uninstall that must keep files the kubelet's wiring still names says so
// and fails, so a fleet run notices.
func TestUninstallIncompleteFails(t *testing.T) {
	root := k3sNode(t, "node-name: a\n")
	bin := filepath.Join(t.TempDir(), "ecr-credential-provider")
	os.WriteFile(bin, []byte("\x7fELF fake plugin\n"), 0o755)
	if code, _, errs := run(t, runInstall, "--root", root, "--binary", bin); code != 0 {
		t.Fatalf("install: %s", errs)
	}
	os.MkdirAll(filepath.Join(root, "etc/rancher/k3s/config.yaml.d"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/rancher/k3s/config.yaml.d/90-mine.yaml"),
		[]byte("kubelet-arg+:\n  - image-credential-provider-config=/var/lib/rancher/credentialprovider/config.yaml\n  - image-credential-provider-bin-dir=/var/lib/rancher/credentialprovider/bin\n"), 0o644)
	code, out, errs := run(t, runUninstall, "--root", root)
	if code != 1 {
		t.Errorf("uninstall exit %d, want 1:\n%s%s", code, out, errs)
	}
	contains(t, "uninstall", out, "kept /var/lib/rancher/credentialprovider/config.yaml", "90-mine.yaml", "uninstalled in part")
	contains(t, "uninstall stderr", errs, "incomplete")
	for _, p := range []string{"var/lib/rancher/credentialprovider/config.yaml", "var/lib/rancher/credentialprovider/bin/ecr-credential-provider"} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("uninstall removed %s, which the kubelet still needs: %v", p, err)
		}
	}
}
