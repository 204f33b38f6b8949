package doctor

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubecred/ecr-credential-provider/internal/kubeletwiring"
)

const (
	eksConfig = "/etc/eks/image-credential-provider/config.json"
	eksBinDir = "/etc/eks/image-credential-provider"
	// providerSecret stands for a credential put in a provider's env.
	providerSecret = "provider-env-secret-value-42"
)

// node is a fake node: a /proc with one process and a filesystem root.
type node struct {
	proc, root string
}

func newNode(t *testing.T) *node {
	return &node{proc: t.TempDir(), root: t.TempDir()}
}

// process adds a process with argv and environ.
func (n *node) process(t *testing.T, pid string, argv []string, environ []string) {
	t.Helper()
	dir := filepath.Join(n.proc, pid)
	must(t, os.MkdirAll(dir, 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "cmdline"), []byte(strings.Join(argv, "\x00")+"\x00"), 0o644))
	if environ != nil {
		must(t, os.WriteFile(filepath.Join(dir, "environ"), []byte(strings.Join(environ, "\x00")+"\x00"), 0o600))
	}
}

func (n *node) file(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	p := filepath.Join(n.root, path)
	must(t, os.MkdirAll(filepath.Dir(p), 0o755))
	must(t, os.WriteFile(p, []byte(content), mode))
}

// plugin installs the test binary as the provider: it answers as a
// credential provider when the provider's env says so.
func (n *node) plugin(t *testing.T, dir, name string) {
	t.Helper()
	self, err := os.Executable()
	must(t, err)
	must(t, os.MkdirAll(filepath.Join(n.root, dir), 0o755))
	must(t, os.Symlink(self, filepath.Join(n.root, dir, name)))
}

