package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubecred/ecr-credential-provider/internal/providerconfig"
)

// runCmd runs one subcommand with buffers for its output.
func runCmd(f func(context.Context, *Env, []string) int, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = f(context.Background(), &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}, args)
	return code, out.String(), errb.String()
}

func writeConfig(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const badConfig = `apiVersion: kubelet.config.k8s.io/v1
kind: CredentialProviderConfig
providers:
  - name: ecr/credential-provider
    matchImages: ["*.amazonaws.com"]
    defaultCacheDuration: 12h
    apiVersion: credentialprovider.kubelet.k8s.io/v1
    cache: 1h
`

func TestConfigValidateOutput(t *testing.T) {
	dir := t.TempDir()
	bad := writeConfig(t, dir, "bad.yaml", badConfig)
	clean := writeConfig(t, dir, "clean.yaml", mustRecommended(t))
	cases := []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"errors name file and field, with hints", []string{"validate", bad}, 1, `error: {bad}: providers[0].cache: unknown field: kubelet v1.37 decodes strictly and refuses to start
  hint: check the spelling against 'ecr-credential-provider config print'
error: {bad}: providers[0].name: provider name "ecr/credential-provider": name must not contain '/': the kubelet refuses to start
  hint: name the provider after its executable in the bin dir, e.g. ecr-credential-provider
warning: {bad}: providers[0].matchImages[0]: "*.amazonaws.com" has 3 DNS labels, but ECR hosts under amazonaws.com have 6 (e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com): each '*' matches exactly one label, so this matches no ECR image
  hint: use "*.dkr.ecr.*.amazonaws.com", "*.dkr.ecr-fips.*.amazonaws.com"
{bad}: 2 errors, 1 warning for kubelet v1.37: the kubelet refuses it
`},
		{"an older kubelet ignores the unknown field", []string{"validate", "--kubelet-version", "1.31.4", bad}, 1, `warning: {bad}: providers[0].cache: unknown field: kubelet v1.31 ignores it
  hint: check the spelling against 'ecr-credential-provider config print'
error: {bad}: providers[0].name: provider name "ecr/credential-provider": name must not contain '/': the kubelet refuses to start
  hint: name the provider after its executable in the bin dir, e.g. ecr-credential-provider
warning: {bad}: providers[0].matchImages[0]: "*.amazonaws.com" has 3 DNS labels, but ECR hosts under amazonaws.com have 6 (e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com): each '*' matches exactly one label, so this matches no ECR image
  hint: use "*.dkr.ecr.*.amazonaws.com", "*.dkr.ecr-fips.*.amazonaws.com"
{bad}: 1 error, 2 warnings for kubelet v1.31: the kubelet refuses it
`},
		{"a clean config", []string{"validate", clean}, 0, "{clean}: 0 errors, 0 warnings for kubelet v1.37: the kubelet accepts it\n"},
		{"flags after the path", []string{"validate", clean, "--kubelet-version=v1.26"}, 0, "{clean}: 0 errors, 0 warnings for kubelet v1.26: the kubelet accepts it\n"},
		{"a bin dir without the plugin", []string{"validate", "--bin-dir", dir, clean}, 1, `error: {clean}: providers[0].name: plugin binary {dir}/ecr-credential-provider: no such file or directory: the kubelet refuses to start
  hint: install it with 'ecr-credential-provider install', or fix the name or --image-credential-provider-bin-dir
{clean}: 1 error, 0 warnings for kubelet v1.37: the kubelet refuses it
`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := runCmd(runConfig, c.args...)
			want := strings.NewReplacer("{bad}", bad, "{clean}", clean, "{dir}", dir).Replace(c.out)
			if code != c.code || out != want || errOut != "" {
				t.Errorf("exit %d (want %d), stderr %q, stdout:\n%s\nwant:\n%s", code, c.code, errOut, out, want)
			}
		})
	}
}

