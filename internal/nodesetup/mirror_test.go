package nodesetup

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/kubecred/ecr-credential-provider/internal/registrymap"
)

const (
	ptcECR   = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
	ptcRule  = "docker.io=" + ptcECR + "/docker-hub"
	ptcGHCR  = "ghcr.io=" + ptcECR + "/github"
	ptcHosts = "/etc/containerd/certs.d/docker.io/hosts.toml"
	// An operator's own hosts.toml for another registry: never ours.
	quayHosts = "server = \"https://quay.io\"\n\n[host.\"https://quay-mirror.internal\"]\n  capabilities = [\"pull\"]\n"
)

func rules(t *testing.T, entries ...string) []registrymap.Rule {
	t.Helper()
	m, err := registrymap.Parse(entries)
	if err != nil {
		t.Fatal(err)
	}
	return m.Rules()
}

func writeFile(t *testing.T, root, rel, content string) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// containerdV2 and containerdV3 are containerd 1.x's and 2.x's configs
// with the registry's config_path set.
const (
	containerdV2 = "version = 2\n\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n"
	containerdV3 = "version = 3\n\n[plugins.\"io.containerd.cri.v1.images\".registry]\n  config_path = \"/etc/containerd/certs.d:/etc/docker/certs.d\"\n"
)

// providerEntry reads our provider's args and matchImages from the config.
func providerEntry(t *testing.T, root, config string) (args, images []string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, config))
	if err != nil {
		t.Fatal(err)
	}
	f, err := decodeStrict(config, b)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Config.Providers {
		if p.Name == "ecr-credential-provider" {
			return p.Args, p.MatchImages
		}
	}
	t.Fatalf("no ecr-credential-provider entry in %s", config)
	return nil, nil
}

