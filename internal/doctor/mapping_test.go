package doctor

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubecred/ecr-credential-provider/internal/awsemu"
)

// TestMappedImage: a docker.io image the provider's registry map sends to
// the pull-through cache under prefix docker-hub is checked as that ECR
// image, and a repository the cache has not created says what the node
// needs to create it.
func TestMappedImage(t *testing.T) {
	const rule = "docker.io=" + regHost + "/docker-hub"
	tests := []struct {
		name, image string
		args        string // the provider's args
		ok          bool
		mapCheck    Status
		manifest    []string // in the manifest check's summary, remedy and policy
		action      string   // the manifest check's missingAction fact
	}{
		{name: "cached", image: "docker.io/library/app:v1", args: `["--registry-map=` + rule + `"]`, ok: true, mapCheck: StatusOK,
			manifest: []string{"tag v1: OCI manifest"}},
		{name: "short name", image: "app:v1", args: `["--registry-map", "` + rule + `"]`, ok: true, mapCheck: StatusOK,
			manifest: []string{"tag v1: OCI manifest"}},
		{name: "not cached, no permission to import", image: "docker.io/library/new:v1", args: `["--registry-map=` + rule + `"]`, mapCheck: StatusOK,
			manifest: []string{"403", "lacks ecr:BatchImportUpstreamImage", PolicyPullOnly, `"ecr:CreateRepository"`, "repository/docker-hub/*"}, action: "ecr:BatchImportUpstreamImage"},
		{name: "not cached, repository missing", image: "docker.io/library/gone:v1", args: `["--registry-map=` + rule + `"]`, mapCheck: StatusOK,
			manifest: []string{"does not exist in the pull-through cache yet", "ecr:BatchImportUpstreamImage and ecr:CreateRepository", "describe-pull-through-cache-rules", "docker.io/library/gone"}},
		// A custom domain (a CNAME to ECR): no prefix, the same repository.
		{name: "custom domain", image: "registry.example.com/app:v1", args: `["--registry-map=registry.example.com=` + regHost + `"]`, ok: true, mapCheck: StatusOK,
			manifest: []string{"tag v1: OCI manifest"}},
		{name: "bad map", image: "docker.io/library/app:v1", args: `["--registry-map=docker.io=ghcr.io/x"]`, mapCheck: StatusFail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			cfg := filepath.Join(t.TempDir(), "config.yaml")
			os.WriteFile(cfg, []byte(`apiVersion: kubelet.config.k8s.io/v1
kind: CredentialProviderConfig
providers:
- name: ecr-credential-provider
  matchImages: ["*.dkr.ecr.*.amazonaws.com", "docker.io", "registry.example.com"]
  defaultCacheDuration: 12h
  apiVersion: credentialprovider.kubelet.k8s.io/v1
  args: `+tt.args+"\n"), 0o644)
			o := w.options(t, tt.image)
			o.ConfigPath = cfg
			rep, err := Run(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			text, _ := render(t, rep, w.password())
			t.Log("\n" + text)
			if rep.OK != tt.ok {
				t.Errorf("OK = %v, want %v", rep.OK, tt.ok)
			}
			mc := mustCheck(t, rep, CheckRegistryMap)
			if mc.Status != tt.mapCheck {
				t.Fatalf("registry-map check %s, want %s: %s", mc.Status, tt.mapCheck, mc.Summary)
			}
			st := w.emu.Stats().Op(awsemu.TargetECR, "GetAuthorizationToken")
			if tt.mapCheck != StatusOK {
				if st.Requests != 0 {
					t.Errorf("GetAuthorizationToken called %d times for a map the plugin refuses", st.Requests)
				}
				return
			}
			wantRepo := "docker-hub/library/"
			if strings.HasPrefix(tt.image, "registry.example.com/") {
				wantRepo = "app"
			}
			if !strings.HasPrefix(mc.Facts["repository"], wantRepo) || mc.Facts["target"] != regHost || mc.Facts["rule"] == "" || !strings.Contains(tt.args, mc.Facts["rule"]) {
				t.Errorf("registry-map facts %v", mc.Facts)
			}
			if got := mustCheck(t, rep, CheckImage); got.Status != StatusOK || !strings.Contains(got.Summary, "mapped to "+regHost+"/"+wantRepo) {
				t.Errorf("image check %s: %s", got.Status, got.Summary)
			}
			if st.Status[200] != 1 {
				t.Errorf("GetAuthorizationToken %+v, want one call for the mapped registry", st)
			}
			m := mustCheck(t, rep, CheckManifest)
			all := m.Summary + "\n" + m.Remedy + "\n" + m.Policy
			for _, want := range tt.manifest {
				if !strings.Contains(all, want) {
					t.Errorf("manifest check lacks %q:\n%s", want, all)
				}
			}
			if m.Facts["missingAction"] != tt.action {
				t.Errorf("missingAction %q, want %q", m.Facts["missingAction"], tt.action)
			}
		})
	}
}

