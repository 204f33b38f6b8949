package ecrhost_test

import (
	"strings"
	"testing"

	"github.com/kubecred/ecr-credential-provider/internal/ecrhost"
)

// The node's ECR password goes to ECR hosts and to the operator's own
// registries, never to a public registry, a loopback or IP literal, or a
// name made to look like ECR.
func TestPolicyRefusesForeignHosts(t *testing.T) {
	refused := []string{
		"nginx", "library/nginx:1", "docker.io/library/nginx", "index.docker.io/x/y",
		"registry-1.docker.io/x/y", "registry.hub.docker.com/x/y", "DOCKER.IO/x/y",
		"ghcr.io/o/app", "quay.io/o/app", "registry.k8s.io/pause:3.9", "k8s.gcr.io/pause",
		"gcr.io/p/app", "eu.gcr.io/p/app", "us-docker.pkg.dev/p/r/app", "mcr.microsoft.com/dotnet/runtime",
		"registry.gitlab.com/g/app", "nvcr.io/nvidia/cuda", "myreg.azurecr.io/app", "cgr.dev/chainguard/static",
		"localhost/app", "localhost:5000/app", "LOCALHOST:5000/app", "foo.localhost:5000/app", "localhost.localdomain:5000/x",
		"127.0.0.1:5000/app", "10.0.0.1/app", "[::1]:5000/app", "[fe80::1]/app", "169.254.169.254/x", "2130706433:80/x",
		"123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.example/app",
		"public.ecr.aws.evil.example/x/y",
		"123456789012.dkr.ecr.cn-north-1.amazonaws.com/app",
		"evil.amazonaws.com/app",
		"dkr.ecr.us-east-1.amazonaws.com/app",
	}
	// A host with a trailing dot is no valid reference: the kubelet
	// refuses it, and so does the plugin, before any policy.
	for _, img := range []string{"123456789012.dkr.ecr.us-east-1.amazonaws.com./app", "registry.example.com./app"} {
		if reg, err := ecrhost.Parse(img); err == nil {
			t.Errorf("Parse(%q) = %+v, want an error", img, reg)
		}
	}
	for _, img := range refused {
		reg, err := ecrhost.Parse(img)
		if err != nil {
			t.Errorf("Parse(%q): %v", img, err)
			continue
		}
		err = ecrhost.Policy{}.Check(reg)
		if err == nil {
			t.Errorf("Check(%q) allowed the node's token for host %q", img, reg.Host)
			continue
		}
		if !strings.Contains(err.Error(), "matchImages") {
			t.Errorf("Check(%q) = %q: does not name matchImages as the thing to fix", img, err)
		}
	}
	allowed := []string{
		"123456789012.dkr.ecr.us-east-1.amazonaws.com/app",
		"123456789012.dkr-ecr-fips.us-west-1.on.aws/app",
		"123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/app",
		"public.ecr.aws/nginx/nginx", "ecr-public.aws.com/a/b",
		"registry.example.com/app", "registry.example.com:5000/app", "ecr.corp.internal/app",
	}
	for _, img := range allowed {
		reg, err := ecrhost.Parse(img)
		if err != nil {
			t.Fatal(err)
		}
		if err := (ecrhost.Policy{}).Check(reg); err != nil {
			t.Errorf("Check(%q): %v", img, err)
		}
	}
}

func FuzzPolicy(f *testing.F) {
	for _, s := range []string{"123456789012.dkr.ecr.us-east-1.amazonaws.com/app", "nginx", "127.0.0.1:5000/x", "a.amazonaws.com.b/x", "[::1]/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, image string) {
		reg, err := ecrhost.Parse(image)
		if err != nil {
			return
		}
		err = ecrhost.Policy{}.Check(reg)
		name := strings.ToLower(reg.Hostname)
		if err == nil && (strings.HasSuffix(name, ".") || name == "localhost" || strings.Contains(name, "docker.io") ||
			!reg.ECR && strings.Contains(name, "amazonaws")) {
			t.Fatalf("allowed %q (host %q)", image, reg.Host)
		}
	})
}