func TestPullThroughCacheInstallUninstall(t *testing.T) {
	tests := []struct {
		name, fixture string
		prepare       map[string]string // files written before install
		fallback      bool
		config        string
		mirrorFile    string
		// wantIn are strings the mirror file must hold; wantNot must not.
		wantIn, wantNot []string
	}{
		{name: "kubeadm-debian-v2", fixture: "kubeadm-debian", config: DefaultConfig, mirrorFile: ptcHosts,
			prepare: map[string]string{containerdConfig: containerdV2, "/etc/containerd/certs.d/quay.io/hosts.toml": quayHosts},
			wantIn:  []string{`server = "https://` + ptcECR + `/v2/docker-hub"`, `[host."https://` + ptcECR + `/v2/docker-hub"]`, `capabilities = ["pull", "resolve"]`, "override_path = true"},
			wantNot: []string{"registry-1.docker.io"}},
		{name: "kubeadm-rhel-v3", fixture: "kubeadm-rhel", config: DefaultConfig, mirrorFile: ptcHosts,
			prepare: map[string]string{containerdConfig: containerdV3},
			wantIn:  []string{`server = "https://` + ptcECR + `/v2/docker-hub"`},
			wantNot: []string{"registry-1.docker.io"}},
		{name: "systemd-fallback", fixture: "systemd", config: DefaultConfig, mirrorFile: ptcHosts, fallback: true,
			prepare: map[string]string{containerdConfig: containerdV2},
			wantIn:  []string{`server = "https://registry-1.docker.io"`, `[host."https://` + ptcECR + `/v2/docker-hub"]`, "WARNING"}},
		{name: "k3s", fixture: "k3s", config: RancherConfig, mirrorFile: "/etc/rancher/k3s/registries.yaml",
			prepare: map[string]string{"/etc/rancher/k3s/config.yaml": "disable-default-registry-endpoint: true\n"},
			wantIn:  []string{"docker.io:", "https://" + ptcECR, "docker-hub/$1"}},
		{name: "rke2-operator-mirrors", fixture: "rke2", config: RancherConfig, mirrorFile: "/etc/rancher/rke2/registries.yaml", fallback: true,
			prepare: map[string]string{"/etc/rancher/rke2/registries.yaml": "# the operator's mirrors\nmirrors:\n  quay.io:\n    endpoint:\n      - https://quay-mirror.internal\n"},
			wantIn:  []string{"# the operator's mirrors", "docker.io:", "quay.io:", "https://quay-mirror.internal"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			root := nodeRoot(t, tt.fixture)
			for p, c := range tt.prepare {
				writeFile(t, root, p, c)
			}
			before := snapshot(t, root)
			o := Options{Root: root, Binary: writeBinary(t, fakeBinary), PullThroughCache: rules(t, ptcRule, ptcGHCR), PullThroughCacheFallback: tt.fallback}
			res, err := Install(ctx, o)
			if err != nil {
				t.Fatalf("install: %v", err)
			}
			warned := slices.ContainsFunc(res.Notes, func(n string) bool { return strings.Contains(n, "WARNING") })
			if warned != tt.fallback {
				t.Errorf("fallback %v, warning in notes %v: %q", tt.fallback, warned, res.Notes)
			}
			installed := snapshot(t, root)
			mirror := installed[tt.mirrorFile].Data
			for _, w := range tt.wantIn {
				if !strings.Contains(mirror, w) {
					t.Errorf("%s lacks %q:\n%s", tt.mirrorFile, w, mirror)
				}
			}
			for _, w := range tt.wantNot {
				if strings.Contains(mirror, w) {
					t.Errorf("%s has %q (a fallback to the source):\n%s", tt.mirrorFile, w, mirror)
				}
			}
			if strings.HasSuffix(tt.mirrorFile, ".toml") {
				if g := installed["/etc/containerd/certs.d/ghcr.io/hosts.toml"].Data; !strings.Contains(g, "/v2/github") {
					t.Errorf("ghcr.io's hosts.toml: %q", g)
				}
			} else {
				var doc struct {
					Mirrors map[string]struct {
						Endpoint []string          `json:"endpoint"`
						Rewrite  map[string]string `json:"rewrite"`
					} `json:"mirrors"`
				}
				if err := yaml.Unmarshal([]byte(mirror), &doc); err != nil {
					t.Fatal(err)
				}
				d := doc.Mirrors["docker.io"]
				if !slices.Equal(d.Endpoint, []string{"https://" + ptcECR}) || d.Rewrite["^(.*)$"] != "docker-hub/$1" {
					t.Errorf("docker.io mirror %+v", d)
				}
			}
			args, images := providerEntry(t, root, tt.config)
			for _, a := range []string{"--registry-map=" + ptcRule, "--registry-map=" + ptcGHCR} {
				if !slices.Contains(args, a) {
					t.Errorf("provider args %q lack %s", args, a)
				}
			}
			if !slices.Contains(images, "docker.io") || !slices.Contains(images, "ghcr.io") {
				t.Errorf("matchImages %q lack the sources", images)
			}

			again, err := Install(ctx, o)
			if err != nil || !again.Unchanged {
				t.Errorf("reinstall: %+v, %v", again, err)
			}
			assertTree(t, "after reinstall", installed, snapshot(t, root))

			un, err := Uninstall(ctx, Options{Root: root})
			if err != nil || un.Incomplete {
				t.Fatalf("uninstall: %+v, %v", un, err)
			}
			assertTree(t, "after uninstall (want the original tree and the lock file)", withLock(before), snapshot(t, root))
		})
	}
}

