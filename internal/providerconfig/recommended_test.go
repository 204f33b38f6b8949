package providerconfig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubecred/ecr-credential-provider/internal/ecrhost"
	"github.com/kubecred/ecr-credential-provider/internal/protocol"
)

// TestRecommendedRoundTrip: what 'config print' and install write must be
// accepted without a single finding by every kubelet version we know, and
// must send every ECR host form (and ECR Public when asked) to the plugin.
func TestRecommendedRoundTrip(t *testing.T) {
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, DefaultName), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, public := range []bool{false, true} {
		cfg, out := printAndLoad(t, RecommendedOptions{Public: public})
		for minor := OldestVersion.Minor; minor <= NewestVersion.Minor; minor++ {
			ver := Version{minor}
			c, text := cfg, out
			if minor < 26 {
				// What 'config print --api-version' writes for the kubelets
				// of that era: the newest protocol each one speaks.
				known := ver.apiVersions()
				c, text = printAndLoad(t, RecommendedOptions{Public: public, APIVersion: protocol.Group + "/" + known[len(known)-1]})
			}
			on := true
			if fs := Validate(c, Options{KubeletVersion: ver, BinDir: bin, CredentialProvidersGate: &on}); len(fs) > 0 {
				t.Errorf("public=%v, kubelet 1.%d: %+v\n%s", public, minor, fs, text)
			}
		}
		ps := cfg.Providers()
		if len(ps) != 1 || ps[0].Name != DefaultName || ps[0].APIVersion != protocol.V1 || ps[0].DefaultCacheDuration.Duration != 12*time.Hour {
			t.Fatalf("public=%v: providers %+v", public, ps)
		}
		hosts := map[string]bool{}
		for _, f := range ecrhost.Forms {
			hosts[f.Host] = true
		}
		for _, h := range ecrhost.PublicHosts {
			hosts[h] = public
		}
		for host, want := range hosts {
			_, ms, err := MatchImage(ps, host+"/team/app:v1", NewestVersion)
			if err != nil {
				t.Fatal(err)
			}
			if ms[0].Called != want {
				t.Errorf("public=%v: %s called=%v, want %v (missed: %v)", public, host, ms[0].Called, want, ms[0].Missed)
			}
		}
		if strings.Contains(string(out), "12h0m0s") {
			t.Errorf("durations are written the way people write them:\n%s", out)
		}
	}
}

func TestRecommendedOptions(t *testing.T) {
	out, err := Recommended(RecommendedOptions{Name: "ecr-login", APIVersion: protocol.V1Beta1, CacheDuration: 90 * time.Minute,
		Args: []string{"--cache-dir", "/var/cache/ecr"}, Env: []ExecEnvVar{{Name: "AWS_PROFILE", Value: "yes"}, {Name: "N", Value: "007"}}})
	if err != nil {
		t.Fatal(err)
	}
	f := Decode("x.yaml", out)
	if f.Err != nil || len(f.TypeErrors) > 0 || len(f.Unknown) > 0 {
		t.Fatalf("%v %v %v\n%s", f.Err, f.TypeErrors, f.Unknown, out)
	}
	p := f.Config.Providers[0]
	if p.Name != "ecr-login" || p.APIVersion != protocol.V1Beta1 || p.DefaultCacheDuration.Duration != 90*time.Minute ||
		strings.Join(p.Args, " ") != "--cache-dir /var/cache/ecr" || p.Env[0].Value != "yes" || p.Env[1].Value != "007" {
		t.Errorf("provider %+v\n%s", p, out)
	}
	if out, _ := Recommended(RecommendedOptions{CacheDuration: -1}); !strings.Contains(string(out), `defaultCacheDuration: "0s"`) {
		t.Errorf("a negative CacheDuration asks for 0s:\n%s", out)
	}
	for _, o := range []RecommendedOptions{{Name: "a/b"}, {Name: ".."}, {APIVersion: "kubelet.config.k8s.io/v1"}} {
		if _, err := Recommended(o); err == nil {
			t.Errorf("Recommended(%+v) accepted a config the kubelet refuses", o)
		}
	}
}

func printAndLoad(t *testing.T, o RecommendedOptions) (*Config, []byte) {
	t.Helper()
	out, err := Recommended(o)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "credential-provider.yaml")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, out
}
