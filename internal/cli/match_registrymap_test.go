package cli

import (
	"strings"
	"testing"
)

func TestMatchShowsTheRegistryMap(t *testing.T) {
	const config = `apiVersion: kubelet.config.k8s.io/v1
kind: CredentialProviderConfig
providers:
  - name: ecr-credential-provider
    matchImages: ["*.dkr.ecr.*.amazonaws.com", "docker.io", "registry.example.com"]
    defaultCacheDuration: 12h
    apiVersion: credentialprovider.kubelet.k8s.io/v1
    args: ["--registry-map=docker.io=123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub", "--registry-map", "registry.example.com=210987654321.dkr.ecr.eu-west-1.amazonaws.com"]
`
	cfg := writeConfig(t, t.TempDir(), "c.yaml", config)
	code, out, errOut := runCmd(runMatch, "--config", cfg, "nginx:1.27", "registry.example.com/team/app:v1", "123456789012.dkr.ecr.us-east-1.amazonaws.com/app")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q, stdout:\n%s", code, errOut, out)
	}
	for _, want := range []string{
		"token of 123456789012.dkr.ecr.us-east-1.amazonaws.com, where the runtime must pull it as 123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub/library/nginx",
		"token of 210987654321.dkr.ecr.eu-west-1.amazonaws.com, where the runtime must pull it as 210987654321.dkr.ecr.eu-west-1.amazonaws.com/team/app",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "registry map:"); n != 2 {
		t.Errorf("%d registry map lines; want 2 (an ECR image is not mapped):\n%s", n, out)
	}

	bad := writeConfig(t, t.TempDir(), "c.yaml", strings.Replace(config, "210987654321.dkr.ecr.eu-west-1.amazonaws.com", "public.ecr.aws", 1))
	code, out, _ = runCmd(runMatch, "--config", bad, "nginx")
	if code != 1 || !strings.Contains(out, "refuses its registry map, so this pull fails") {
		t.Errorf("bad map: exit %d, stdout:\n%s", code, out)
	}
}