// TestRuntimeMirror: the doctor reads containerd's config_path and the
// source's hosts.toml on the node, and fails a runtime that would send
// the node's ECR token anywhere but the cache.
func TestRuntimeMirror(t *testing.T) {
	const (
		cache    = "https://" + regHost + "/v2/docker-hub"
		v2       = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n"
		noFallbk = "server = \"" + cache + "\"\noverride_path = true\n[host.\"" + cache + "\"]\n  capabilities = [\"pull\", \"resolve\"]\n  override_path = true\n"
	)
	tests := []struct {
		name          string
		config, hosts string // "" leaves the file out
		status        Status
		advisory      bool
		says          []string // in summary and remedy
	}{
		{name: "install's hosts.toml", config: v2, hosts: noFallbk, status: StatusOK, says: []string{"only to the cache"}},
		{name: "fallback to Docker Hub", config: v2, hosts: "server = \"https://registry-1.docker.io\"\n[host.\"" + cache + "\"]\n  override_path = true\n",
			status: StatusFail, advisory: true, says: []string{"falls back to https://registry-1.docker.io", "ECR token", "install --pull-through-cache docker.io=" + regHost + "/docker-hub"}},
		{name: "no server: the default is the fallback", config: v2, hosts: "[host.\"" + cache + "\"]\n  override_path = true\n",
			status: StatusFail, advisory: true, says: []string{"falls back to https://registry-1.docker.io"}},
		{name: "another mirror", config: v2, hosts: "server = \"https://mirror.example.com\"\n",
			status: StatusFail, says: []string{"not the cache", "https://mirror.example.com"}},
		{name: "no hosts.toml", config: v2, status: StatusFail, says: []string{"/etc/containerd/certs.d/docker.io/hosts.toml", "from docker.io itself", "install --pull-through-cache"}},
		{name: "no config_path", config: "version = 2\n", status: StatusFail,
			says: []string{"reads no hosts.toml", "[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			root := t.TempDir()
			for p, c := range map[string]string{"etc/containerd/config.toml": tt.config, "etc/containerd/certs.d/docker.io/hosts.toml": tt.hosts} {
				if c == "" {
					continue
				}
				os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755)
				os.WriteFile(filepath.Join(root, p), []byte(c), 0o644)
			}
			cfg := filepath.Join(t.TempDir(), "config.yaml")
			os.WriteFile(cfg, []byte("apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nproviders:\n- name: ecr-credential-provider\n  matchImages: [\"docker.io\"]\n  defaultCacheDuration: 12h\n  apiVersion: credentialprovider.kubelet.k8s.io/v1\n  args: [\"--registry-map=docker.io="+regHost+"/docker-hub\"]\n"), 0o644)
			o := w.options(t, "docker.io/library/app:v1")
			o.ConfigPath, o.Root = cfg, root
			rep, err := Run(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			c := mustCheck(t, rep, CheckRuntimeMirror)
			if c.Status != tt.status || c.Advisory != tt.advisory {
				t.Errorf("runtime-mirror %s (advisory %v), want %s (%v): %s", c.Status, c.Advisory, tt.status, tt.advisory, c.Summary)
			}
			for _, s := range tt.says {
				if !strings.Contains(c.Summary+"\n"+c.Remedy, s) {
					t.Errorf("runtime-mirror does not say %q:\n%s\n%s", s, c.Summary, c.Remedy)
				}
			}
			// The image itself is cached and pullable: only a failure that
			// is not advisory fails the verdict.
			if want := tt.status == StatusOK || tt.advisory; rep.OK != want {
				t.Errorf("verdict OK = %v, want %v: %s", rep.OK, want, rep.Verdict)
			}
		})
	}
}