func TestPullThroughCacheKeepsOperatorFiles(t *testing.T) {
	ctx := context.Background()
	bin := writeBinary(t, fakeBinary)
	kubeadm := func(t *testing.T) string {
		root := nodeRoot(t, "kubeadm-debian")
		writeFile(t, root, containerdConfig, containerdV2)
		return root
	}

	t.Run("no config_path: says what to add, changes nothing", func(t *testing.T) {
		root := nodeRoot(t, "kubeadm-debian")
		writeFile(t, root, containerdConfig, "version = 2\n\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"registry.k8s.io/pause:3.10\"\n")
		refuse(t, Options{Root: root, Binary: bin, PullThroughCache: rules(t, ptcRule)},
			"[plugins.\"io.containerd.grpc.v1.cri\".registry]", `config_path = "/etc/containerd/certs.d"`, "ECR token")
	})
	t.Run("no containerd config: both schemas named", func(t *testing.T) {
		root := nodeRoot(t, "kubeadm-debian")
		refuse(t, Options{Root: root, Binary: bin, PullThroughCache: rules(t, ptcRule)},
			"io.containerd.cri.v1.images", "io.containerd.grpc.v1.cri", "there is no "+containerdConfig)
	})
	t.Run("k3s without disable-default-registry-endpoint", func(t *testing.T) {
		root := nodeRoot(t, "k3s")
		refuse(t, Options{Root: root, Binary: bin, PullThroughCache: rules(t, ptcRule)},
			"disable-default-registry-endpoint: true", "--pull-through-cache-fallback")
	})
	t.Run("the operator's hosts.toml for the source", func(t *testing.T) {
		root := kubeadm(t)
		writeFile(t, root, ptcHosts, quayHosts)
		refuse(t, Options{Root: root, Binary: bin, PullThroughCache: rules(t, ptcRule)}, ptcHosts, "--force")
		// With --force it is replaced, and uninstall puts it back.
		before := snapshot(t, root)
		if _, err := Install(ctx, Options{Root: root, Binary: bin, Force: true, PullThroughCache: rules(t, ptcRule)}); err != nil {
			t.Fatal(err)
		}
		if got := snapshot(t, root)[ptcHosts].Data; !strings.Contains(got, ptcECR) {
			t.Errorf("--force did not write the mirror: %q", got)
		}
		if _, err := Uninstall(ctx, Options{Root: root}); err != nil {
			t.Fatal(err)
		}
		assertTree(t, "after uninstall", before, snapshot(t, root))
	})
	t.Run("an edited hosts.toml stays", func(t *testing.T) {
		root := kubeadm(t)
		o := Options{Root: root, Binary: bin, PullThroughCache: rules(t, ptcRule)}
		if _, err := Install(ctx, o); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(root, ptcHosts)
		b, _ := os.ReadFile(p)
		edited := string(b) + "  ca = \"/etc/pki/ecr-proxy.pem\"\n"
		os.WriteFile(p, []byte(edited), 0o644)
		res, err := Install(ctx, o)
		if err != nil {
			t.Fatalf("reinstall: %v", err)
		}
		if b, _ := os.ReadFile(p); string(b) != edited {
			t.Errorf("reinstall overwrote the operator's edit:\n%s", b)
		}
		if !slices.ContainsFunc(res.Notes, func(n string) bool { return strings.Contains(n, "edited since install") }) {
			t.Errorf("reinstall did not say it kept the edit: %q", res.Notes)
		}
		un, err := Uninstall(ctx, Options{Root: root})
		if err != nil || !un.Incomplete {
			t.Fatalf("uninstall: %+v, %v; want incomplete", un, err)
		}
		if b, _ := os.ReadFile(p); string(b) != edited {
			t.Errorf("uninstall removed or changed the edited hosts.toml: %q", b)
		}
		if _, err := os.Stat(filepath.Join(root, DefaultConfig)); !os.IsNotExist(err) {
			t.Errorf("the provider config (and its map) is still there: %v", err)
		}
	})
	t.Run("reinstall without the cache takes the map out", func(t *testing.T) {
		root := kubeadm(t)
		if _, err := Install(ctx, Options{Root: root, Binary: bin, PullThroughCache: rules(t, ptcRule, ptcGHCR)}); err != nil {
			t.Fatal(err)
		}
		// The operator adds an arg of their own to our entry.
		replaceIn(t, root, DefaultConfig, "  args:\n", "  args:\n  - --cache-dir=/var/cache/ecr\n")
		if _, err := Install(ctx, Options{Root: root, Binary: bin, PullThroughCache: rules(t, ptcGHCR)}); err != nil {
			t.Fatal(err)
		}
		args, images := providerEntry(t, root, DefaultConfig)
		if !slices.Equal(args, []string{"--cache-dir=/var/cache/ecr", "--registry-map=" + ptcGHCR}) || slices.Contains(images, "docker.io") || !slices.Contains(images, "ghcr.io") {
			t.Errorf("after dropping docker.io: args %q, matchImages %q", args, images)
		}
		if _, err := os.Stat(filepath.Join(root, ptcHosts)); !os.IsNotExist(err) {
			t.Errorf("docker.io's hosts.toml is still there: %v", err)
		}
		if _, err := os.Stat(filepath.Join(root, "etc/containerd/certs.d/ghcr.io/hosts.toml")); err != nil {
			t.Errorf("ghcr.io's hosts.toml: %v", err)
		}
	})
	t.Run("edited registries.yaml: only our mirror goes", func(t *testing.T) {
		root := nodeRoot(t, "k3s")
		writeFile(t, root, "/etc/rancher/k3s/config.yaml", "disable-default-registry-endpoint: true\n")
		if _, err := Install(ctx, Options{Root: root, Binary: bin, PullThroughCache: rules(t, ptcRule)}); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(root, "etc/rancher/k3s/registries.yaml")
		b, _ := os.ReadFile(p)
		edited := strings.Replace(string(b), "mirrors:\n", "mirrors:\n  # the operator's own mirror\n  quay.io:\n    endpoint: [\"https://quay-mirror.internal\"]\n", 1) +
			"configs:\n  quay.io:\n    tls:\n      insecure_skip_verify: false\n"
		os.WriteFile(p, []byte(edited), 0o644)
		if un, err := Uninstall(ctx, Options{Root: root}); err != nil || un.Incomplete {
			t.Fatalf("uninstall: %+v, %v", un, err)
		}
		b, err := os.ReadFile(p)
		if err != nil || strings.Contains(string(b), "docker.io") || strings.Contains(string(b), ptcECR) ||
			!strings.Contains(string(b), "# the operator's own mirror\n  quay.io:\n    endpoint: [\"https://quay-mirror.internal\"]\n") || !strings.Contains(string(b), "insecure_skip_verify: false") {
			t.Errorf("registries.yaml after uninstall (want the operator's configs, not our mirror): %q, %v", b, err)
		}
	})
}

