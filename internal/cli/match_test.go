package cli

import (
	"path/filepath"
	"strings"
	"testing"
)

const twoProviders = `apiVersion: kubelet.config.k8s.io/v1
kind: CredentialProviderConfig
providers:
  - name: ecr-credential-provider
    matchImages: ["*.dkr.ecr.*.amazonaws.com", "public.ecr.aws"]
    defaultCacheDuration: 12h
    apiVersion: credentialprovider.kubelet.k8s.io/v1
  - name: acme
    matchImages: ["*.acme.io", "123456789012.dkr.ecr.us-east-1.amazonaws.com/acme"]
    defaultCacheDuration: 1h
    apiVersion: credentialprovider.kubelet.k8s.io/v1
`

func TestMatch(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "providers.yaml", twoProviders)
	cases := []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"one provider", []string{"--config", cfg, "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:v1"}, 0, `123456789012.dkr.ecr.us-east-1.amazonaws.com/app:v1
  the kubelet matches the name 123456789012.dkr.ecr.us-east-1.amazonaws.com/app
  call ecr-credential-provider ({cfg} providers[0]): "*.dkr.ecr.*.amazonaws.com" matches
  skip acme ({cfg} providers[1]): no pattern matches
      "*.acme.io": label count: pattern host "*.acme.io" has 3 labels, image host "123456789012.dkr.ecr.us-east-1.amazonaws.com" has 6 (each '*' matches exactly one label)
      "123456789012.dkr.ecr.us-east-1.amazonaws.com/acme": path prefix: image path "/app" does not start with pattern path "/acme" (paths are literal prefixes, not globs)
`},
		{"both providers, in config order", []string{"--config", cfg, "123456789012.dkr.ecr.us-east-1.amazonaws.com/acme/api"}, 0, `123456789012.dkr.ecr.us-east-1.amazonaws.com/acme/api
  call ecr-credential-provider ({cfg} providers[0]): "*.dkr.ecr.*.amazonaws.com" matches
  call acme ({cfg} providers[1]): "123456789012.dkr.ecr.us-east-1.amazonaws.com/acme" matches
  the kubelet calls all 2, in this order, and tries their credentials in turn
`},
		{"before 1.33 in name order, with --all", []string{"--kubelet-version", "v1.32", "--all", "--config", cfg, "123456789012.dkr.ecr.us-east-1.amazonaws.com/acme/api"}, 0, `123456789012.dkr.ecr.us-east-1.amazonaws.com/acme/api
  call acme ({cfg} providers[1]): "123456789012.dkr.ecr.us-east-1.amazonaws.com/acme" matches
      "*.acme.io": label count: pattern host "*.acme.io" has 3 labels, image host "123456789012.dkr.ecr.us-east-1.amazonaws.com" has 6 (each '*' matches exactly one label)
  call ecr-credential-provider ({cfg} providers[0]): "*.dkr.ecr.*.amazonaws.com" matches
      "public.ecr.aws": label count: pattern host "public.ecr.aws" has 3 labels, image host "123456789012.dkr.ecr.us-east-1.amazonaws.com" has 6
  the kubelet calls all 2, in this order, and tries their credentials in turn
`},
		{"no provider, and a bad reference", []string{"--config", cfg, "registry.acme.io:5000/app", "Bad/Image"}, 1, `registry.acme.io:5000/app
  skip ecr-credential-provider ({cfg} providers[0]): no pattern matches
      "*.dkr.ecr.*.amazonaws.com": port: the image has port 5000, the pattern has none (a pattern without port matches only images without port)
      "public.ecr.aws": port: the image has port 5000, the pattern has none (a pattern without port matches only images without port)
  skip acme ({cfg} providers[1]): no pattern matches
      "*.acme.io": port: the image has port 5000, the pattern has none (a pattern without port matches only images without port)
      "123456789012.dkr.ecr.us-east-1.amazonaws.com/acme": port: the image has port 5000, the pattern has none (a pattern without port matches only images without port)
  no provider matches: the kubelet pulls this image without plugin credentials

Bad/Image
  error: the kubelet cannot pull this image: image reference "Bad/Image": invalid reference format: repository name must be lowercase
`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := runCmd(runMatch, c.args...)
			want := strings.ReplaceAll(c.out, "{cfg}", cfg)
			if code != c.code || out != want || errOut != "" {
				t.Errorf("exit %d (want %d), stderr %q, stdout:\n%s\nwant:\n%s", code, c.code, errOut, out, want)
			}
		})
	}
}

func TestMatchWarnsAboutARefusedConfig(t *testing.T) {
	cfg := writeConfig(t, t.TempDir(), "c.yaml", strings.Replace(twoProviders, "name: acme", "name: ecr-credential-provider", 1))
	code, out, errOut := runCmd(runMatch, "--config", cfg, "public.ecr.aws/team/app")
	if code != 0 || !strings.Contains(errOut, "kubelet v1.37 refuses this config (1 error; run 'ecr-credential-provider config validate") ||
		!strings.Contains(out, `call ecr-credential-provider (`+cfg+` providers[0]): "public.ecr.aws" matches`) {
		t.Errorf("exit %d, stderr %q, stdout:\n%s", code, errOut, out)
	}
}

func TestMatchUsage(t *testing.T) {
	cfg := writeConfig(t, t.TempDir(), "c.yaml", twoProviders)
	for _, c := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{nil, 2, "give --config FILE|DIR and at least one IMAGE"},
		{[]string{"--config", cfg}, 2, "at least one IMAGE"},
		{[]string{"nginx"}, 2, "give --config"},
		{[]string{"--config", cfg, "--kubelet-version", "1.99", "nginx"}, 2, "not supported"},
		{[]string{"--config", filepath.Join(cfg, "x"), "nginx"}, 1, "unable to access path"},
	} {
		if code, _, errOut := runCmd(runMatch, c.args...); code != c.code || !strings.Contains(errOut, c.stderr) {
			t.Errorf("match %q: exit %d (want %d), stderr:\n%s", c.args, code, c.code, errOut)
		}
	}
}

// TestMatchECRPublicAgainstDefaultConfig is the newcomer's first try: the
// recommended config has no ECR Public patterns. One line says why they all
// miss, and a hint says what adds them.
func TestMatchECRPublicAgainstDefaultConfig(t *testing.T) {
	cfg := writeConfig(t, t.TempDir(), "c.yaml", mustRecommended(t))
	code, out, _ := runCmd(runMatch, "--config", cfg, "public.ecr.aws/docker/library/nginx:1")
	if code != 1 {
		t.Errorf("exit %d, want 1 (no provider matches)", code)
	}
	if n := strings.Count(out, "label count"); n != 2 { // "miss by label count" and the example's reason
		t.Errorf("label-count misses not folded into one line (%d mentions):\n%s", n, out)
	}
	for _, want := range []string{"11 patterns miss by label count, e.g.", "hint: ECR Public needs its own patterns: 'ecr-credential-provider config print --public'"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// A private image that misses gets no ECR Public hint.
	if _, out, _ := runCmd(runMatch, "--config", cfg, "ghcr.io/org/app"); strings.Contains(out, "--public") {
		t.Errorf("hint --public for a ghcr.io image:\n%s", out)
	}
}
