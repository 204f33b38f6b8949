package main_test

import (
	"strings"
	"testing"

	"github.com/kubecred/ecr-credential-provider/internal/awsemu"
	"github.com/kubecred/ecr-credential-provider/internal/protocol"
)

// ecrRegions lists the region of every GetAuthorizationToken the emulator saw.
func ecrRegions(emu *awsemu.Server) []string {
	var out []string
	for _, rec := range emu.Requests() {
		if rec.Target == awsemu.TargetECR {
			out = append(out, rec.Region)
		}
	}
	return out
}

func TestRegistryMapFetchesForTheMappedRegistry(t *testing.T) {
	n := newNode(t, awsemu.Options{RegionalPasswords: true})
	node := n.emu.InstanceARN()
	args := []string{
		"--registry-map", "registry.example.com=210987654321.dkr.ecr.eu-west-1.amazonaws.com",
		"--registry-map", "docker.io=123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub",
	}
	// The SDK's own region says us-west-2: a custom domain mapped to
	// eu-west-1 must get eu-west-1's token, not the default region's.
	env := []string{"AWS_REGION=us-west-2"}
	r := n.runEnv(env, request(protocol.V1, "registry.example.com/team/app:v1"), args...)
	if r.code != 0 || len(r.resp.Auth) != 1 {
		t.Fatalf("exit %d: %s %v", r.code, r.stderr, r.resp.Auth)
	}
	if got, want := r.resp.Auth["registry.example.com"].Password, n.emu.PasswordIn(node, "eu-west-1"); got != want || want == n.emu.PasswordIn(node, "us-west-2") {
		t.Fatalf("registry.example.com got password %q; want eu-west-1's %q, not the SDK region's", got, want)
	}
	if got := ecrRegions(n.emu); len(got) != 1 || got[0] != "eu-west-1" {
		t.Fatalf("GetAuthorizationToken regions = %v; want [eu-west-1]", got)
	}

	r = n.runEnv(env, request(protocol.V1, "docker.io/library/nginx:latest"), args...)
	if r.code != 0 || r.resp.Auth["docker.io"].Password != n.emu.PasswordIn(node, "us-east-1") || len(r.resp.Auth) != 1 {
		t.Fatalf("exit %d: %s %v", r.code, r.stderr, r.resp.Auth)
	}
	if got := ecrRegions(n.emu); len(got) != 2 || got[1] != "us-east-1" {
		t.Fatalf("GetAuthorizationToken regions = %v; want a second call in us-east-1", got)
	}

	// A second pull of another Docker Hub image is a cache hit.
	r = n.runEnv(env, request(protocol.V1, "docker.io/library/busybox:latest"), args...)
	if r.code != 0 || r.resp.Auth["docker.io"].Password != n.emu.PasswordIn(node, "us-east-1") {
		t.Fatalf("exit %d: %s %v", r.code, r.stderr, r.resp.Auth)
	}
	if got := ecrRegions(n.emu); len(got) != 2 {
		t.Fatalf("GetAuthorizationToken regions = %v; want no new call for a cached mapped registry", got)
	}
}

func TestBadRegistryMapFailsWithOneLine(t *testing.T) {
	n := newNode(t, awsemu.Options{})
	for _, tc := range []struct {
		args []string
		env  []string
	}{
		{args: []string{"--registry-map", "docker.io=public.ecr.aws/docker"}},
		{env: []string{"ECR_CREDENTIAL_PROVIDER_REGISTRY_MAP=docker.io"}},
		{args: []string{"--registry-map-file", "/nonexistent/map"}},
	} {
		r := n.runEnv(tc.env, request(protocol.V1, privateImg), tc.args...)
		if r.code == 0 || r.stdout != "" {
			t.Errorf("%v %v: exit %d, stdout %q; want a failure and nothing on stdout", tc.args, tc.env, r.code, r.stdout)
		}
		if lines := strings.Count(strings.TrimSpace(r.stderr), "\n") + 1; lines != 1 || !strings.Contains(r.stderr, "registry map") {
			t.Errorf("%v %v: stderr = %q; want one line naming the registry map", tc.args, tc.env, r.stderr)
		}
	}
	if got := ecrRegions(n.emu); len(got) != 0 {
		t.Errorf("a bad map still called ECR: %v", got)
	}
}
