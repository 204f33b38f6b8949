package providerconfig

import (
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

func TestRecommendedDecodes(t *testing.T) {
	for _, public := range []bool{false, true} {
		out, err := Recommended(RecommendedOptions{Public: public, Args: []string{"get-credentials"}, Env: []ExecEnvVar{{Name: "AWS_PROFILE", Value: "true"}}})
		if err != nil {
			t.Fatal(err)
		}
		var cfg CredentialProviderConfig
		if err := yaml.UnmarshalStrict(out, &cfg); err != nil {
			t.Fatalf("public=%v: %v\n%s", public, err, out)
		}
		p := cfg.Providers[0]
		if cfg.APIVersion != "kubelet.config.k8s.io/v1" || cfg.Kind != "CredentialProviderConfig" || p.Name != "ecr-credential-provider" ||
			p.APIVersion != "credentialprovider.kubelet.k8s.io/v1" || p.DefaultCacheDuration.Duration != 12*time.Hour ||
			p.Env[0].Value != "true" || p.Args[0] != "get-credentials" {
			t.Errorf("public=%v: unexpected config %+v\n%s", public, cfg, out)
		}
		if got, want := strings.Join(p.MatchImages, ","), strings.Join(ecrhostMatchImages(public), ","); got != want {
			t.Errorf("matchImages = %s, want %s", got, want)
		}
	}
}
