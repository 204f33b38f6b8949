package e2e

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// validateCase is one credential provider config (a file, or a directory
// of files) that `config validate` and the real kubelet must judge alike.
type validateCase struct {
	name  string
	files map[string]string // one entry "": a single file; else a directory
}

const (
	cfgHead = "apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nproviders:\n"
	// cfgProvider is a valid provider entry; cases edit it.
	cfgProvider = `- name: ecr-credential-provider
  matchImages: ["*.dkr.ecr.*.amazonaws.com", "public.ecr.aws"]
  defaultCacheDuration: 12h
  apiVersion: credentialprovider.kubelet.k8s.io/v1
`
	tokenAttrs = `  tokenAttributes:
    serviceAccountTokenAudience: sts.amazonaws.com
    requireServiceAccount: false
    cacheType: ServiceAccount
`
)

func single(body string) map[string]string { return map[string]string{"": body} }

func edited(old, repl string) map[string]string {
	return single(cfgHead + strings.Replace(cfgProvider, old, repl, 1))
}

func validateCases(t *testing.T, plugin string) []validateCase {
	t.Helper()
	printed := func(args ...string) string {
		out, err := exec.Command(plugin, append([]string{"config", "print"}, args...)...).Output()
		if err != nil {
			t.Fatalf("config print %v: %v", args, err)
		}
		return string(out)
	}
	return []validateCase{
		{"recommended", single(printed())},
		{"recommended-public-v1beta1", single(printed("--public", "--api-version", "credentialprovider.kubelet.k8s.io/v1beta1"))},
		{"recommended-v1alpha1", single(printed("--api-version", "credentialprovider.kubelet.k8s.io/v1alpha1"))},
		{"plain", single(cfgHead + cfgProvider)},
		{"config-v1alpha1", single(strings.Replace(cfgHead, "/v1\n", "/v1alpha1\n", 1) + cfgProvider)},
		{"config-v1beta1", single(strings.Replace(cfgHead, "/v1\n", "/v1beta1\n", 1) + cfgProvider)},
		{"wrong-kind", single(strings.Replace(cfgHead, "CredentialProviderConfig", "CredentialProviderConfiguration", 1) + cfgProvider)},
		{"no-providers", single(cfgHead + "[]\n")},
		{"no-name", edited("- name: ecr-credential-provider\n  ", "- ")},
		{"name-with-slash", edited("name: ecr-credential-provider", "name: bin/ecr-credential-provider")},
		{"binary-missing", edited("name: ecr-credential-provider", "name: not-installed")},
		{"duplicate-name", single(cfgHead + cfgProvider + cfgProvider)},
		{"no-match-images", edited(`matchImages: ["*.dkr.ecr.*.amazonaws.com", "public.ecr.aws"]`, "matchImages: []")},
		{"match-image-with-scheme", edited(`"public.ecr.aws"`, `"https://public.ecr.aws"`)},
		{"match-image-bad-host", edited(`"public.ecr.aws"`, `"[public.ecr.aws"`)},
		{"match-image-bad-escape", edited(`"public.ecr.aws"`, `"public.ecr.aws/%zz"`)},
		{"match-image-port-path", edited(`"public.ecr.aws"`, `"*.dkr.ecr.*.amazonaws.com:443/team"`)},
		{"no-cache-duration", edited("  defaultCacheDuration: 12h\n", "")},
		{"negative-cache-duration", edited("defaultCacheDuration: 12h", "defaultCacheDuration: -1m")},
		{"no-request-version", edited("  apiVersion: credentialprovider.kubelet.k8s.io/v1\n", "")},
		{"unknown-request-version", edited("credentialprovider.kubelet.k8s.io/v1", "credentialprovider.kubelet.k8s.io/v2")},
		{"unknown-field", edited("  defaultCacheDuration: 12h\n", "  defaultCacheDuration: 12h\n  cacheDuration: 1h\n")},
		{"args-and-env", edited("  defaultCacheDuration: 12h\n", "  defaultCacheDuration: 12h\n  args: [get-credentials]\n  env:\n  - name: AWS_REGION\n    value: us-east-1\n")},
		{"token-attributes", single(cfgHead + cfgProvider + tokenAttrs)},
		{"token-attributes-no-cache-type", single(cfgHead + cfgProvider + strings.Replace(tokenAttrs, "    cacheType: ServiceAccount\n", "", 1))},
		{"token-attributes-v1beta1", single(cfgHead + strings.Replace(cfgProvider, "kubelet.k8s.io/v1\n", "kubelet.k8s.io/v1beta1\n", 1) + tokenAttrs)},
		{"directory", map[string]string{
			"10-ecr.yaml":  cfgHead + cfgProvider,
			"20-other.yml": cfgHead + strings.Replace(cfgProvider, "name: ecr-credential-provider", "name: other", 1),
		}},
		{"directory-duplicate-across-files", map[string]string{
			"10-ecr.yaml": cfgHead + cfgProvider,
			"20-ecr.yaml": cfgHead + cfgProvider,
		}},
	}
}

