package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/kubecred/ecr-credential-provider/internal/awsemu"
	"k8s.io/component-base/metrics/legacyregistry"
	"k8s.io/kubernetes/pkg/credentialprovider/plugin"
)

// keyringProvider is one provider entry of the library-level test: its
// own binary name (the kubelet names the binary after the provider and
// registers each name once per process), request version, the images it
// matches and the emulator its plugin talks to.
type keyringProvider struct {
	name, requestVersion, match string
	emu                         *awsemu.Server
	dir                         string
}

var registerOnce sync.Once

// pluginExecs reads the kubelet's own count of plugin executions by
// provider name (the kubelet_credential_provider_plugin_duration
// histogram observes every exec).
func pluginExecs(t *testing.T) map[string]uint64 {
	t.Helper()
	families, err := legacyregistry.DefaultGatherer.Gather()
	if err != nil {
		t.Fatalf("reading kubelet metrics: %v", err)
	}
	out := map[string]uint64{}
	for _, f := range families {
		if f.GetName() != "kubelet_credential_provider_plugin_duration" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "plugin_name" {
					out[l.GetValue()] = m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return out
}

// TestKubeletKeyring runs our binary through the kubelet's own credential
// provider code (config parsing, matchImages, exec, response decoding and
// version check, caching), the way the kubelet does before every pull,
// without a kubelet process. Each provider points at its own emulator with
// its own registry password, so a credential coming back from the wrong
// provider or a made-up one fails.
func TestKubeletKeyring(t *testing.T) {
	if os.Getenv("E2E_DISABLE") == "1" {
		t.Skip("E2E_DISABLE=1")
	}
	a := sharedArtifacts(t)
	binDir := t.TempDir()
	providers := []*keyringProvider{
		{name: "ecr-v1", requestVersion: "v1", match: "111111111111.dkr.ecr.us-east-1.amazonaws.com"},
		{name: "ecr-v1beta1", requestVersion: "v1beta1", match: "222222222222.dkr.ecr.eu-west-1.amazonaws.com"},
		{name: "ecr-v1alpha1", requestVersion: "v1alpha1", match: "333333333333.dkr.ecr.ap-southeast-2.amazonaws.com"},
		{name: "ecr-public", requestVersion: "v1", match: "public.ecr.aws"},
	}
	var cfg strings.Builder
	cfg.WriteString("apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nproviders:\n")
	for i, p := range providers {
		var err error
		p.emu, err = awsemu.Start(awsemu.Options{Password: fmt.Sprintf("keyring-password-%d-%s", i, p.name)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.emu.Close)
		p.dir = t.TempDir()
		if err := os.Link(a.plugin, filepath.Join(binDir, p.name)); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&cfg, "- name: %s\n  matchImages: [%q]\n  defaultCacheDuration: 1h\n  apiVersion: credentialprovider.kubelet.k8s.io/%s\n  env:\n",
			p.name, p.match, p.requestVersion)
		for _, kv := range pluginEnv(t, p.emu, p.dir) {
			k, v, _ := strings.Cut(kv, "=")
			fmt.Fprintf(&cfg, "  - name: %s\n    value: %q\n", k, v)
		}
	}
	cfgPath := filepath.Join(t.TempDir(), "credential-provider.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	var regErr error
	ran := false
	registerOnce.Do(func() {
		ran = true
		regErr = plugin.RegisterCredentialProviderPlugins(cfgPath, binDir, nil, nil)
	})
	if !ran {
		t.Skip("the kubelet's provider registry is process-global: run this test once per process (-count=1)")
	}
	if regErr != nil {
		t.Fatalf("the kubelet refused the provider config: %v\n%s", regErr, cfg.String())
	}

	for _, tc := range []struct {
		name    string
		image   string
		want    *keyringProvider // nil: no provider matches
		target  string           // emulator target the plugin must call
		regions []string
	}{
		{"request-v1", "111111111111.dkr.ecr.us-east-1.amazonaws.com/app", providers[0], awsemu.TargetECR, []string{"us-east-1"}},
		{"request-v1beta1", "222222222222.dkr.ecr.eu-west-1.amazonaws.com/team/app", providers[1], awsemu.TargetECR, []string{"eu-west-1"}},
		{"request-v1alpha1", "333333333333.dkr.ecr.ap-southeast-2.amazonaws.com/app", providers[2], awsemu.TargetECR, []string{"ap-southeast-2"}},
		{"ecr-public", "public.ecr.aws/team/app", providers[3], awsemu.TargetECRPublic, []string{"us-east-1"}},
		{"no-pattern-matches", "registry.example.test/team/app", nil, "", nil},
		{"other-account", "444444444444.dkr.ecr.us-east-1.amazonaws.com/app", nil, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, p := range providers {
				p.emu.Reset()
			}
			keyring := plugin.NewExternalCredentialProviderDockerKeyring("default", "demo", "0c1d2e3f-0000-4000-8000-000000000001", "default")
			before := pluginExecs(t)
			creds, found := keyring.Lookup(tc.image)
			after := pluginExecs(t)

			for _, p := range providers {
				want := uint64(0)
				if p == tc.want {
					want = 1
				}
				if got := after[p.name] - before[p.name]; got != want {
					t.Errorf("the kubelet ran plugin %s %d times for %s; want %d", p.name, got, tc.image, want)
				}
				if n := p.emu.Stats().Requests; p != tc.want && n != 0 {
					t.Errorf("provider %s's emulator saw %d requests for %s; want 0", p.name, n, tc.image)
				}
			}
			if tc.want == nil {
				if found || len(creds) != 0 {
					t.Errorf("Lookup(%s) = %d credentials, found %v; want none", tc.image, len(creds), found)
				}
				return
			}
			if !found || len(creds) != 1 {
				t.Fatalf("Lookup(%s) = %d credentials, found %v; want one", tc.image, len(creds), found)
			}
			if creds[0].Username != "AWS" || creds[0].Password != tc.want.emu.PasswordFor(tc.want.emu.InstanceARN()) {
				t.Errorf("Lookup(%s) returned user %q and a password that is not the one %s's emulator issued",
					tc.image, creds[0].Username, tc.want.name)
			}
			st := tc.want.emu.Stats()
			op := st.Op(tc.target, "GetAuthorizationToken")
			if op.Requests != 1 || op.Status[200] != 1 || op.SignatureFailures != 0 {
				t.Errorf("%s GetAuthorizationToken: %+v; want one signed call answered 200", tc.target, op)
			}
			var regions []string
			for _, r := range tc.want.emu.Requests() {
				if r.Target == tc.target {
					regions = append(regions, r.Region)
				}
			}
			if strings.Join(regions, ",") != strings.Join(tc.regions, ",") {
				t.Errorf("GetAuthorizationToken regions %v; want %v", regions, tc.regions)
			}

			// The kubelet caches the answer in memory for the cache
			// duration: a second lookup must not run the plugin again.
			before = pluginExecs(t)
			if again, ok := keyring.Lookup(tc.image); !ok || len(again) != 1 || again[0].Password != creds[0].Password {
				t.Errorf("second Lookup(%s) did not return the cached credential", tc.image)
			}
			if n := pluginExecs(t)[tc.want.name] - before[tc.want.name]; n != 0 {
				t.Errorf("second Lookup(%s) ran the plugin %d times; want 0 (kubelet cache)", tc.image, n)
			}
		})
	}
}
