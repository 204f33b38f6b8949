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
