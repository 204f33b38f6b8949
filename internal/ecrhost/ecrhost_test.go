package ecrhost_test

import (
	"strings"
	"testing"

	"github.com/kubecred/ecr-credential-provider/internal/ecrhost"
)

func TestParse(t *testing.T) {
	const acct = "123456789012"
	tests := []struct {
		image string
		want  ecrhost.Registry
	}{
		{"123456789012.dkr.ecr.us-east-1.amazonaws.com/app",
			ecrhost.Registry{Host: "123456789012.dkr.ecr.us-east-1.amazonaws.com", ECR: true, Account: acct, Region: "us-east-1", Partition: "aws"}},
		{"123456789012.dkr.ecr.eu-west-3.amazonaws.com/team/app:v1.2",
			ecrhost.Registry{Host: "123456789012.dkr.ecr.eu-west-3.amazonaws.com", ECR: true, Account: acct, Region: "eu-west-3", Partition: "aws"}},
		{"123456789012.dkr.ecr.ap-south-2.amazonaws.com/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			ecrhost.Registry{Host: "123456789012.dkr.ecr.ap-south-2.amazonaws.com", ECR: true, Account: acct, Region: "ap-south-2", Partition: "aws"}},
		{"123456789012.dkr.ecr.us-west-2.amazonaws.com:443/app:latest",
			ecrhost.Registry{Host: "123456789012.dkr.ecr.us-west-2.amazonaws.com:443", ECR: true, Account: acct, Region: "us-west-2", Partition: "aws"}},
		{"123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/app",
			ecrhost.Registry{Host: "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", ECR: true, Account: acct, Region: "cn-north-1", Partition: "aws-cn"}},
		{"123456789012.dkr.ecr.us-gov-west-1.amazonaws.com/app",
			ecrhost.Registry{Host: "123456789012.dkr.ecr.us-gov-west-1.amazonaws.com", ECR: true, Account: acct, Region: "us-gov-west-1", Partition: "aws-us-gov"}},
		{"123456789012.dkr.ecr-fips.us-gov-east-1.amazonaws.com/app",
			ecrhost.Registry{Host: "123456789012.dkr.ecr-fips.us-gov-east-1.amazonaws.com", ECR: true, Account: acct, Region: "us-gov-east-1", Partition: "aws-us-gov", FIPS: true}},
		{"123456789012.dkr.ecr-fips.us-east-2.amazonaws.com/app",
			ecrhost.Registry{Host: "123456789012.dkr.ecr-fips.us-east-2.amazonaws.com", ECR: true, Account: acct, Region: "us-east-2", Partition: "aws", FIPS: true}},
		{"123456789012.dkr.ecr.us-iso-east-1.c2s.ic.gov/app",
			ecrhost.Registry{Host: "123456789012.dkr.ecr.us-iso-east-1.c2s.ic.gov", ECR: true, Account: acct, Region: "us-iso-east-1", Partition: "aws-iso"}},
		{"123456789012.dkr.ecr.us-isob-east-1.sc2s.sgov.gov/app",
			ecrhost.Registry{Host: "123456789012.dkr.ecr.us-isob-east-1.sc2s.sgov.gov", ECR: true, Account: acct, Region: "us-isob-east-1", Partition: "aws-iso-b"}},
		{"123456789012.dkr.ecr.eu-isoe-west-1.cloud.adc-e.uk/app",
			ecrhost.Registry{Host: "123456789012.dkr.ecr.eu-isoe-west-1.cloud.adc-e.uk", ECR: true, Account: acct, Region: "eu-isoe-west-1", Partition: "aws-iso-e"}},
		{"123456789012.dkr.ecr.us-isof-south-1.csp.hci.ic.gov/app",
			ecrhost.Registry{Host: "123456789012.dkr.ecr.us-isof-south-1.csp.hci.ic.gov", ECR: true, Account: acct, Region: "us-isof-south-1", Partition: "aws-iso-f"}},
		{"123456789012.dkr.ecr.eusc-de-east-1.amazonaws.eu/app",
			ecrhost.Registry{Host: "123456789012.dkr.ecr.eusc-de-east-1.amazonaws.eu", ECR: true, Account: acct, Region: "eusc-de-east-1", Partition: "aws-eusc"}},
		{"123456789012.dkr-ecr.us-east-1.on.aws/app",
			ecrhost.Registry{Host: "123456789012.dkr-ecr.us-east-1.on.aws", ECR: true, Account: acct, Region: "us-east-1", Partition: "aws", DualStack: true}},
		{"123456789012.dkr-ecr-fips.us-west-1.on.aws/app",
			ecrhost.Registry{Host: "123456789012.dkr-ecr-fips.us-west-1.on.aws", ECR: true, Account: acct, Region: "us-west-1", Partition: "aws", DualStack: true, FIPS: true}},
		{"123456789012.dkr-ecr.cn-northwest-1.on.amazonwebservices.com.cn/app",
			ecrhost.Registry{Host: "123456789012.dkr-ecr.cn-northwest-1.on.amazonwebservices.com.cn", ECR: true, Account: acct, Region: "cn-northwest-1", Partition: "aws-cn", DualStack: true}},
		{"public.ecr.aws/nginx/nginx:latest",
			ecrhost.Registry{Host: "public.ecr.aws", ECR: true, Public: true, Region: "us-east-1", Partition: "aws"}},
		{"ecr-public.aws.com/nginx/nginx",
			ecrhost.Registry{Host: "ecr-public.aws.com", ECR: true, Public: true, Region: "us-east-1", Partition: "aws", DualStack: true}},
		// Not ECR-shaped: a vanity name, wrong suffix for the region, short account, docker hub.
		{"registry.example.com/app", ecrhost.Registry{Host: "registry.example.com"}},
		{"registry.example.com:5000/app", ecrhost.Registry{Host: "registry.example.com:5000"}},
		{"123456789012.dkr.ecr.cn-north-1.amazonaws.com/app", ecrhost.Registry{Host: "123456789012.dkr.ecr.cn-north-1.amazonaws.com"}},
		{"123456789012.dkr.ecr.us-east-1.amazonaws.com.cn/app", ecrhost.Registry{Host: "123456789012.dkr.ecr.us-east-1.amazonaws.com.cn"}},
		{"12345.dkr.ecr.us-east-1.amazonaws.com/app", ecrhost.Registry{Host: "12345.dkr.ecr.us-east-1.amazonaws.com"}},
		{"123456789012.dkr-ecr.us-iso-east-1.on.aws/app", ecrhost.Registry{Host: "123456789012.dkr-ecr.us-iso-east-1.on.aws"}},
		{"nginx", ecrhost.Registry{Host: "docker.io"}},
		{"library/nginx:1", ecrhost.Registry{Host: "docker.io"}},
		{"localhost:5000/app", ecrhost.Registry{Host: "localhost:5000"}},
		{"index.docker.io/team/app", ecrhost.Registry{Host: "docker.io"}},
		{"UPPER/x", ecrhost.Registry{Host: "UPPER"}},
		{"[::1]:5000/app", ecrhost.Registry{Host: "[::1]:5000"}},
	}
	for _, tt := range tests {
		t.Run(tt.image, func(t *testing.T) {
			got, err := ecrhost.Parse(tt.image)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			want.Hostname = got.Hostname // checked below
			if got != want {
				t.Fatalf("Parse(%q)\n got %+v\nwant %+v", tt.image, got, want)
			}
			if strings.Contains(got.Hostname, ":") && !strings.HasPrefix(got.Host, "[") {
				t.Fatalf("Hostname %q keeps a port", got.Hostname)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	// As the kubelet, which never sends such a reference: no scheme, no
	// space, no upper case repository, no user, no short digest.
	for _, in := range []string{"", "   ", "https://", "a b.example.com/x", "user@host.example.com/x",
		"https://123456789012.dkr.ecr.us-east-1.amazonaws.com/app", " 123456789012.dkr.ecr.us-east-1.amazonaws.com/app",
		"123456789012.dkr.ecr.us-east-1.amazonaws.com/App", "123456789012.dkr.ecr.us-east-1.amazonaws.com/app@sha256:abc"} {
		if _, err := ecrhost.Parse(in); err == nil {
			t.Errorf("Parse(%q) succeeded", in)
		}
	}
}

func TestPartitionForRegion(t *testing.T) {
	for region, want := range map[string]string{
		"us-east-1": "aws", "eu-central-2": "aws", "il-central-1": "aws", "mx-central-1": "aws",
		"cn-north-1": "aws-cn", "us-gov-west-1": "aws-us-gov", "us-iso-east-1": "aws-iso",
		"us-isob-east-1": "aws-iso-b", "eu-isoe-west-1": "aws-iso-e", "us-isof-south-1": "aws-iso-f",
		"eusc-de-east-1": "aws-eusc",
	} {
		p, ok := ecrhost.PartitionForRegion(region)
		if !ok || p.ID != want {
			t.Errorf("PartitionForRegion(%q) = %q, %v; want %q", region, p.ID, ok, want)
		}
	}
	if _, ok := ecrhost.PartitionForRegion("moon-base-1"); ok {
		t.Error("unknown region got a partition")
	}
}

// Every documented form must parse as ECR, and the recommended patterns must
// not name a host that fails to parse.
func TestFormsParse(t *testing.T) {
	for _, f := range ecrhost.Forms {
		r, err := ecrhost.Parse(f.Host + "/app")
		if err != nil || !r.ECR || r.Public {
			t.Errorf("%s (%s): %+v %v", f.Name, f.Host, r, err)
		}
	}
	for _, h := range ecrhost.PublicHosts {
		r, err := ecrhost.Parse(h + "/x/y")
		if err != nil || !r.Public {
			t.Errorf("%s: %+v %v", h, r, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"123456789012.dkr.ecr.us-east-1.amazonaws.com/app:v1", "public.ecr.aws/a/b", "[::1]:5000/x", "a:b@c/d", "https://x/y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, image string) {
		r, err := ecrhost.Parse(image)
		if err != nil {
			return
		}
		if r.Host == "" {
			t.Fatalf("empty host for %q", image)
		}
		if r.ECR && !r.Public && (len(r.Account) != 12 || r.Region == "" || r.Partition == "") {
			t.Fatalf("ECR registry without account/region/partition: %+v", r)
		}
	})
}