// providerConfig is a config with one provider for the test plugin.
func providerConfig(name string, match ...string) string {
	cfg := map[string]any{
		"apiVersion": "kubelet.config.k8s.io/v1",
		"kind":       "CredentialProviderConfig",
		"providers": []any{map[string]any{
			"name":                 name,
			"matchImages":          match,
			"defaultCacheDuration": "12h",
			"apiVersion":           "credentialprovider.kubelet.k8s.io/v1",
			"args":                 []string{"get-credentials"},
			"env": []any{
				map[string]string{"name": pluginEnv, "value": "1"},
				map[string]string{"name": "SOME_TOKEN", "value": providerSecret},
			},
		}},
	}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	return string(b)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var kubeletArgv = []string{"/usr/bin/kubelet", "--config=/etc/kubernetes/kubelet/config.json",
	"--image-credential-provider-config", eksConfig, "--image-credential-provider-bin-dir=" + eksBinDir, "--v=2"}

func TestWiring(t *testing.T) {
	const name = "ecr-credential-provider"
	ecrMatch := []string{"*.dkr.ecr.*.amazonaws.com"}
	tests := []struct {
		name  string
		setup func(t *testing.T, n *node, env []string)
		// status per check ID; checks not listed are not looked at.
		want map[string]Status
		// text are substrings of the named checks' summary, remedy and notes.
		text  map[string][]string
		facts map[string]map[string]string
		ok    bool
	}{
		{
			name: "EKS kubelet wired",
			setup: func(t *testing.T, n *node, env []string) {
				n.process(t, "1234", kubeletArgv, append(env, "AWS_STS_REGIONAL_ENDPOINTS=regional"))
				n.file(t, eksConfig, providerConfig(name, ecrMatch...), 0o644)
				n.plugin(t, eksBinDir, name)
			},
			want: map[string]Status{CheckKubelet: StatusOK, CheckProviderConfig: StatusOK, CheckProviderMatch: StatusOK, CheckProviderBinary: StatusOK, CheckPlugin: StatusOK},
			text: map[string][]string{
				CheckKubelet:     {"kubelet (pid 1234)", eksConfig, eksBinDir},
				CheckPlugin:      {"user AWS", "password <redacted>", "the registry accepts it", "with the kubelet's environment"},
				CheckCredentials: {"only in the kubelet's: AWS_STS_REGIONAL_ENDPOINTS"},
			},
			facts: map[string]map[string]string{CheckProviderMatch: {"provider": name, "image": regHost + "/app"}},
			ok:    true,
		},
		{
			name: "kubelet without provider flags",
			setup: func(t *testing.T, n *node, env []string) {
				n.process(t, "99", []string{"/usr/bin/kubelet", "--v=2"}, env)
			},
			want: map[string]Status{CheckKubelet: StatusFail, CheckProviderConfig: StatusSkip, CheckPlugin: StatusSkip},
			text: map[string][]string{CheckKubelet: {"calls no credential provider", "ecr-credential-provider install"}},
		},
		{
			name: "config file missing",
			setup: func(t *testing.T, n *node, env []string) {
				n.process(t, "1234", kubeletArgv, env)
			},
			want: map[string]Status{CheckKubelet: StatusOK, CheckProviderConfig: StatusFail, CheckProviderMatch: StatusSkip},
			text: map[string][]string{CheckProviderConfig: {eksConfig, "config print"}},
		},
		{
			name: "config the kubelet refuses",
			setup: func(t *testing.T, n *node, env []string) {
				n.process(t, "1234", kubeletArgv, env)
				n.file(t, eksConfig, `{"apiVersion":"kubelet.config.k8s.io/v1","kind":"CredentialProviderConfig","providers":[{"name":"ecr-credential-provider","matchImages":["*.dkr.ecr.*.amazonaws.com"],"defaultCacheDuration":"12h"}]}`, 0o644)
			},
			want: map[string]Status{CheckProviderConfig: StatusFail},
			text: map[string][]string{CheckProviderConfig: {"the kubelet would refuse it", "apiVersion", "config validate"}},
		},
		{
			name: "no pattern matches the image",
			setup: func(t *testing.T, n *node, env []string) {
				n.process(t, "1234", kubeletArgv, env)
				n.file(t, eksConfig, providerConfig(name, "*.dkr.ecr.*.amazonaws.com.cn", "*.ecr.*.amazonaws.com"), 0o644)
				n.plugin(t, eksBinDir, name)
			},
			want: map[string]Status{CheckProviderMatch: StatusFail, CheckProviderBinary: StatusSkip, CheckPlugin: StatusSkip},
			text: map[string][]string{CheckProviderMatch: {"no provider's matchImages matches " + regHost + "/app", "label count", `"*.dkr.ecr.*.amazonaws.com"`}},
		},
		{
			name: "binary under its release asset name",
			setup: func(t *testing.T, n *node, env []string) {
				n.process(t, "1234", kubeletArgv, env)
				n.file(t, eksConfig, providerConfig(name, ecrMatch...), 0o644)
				n.plugin(t, eksBinDir, name+"-linux-amd64")
			},
			want: map[string]Status{CheckProviderBinary: StatusFail, CheckPlugin: StatusSkip},
			text: map[string][]string{CheckProviderBinary: {"no such file", "ecr-credential-provider-linux-amd64", "rename it to " + name}},
		},
		{
			name: "binary not executable",
			setup: func(t *testing.T, n *node, env []string) {
				n.process(t, "1234", kubeletArgv, env)
				n.file(t, eksConfig, providerConfig(name, ecrMatch...), 0o644)
				n.file(t, filepath.Join(eksBinDir, name), "\x7fELF", 0o644)
			},
			want: map[string]Status{CheckProviderBinary: StatusFail},
			text: map[string][]string{CheckProviderBinary: {"not executable (mode 0644)", "chmod 0755 " + eksBinDir + "/" + name}},
		},
		{
			name: "plugin cannot get credentials",
			setup: func(t *testing.T, n *node, env []string) {
				// The kubelet's environment has IMDS switched off, this shell's does not.
				n.process(t, "1234", kubeletArgv, append(env, "AWS_EC2_METADATA_DISABLED=true"))
				n.file(t, eksConfig, providerConfig(name, ecrMatch...), 0o644)
				n.plugin(t, eksBinDir, name)
			},
			want: map[string]Status{CheckCredentials: StatusOK, CheckManifest: StatusOK, CheckPlugin: StatusFail},
			text: map[string][]string{CheckPlugin: {"exit status 1", "fake plugin:"}},
		},
		{
			name: "k3s agent with its defaults",
			setup: func(t *testing.T, n *node, env []string) {
				n.process(t, "77", []string{"/usr/local/bin/k3s", "agent"}, env)
				n.file(t, kubeletwiring.RancherConfig, "apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nproviders:\n"+
					"  - name: ecr-credential-provider\n    matchImages: [\"*.dkr.ecr.*.amazonaws.com\"]\n    defaultCacheDuration: 12h\n"+
					"    apiVersion: credentialprovider.kubelet.k8s.io/v1\n    env:\n      - name: "+pluginEnv+"\n        value: \"1\"\n", 0o644)
				n.plugin(t, kubeletwiring.RancherBinDir, name)
			},
			want:  map[string]Status{CheckKubelet: StatusOK, CheckProviderConfig: StatusOK, CheckProviderBinary: StatusOK, CheckPlugin: StatusOK},
			text:  map[string][]string{CheckKubelet: {"k3s (pid 77)", "from k3s default"}},
			facts: map[string]map[string]string{CheckKubelet: {"config": kubeletwiring.RancherConfig, "binDir": kubeletwiring.RancherBinDir, "process": "k3s"}},
			ok:    true,
		},
		{
			// config.yaml.d drop-ins apply after config.yaml: doctor reads
			// them as k3s (and install) do.
			name: "k3s with paths from a config.yaml.d drop-in",
			setup: func(t *testing.T, n *node, env []string) {
				n.process(t, "77", []string{"/usr/local/bin/k3s", "server"}, env)
				n.file(t, "/etc/rancher/k3s/config.yaml", "image-credential-provider-config: /etc/wrong.yaml\n", 0o644)
				n.file(t, "/etc/rancher/k3s/config.yaml.d/50-cp.yaml", "image-credential-provider-config: /etc/cp/config.yaml\nimage-credential-provider-bin-dir: /etc/cp/bin\n", 0o644)
				n.file(t, "/etc/cp/config.yaml", "apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nproviders:\n"+
					"  - name: ecr-credential-provider\n    matchImages: [\"*.dkr.ecr.*.amazonaws.com\"]\n    defaultCacheDuration: 12h\n"+
					"    apiVersion: credentialprovider.kubelet.k8s.io/v1\n    env:\n      - name: "+pluginEnv+"\n        value: \"1\"\n", 0o644)
				n.plugin(t, "/etc/cp/bin", name)
			},
			want:  map[string]Status{CheckKubelet: StatusOK, CheckProviderConfig: StatusOK, CheckProviderBinary: StatusOK},
			text:  map[string][]string{CheckKubelet: {"from /etc/rancher/k3s/config.yaml.d/50-cp.yaml"}},
			facts: map[string]map[string]string{CheckKubelet: {"config": "/etc/cp/config.yaml", "binDir": "/etc/cp/bin"}},
			ok:    true,
		},
		{
			name: "k3s with a kubelet-arg override and a missing file",
			setup: func(t *testing.T, n *node, env []string) {
				n.process(t, "77", []string{"/usr/local/bin/k3s", "server", "--kubelet-arg=image-credential-provider-config=/etc/custom/cp.yaml"}, env)
				n.file(t, "/etc/rancher/k3s/config.yaml", "image-credential-provider-bin-dir: /opt/cp/bin\n", 0o644)
			},
			want:  map[string]Status{CheckKubelet: StatusOK, CheckProviderConfig: StatusFail},
			text:  map[string][]string{CheckProviderConfig: {"/etc/custom/cp.yaml", "k3s passes the provider flags"}},
			facts: map[string]map[string]string{CheckKubelet: {"config": "/etc/custom/cp.yaml", "binDir": "/opt/cp/bin"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			n := newNode(t)
			tt.setup(t, n, os.Environ())
			o := w.options(t, regHost+"/app:v1")
			o.ProcRoot, o.Root = n.proc, n.root
			rep, err := Run(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			text, _ := render(t, rep, w.password(), providerSecret)
			t.Log("\n" + text)
			for id, st := range tt.want {
				if c := mustCheck(t, rep, id); c.Status != st {
					t.Errorf("%s: %s, want %s: %s", id, c.Status, st, c.Summary)
				}
			}
			for id, subs := range tt.text {
				c := mustCheck(t, rep, id)
				all := c.Summary + "\n" + c.Remedy + "\n" + strings.Join(c.Notes, "\n")
				for _, s := range subs {
					if !strings.Contains(all, s) {
						t.Errorf("%s lacks %q:\n%s", id, s, all)
					}
				}
			}
			for id, facts := range tt.facts {
				c := mustCheck(t, rep, id)
				for k, v := range facts {
					if c.Facts[k] != v {
						t.Errorf("%s fact %s = %q, want %q", id, k, c.Facts[k], v)
					}
				}
			}
			if rep.OK != tt.ok {
				t.Errorf("report OK = %v, want %v:\n%s", rep.OK, tt.ok, text)
			}
		})
	}
}

// --config and --bin-dir check a config without a kubelet; the plugin runs
// only when asked to.
func TestExplicitConfigAndRunPlugin(t *testing.T) {
	w := newWorld(t)
	n := newNode(t)
	cfg := filepath.Join(n.root, "cp.json")
	must(t, os.WriteFile(cfg, []byte(providerConfig("ecr-credential-provider", "*.dkr.ecr.*.amazonaws.com")), 0o644))
	n.plugin(t, "/bin", "ecr-credential-provider")
	for _, run := range []bool{false, true} {
		o := w.options(t, regHost+"/app:v1")
		o.ProcRoot, o.ConfigPath, o.BinDir, o.RunPlugin = n.proc, cfg, filepath.Join(n.root, "bin"), run
		rep, err := Run(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		text, _ := render(t, rep, w.password(), providerSecret)
		if c := mustCheck(t, rep, CheckKubelet); c.Status != StatusSkip {
			t.Errorf("kubelet: %s, want skipped (no process)", c.Status)
		}
		for _, id := range []string{CheckProviderConfig, CheckProviderMatch, CheckProviderBinary} {
			if c := mustCheck(t, rep, id); c.Status != StatusOK {
				t.Errorf("run-plugin=%v: %s: %s %s", run, id, c.Status, c.Summary)
			}
		}
		want := StatusSkip
		if run {
			want = StatusOK
		}
		if c := mustCheck(t, rep, CheckPlugin); c.Status != want {
			t.Errorf("run-plugin=%v: plugin %s, want %s:\n%s", run, c.Status, want, text)
		}
	}
}