func TestPullThroughCacheRefusesASourceMappedTwice(t *testing.T) {
	bin := writeBinary(t, fakeBinary)
	for name, entry := range map[string]string{
		"args": "  args: [\"--registry-map\", \"docker.io=210987654321.dkr.ecr.eu-west-1.amazonaws.com/hub\"]\n",
		"env":  "  env:\n  - name: ECR_CREDENTIAL_PROVIDER_REGISTRY_MAP\n    value: quay.io=210987654321.dkr.ecr.eu-west-1.amazonaws.com/q,docker.io=210987654321.dkr.ecr.eu-west-1.amazonaws.com/hub\n",
	} {
		t.Run(name, func(t *testing.T) {
			root := nodeRoot(t, "kubeadm-debian")
			writeFile(t, root, containerdConfig, containerdV2)
			writeFile(t, root, DefaultConfig, "apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nproviders:\n- name: ecr-credential-provider\n  matchImages: [\"*.dkr.ecr.*.amazonaws.com\", \"docker.io\"]\n  defaultCacheDuration: 12h\n  apiVersion: credentialprovider.kubelet.k8s.io/v1\n"+entry)
			refuse(t, Options{Root: root, Binary: bin, PullThroughCache: rules(t, ptcRule)}, "already maps docker.io", "210987654321.dkr.ecr.eu-west-1.amazonaws.com/hub")
		})
	}
}
