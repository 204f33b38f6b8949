package providerconfig

import (
	"os"
	"path/filepath"
	"testing"
)

func TestValidateRegistryMap(t *testing.T) {
	const target = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
	withHub := `["*.dkr.ecr.*.amazonaws.com", "*.dkr.ecr-fips.*.amazonaws.com", "*.dkr-ecr.*.on.aws", "*.dkr-ecr-fips.*.on.aws",` +
		` "*.dkr.ecr.*.amazonaws.com.cn", "*.dkr-ecr.*.on.amazonwebservices.com.cn", "*.dkr.ecr.*.c2s.ic.gov", "*.dkr.ecr.*.sc2s.sgov.gov",` +
		` "*.dkr.ecr.*.cloud.adc-e.uk", "*.dkr.ecr.*.csp.hci.ic.gov", "*.dkr.ecr.*.amazonaws.eu", "docker.io"]`
	wn := Warning
	cases := []struct {
		name string
		prov string
		want []w
	}{
		{name: "mapped sources in matchImages are clean",
			prov: provider("ecr-credential-provider", "matchImages: "+withHub, "args: [--registry-map=docker.io="+target+"/docker-hub]")},
		{name: "the env form is read too",
			prov: provider("ecr-credential-provider", "matchImages: "+withHub, "env: [{name: ECR_CREDENTIAL_PROVIDER_REGISTRY_MAP, value: 'docker.io="+target+"/hub'}]")},
		{name: "a source matchImages misses is never asked about",
			prov: provider("ecr-credential-provider", "args: [--registry-map, ghcr.io="+target+"/ghcr]"),
			want: []w{{wn, "config.yaml", "providers[0].matchImages", "registry map source ghcr.io is not in matchImages"}}},
		{name: "a public target is refused with the form to use",
			prov: provider("ecr-credential-provider", "matchImages: "+withHub, "args: [--registry-map=docker.io=public.ecr.aws/docker]"),
			want: []w{{wn, "config.yaml", "providers[0].args", "not a private ECR registry"}}},
		{name: "a source mapped twice is refused",
			prov: provider("ecr-credential-provider", "matchImages: "+withHub,
				"args: [--registry-map=docker.io="+target+"/a, --registry-map=index.docker.io="+target+"/b]"),
			want: []w{{wn, "config.yaml", "providers[0].args", "already mapped"}}},
		{name: "a missing map file fails every pull",
			prov: provider("ecr-credential-provider", "args: [--registry-map-file=/nonexistent/registry-map]"),
			want: []w{{wn, "config.yaml", "providers[0].args", "registry map file"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "config.yaml")
			if err := os.WriteFile(path, []byte(doc("v1", c.prov)), 0o644); err != nil {
				t.Fatal(err)
			}
			cfg, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			checkFindings(t, dir, Validate(cfg, Options{}), c.want)
		})
	}
}