func mustRecommended(t *testing.T) string {
	t.Helper()
	b, err := providerconfig.Recommended(providerconfig.RecommendedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestConfigValidateJSON(t *testing.T) {
	bad := writeConfig(t, t.TempDir(), "bad.yaml", badConfig)
	code, out, _ := runCmd(runConfig, "validate", "--json", bad)
	var got struct {
		Path           string
		KubeletVersion string
		Errors         int
		Warnings       int
		Findings       []providerconfig.Finding
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if code != 1 || got.Path != bad || got.KubeletVersion != "v1.37" || got.Errors != 2 || got.Warnings != 1 || len(got.Findings) != 3 {
		t.Fatalf("exit %d, %+v", code, got)
	}
	f := got.Findings[1]
	if f.Severity != providerconfig.Error || f.File != bad || f.Field != "providers[0].name" || f.Hint == "" {
		t.Errorf("finding %+v", f)
	}
	clean := writeConfig(t, t.TempDir(), "c.yaml", mustRecommended(t))
	if code, out, _ := runCmd(runConfig, "validate", "--json", clean); code != 0 || !strings.Contains(out, `"findings": []`) {
		t.Errorf("exit %d:\n%s", code, out)
	}
}

func TestConfigUsageErrors(t *testing.T) {
	clean := writeConfig(t, t.TempDir(), "c.yaml", mustRecommended(t))
	cases := []struct {
		args   []string
		code   int
		stderr string
	}{
		{nil, 2, "give a subcommand: validate or print\nRun 'ecr-credential-provider config --help' for usage."},
		{[]string{"check"}, 2, `unknown subcommand "check"`},
		{[]string{"validate"}, 2, "give exactly one config FILE or DIR"},
		{[]string{"validate", clean, clean}, 2, "give exactly one config FILE or DIR"},
		{[]string{"validate", "--kubelet-version", "v1.19", clean}, 2, "kubelet version v1.19 is not supported: this build knows the rules of v1.20 to v1.37"},
		{[]string{"validate", "--kubelet-version", "latest", clean}, 2, `kubelet version "latest" is not of the form v1.35`},
		{[]string{"validate", "--feature-gates", "Foo", clean}, 2, `"Foo" is not NAME=true or NAME=false`},
		{[]string{"validate", "--no-such-flag", clean}, 2, "flag provided but not defined"},
		{[]string{"validate", filepath.Join(clean, "nope")}, 1, "unable to access path"},
		{[]string{"print", "--name", "a/b"}, 2, `provider name "a/b": name must not contain '/'`},
		{[]string{"print", "--api-version", "v9"}, 2, `plugin apiVersion "credentialprovider.kubelet.k8s.io/v9" is not one the kubelet knows`},
		{[]string{"print", "extra"}, 2, `unexpected argument "extra"`},
	}
	for _, c := range cases {
		code, out, errOut := runCmd(runConfig, c.args...)
		if code != c.code || !strings.Contains(errOut, c.stderr) || (c.code == 2 && out != "") {
			t.Errorf("config %q: exit %d (want %d), stdout %q, stderr:\n%s\nwant it to say %q", c.args, code, c.code, out, errOut, c.stderr)
		}
	}
	if code, out, _ := runCmd(runConfig, "help"); code != 0 || !strings.Contains(out, "config validate") {
		t.Errorf("config help: exit %d\n%s", code, out)
	}
}

func TestConfigFeatureGate(t *testing.T) {
	cfg := writeConfig(t, t.TempDir(), "c.yaml", `apiVersion: kubelet.config.k8s.io/v1
kind: CredentialProviderConfig
providers:
  - name: ecr-credential-provider
    matchImages: ["registry.example.com"]
    defaultCacheDuration: 1h
    apiVersion: credentialprovider.kubelet.k8s.io/v1
    tokenAttributes: {serviceAccountTokenAudience: sts.amazonaws.com, requireServiceAccount: false}
`)
	if code, out, _ := runCmd(runConfig, "validate", "--kubelet-version", "v1.33", cfg); code != 1 || !strings.Contains(out, "feature gate is disabled") {
		t.Errorf("1.33 without the gate: exit %d\n%s", code, out)
	}
	if code, out, _ := runCmd(runConfig, "validate", "--kubelet-version", "v1.33", "--feature-gates", "A=false,KubeletServiceAccountTokenForCredentialProviders=true", cfg); code != 0 {
		t.Errorf("1.33 with the gate: exit %d\n%s", code, out)
	}
}

func TestConfigPrint(t *testing.T) {
	for _, c := range []struct {
		args []string
		opts providerconfig.RecommendedOptions
	}{
		{nil, providerconfig.RecommendedOptions{}},
		{[]string{"--public"}, providerconfig.RecommendedOptions{Public: true}},
		{[]string{"--name", "ecr-login", "--api-version", "credentialprovider.kubelet.k8s.io/v1beta1"},
			providerconfig.RecommendedOptions{Name: "ecr-login", APIVersion: "credentialprovider.kubelet.k8s.io/v1beta1"}},
		{[]string{"--api-version", "v1alpha1"}, providerconfig.RecommendedOptions{APIVersion: "credentialprovider.kubelet.k8s.io/v1alpha1"}},
	} {
		code, out, errOut := runCmd(runConfig, append([]string{"print"}, c.args...)...)
		want, _ := providerconfig.Recommended(c.opts)
		if code != 0 || out != string(want) || errOut != "" {
			t.Errorf("config print %q: exit %d, stderr %q, stdout:\n%s\nwant:\n%s", c.args, code, errOut, out, want)
		}
	}
	_, out, _ := runCmd(runConfig, "print", "--public")
	if !strings.Contains(out, "- public.ecr.aws\n") {
		t.Errorf("--public does not add ECR Public:\n%s", out)
	}
}

// TestConfigValidateCommercialOnly: a config with the one commonly copied
// pattern gets one line naming what it covers, not a list of all it misses,
// and a negative cache duration gets the hint that fixes it.
func TestConfigValidateCommercialOnly(t *testing.T) {
	cfg := writeConfig(t, t.TempDir(), "c.yaml", `apiVersion: kubelet.config.k8s.io/v1
kind: CredentialProviderConfig
providers:
  - name: ecr-credential-provider
    matchImages: ["*.dkr.ecr.*.amazonaws.com"]
    defaultCacheDuration: -1h
    apiVersion: credentialprovider.kubelet.k8s.io/v1
`)
	code, out, _ := runCmd(runConfig, "validate", cfg)
	if code != 1 {
		t.Errorf("exit %d, want 1 for the negative duration", code)
	}
	for _, want := range []string{
		"matchImages cover only the commercial and GovCloud ECR registry forms: images from the 11 others",
		"hint: if nodes pull from those, use the matchImages of 'ecr-credential-provider config print'",
		`defaultCacheDuration must be greater than or equal to 0: the kubelet refuses to start
  hint: use "12h"`,
		"1 error, 1 warning",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "ISO-B") || strings.Contains(out, "*.dkr.ecr.*.amazonaws.eu") {
		t.Errorf("output still lists every missed form:\n%s", out)
	}
}

// TestConfigForOldKubelets: 'config print --api-version v1alpha1' writes a
// config kubelets 1.20 to 1.23 read, and 'config validate' says they ignore
// it until the KubeletCredentialProviders gate is on.
func TestConfigForOldKubelets(t *testing.T) {
	code, out, errs := runCmd(runConfig, "print", "--api-version", "v1alpha1")
	if code != 0 || !strings.Contains(out, "apiVersion: kubelet.config.k8s.io/v1alpha1\n") || !strings.Contains(out, "apiVersion: credentialprovider.kubelet.k8s.io/v1alpha1\n") {
		t.Fatalf("config print --api-version v1alpha1: exit %d %s\n%s", code, errs, out)
	}
	cfg := writeConfig(t, t.TempDir(), "c.yaml", out)
	if code, res, _ := runCmd(runConfig, "validate", "--kubelet-version", "v1.22", "--feature-gates", "KubeletCredentialProviders=true", cfg); code != 0 || !strings.Contains(res, "0 errors, 0 warnings for kubelet v1.22") {
		t.Errorf("v1.22 with the gate on: exit %d\n%s", code, res)
	}
	if code, res, _ := runCmd(runConfig, "validate", "--kubelet-version", "v1.22", cfg); code != 0 || !strings.Contains(res, "kubelet v1.22 ignores this config while its feature gate KubeletCredentialProviders is off") {
		t.Errorf("v1.22 with the gate at its default: exit %d\n%s", code, res)
	}
	v1 := writeConfig(t, t.TempDir(), "v1.yaml", mustRecommended(t))
	if code, res, _ := runCmd(runConfig, "validate", "--kubelet-version", "v1.25", v1); code != 1 || !strings.Contains(res, "kubelet v1.25 reads a CredentialProviderConfig only as kubelet.config.k8s.io/v1alpha1 or v1beta1, not v1") {
		t.Errorf("a v1 config for kubelet v1.25: exit %d\n%s", code, res)
	}
}