// TestConfigValidateAgreesWithKubelet starts the real kubelet of each
// version with each config and checks that `config validate
// --kubelet-version` predicted whether it would start or refuse.
func TestConfigValidateAgreesWithKubelet(t *testing.T) {
	requireNode(t)
	a := sharedArtifacts(t)
	binDir := filepath.Join(t.TempDir(), "bin")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ecr-credential-provider", "other"} {
		if err := os.Link(a.plugin, filepath.Join(binDir, name)); err != nil {
			t.Fatal(err)
		}
	}
	cases := validateCases(t, a.plugin)
	cfgRoot := t.TempDir()
	paths := map[string]string{}
	for _, c := range cases {
		p := filepath.Join(cfgRoot, c.name)
		if body, ok := c.files[""]; ok {
			p += ".yaml"
			if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		} else {
			if err := os.Mkdir(p, 0o755); err != nil {
				t.Fatal(err)
			}
			for f, body := range c.files {
				if err := os.WriteFile(filepath.Join(p, f), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		paths[c.name] = p
	}

	for _, version := range kubeletVersions() {
		t.Run(version, func(t *testing.T) {
			kubelet := kubeletBinary(t, version)
			n := startNode(t, a, ecrHost, "127.0.0.1:9")
			outcomes := map[bool]int{}
			for i, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					out, err := exec.Command(a.plugin, "config", "validate", "--kubelet-version", version, "--bin-dir", binDir, paths[c.name]).CombinedOutput()
					var exit *exec.ExitError
					predicted := err == nil
					if err != nil && (!errors.As(err, &exit) || exit.ExitCode() != 1) {
						t.Fatalf("config validate: %v\n%s", err, out)
					}
					started, log := kubeletStarts(t, n, kubeletOptions{
						name: fmt.Sprintf("validate-%02d", i), bin: kubelet,
						pluginBinDir: binDir, providerPath: paths[c.name],
					})
					outcomes[started]++
					t.Logf("kubelet %s %s it", version, verdict(started))
					if predicted != started {
						t.Errorf("config validate says the kubelet %s it, but kubelet %s %s it.\nconfig validate:\n%s\nkubelet:\n%s",
							verdict(predicted), version, verdict(started), out, log)
					}
				})
			}
			// Agreement on configs the kubelet all accepts (or all
			// refuses) would prove little: both outcomes must occur.
			if outcomes[true] < 3 || outcomes[false] < 3 {
				t.Errorf("kubelet %s accepted %d and refused %d configs; the cases no longer cover both outcomes", version, outcomes[true], outcomes[false])
			}
		})
	}
}

func verdict(accepts bool) string {
	if accepts {
		return "accepts"
	}
	return "refuses"
}

// kubeletStarts starts a kubelet with the config and reports whether it
// got past registering the credential providers (its healthz answers) or
// exited refusing them; anything else fails the test.
func kubeletStarts(t *testing.T, n *node, o kubeletOptions) (bool, string) {
	t.Helper()
	healthz := n.startKubelet(o)
	k := n.kubelet
	defer k.stop()
	var healthy bool
	waitFor(60*time.Second, func() bool {
		if k.exited() {
			return true
		}
		resp, err := http.Get(healthz)
		if err == nil {
			resp.Body.Close()
			healthy = resp.StatusCode == http.StatusOK
		}
		return healthy
	})
	log := k.logText()
	refusal := klogEntries(log, "Failed to register CRI auth plugins")
	switch {
	case healthy:
		return true, ""
	case k.exited() && len(refusal) > 0:
		return false, clip(strings.Join(refusal, ""))
	default:
		t.Fatalf("the kubelet neither started nor refused the credential provider config (exited: %v):\n%s", k.exited(), clip(kubeletDigest(log, 30)))
		return false, ""
	}
}
