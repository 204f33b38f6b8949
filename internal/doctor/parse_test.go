package doctor

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kubecred/ecr-credential-provider/internal/ecrhost"
)

// The ECR API endpoint the doctor probes is the one the SDK would call:
// FIPS and dual-stack registries have their own, and AWS_ENDPOINT_URL_ECR
// overrides all. No network: endpoint resolution is local.
func TestAPIEndpointFollowsTheRegistry(t *testing.T) {
	tests := []struct {
		image, env, want string
	}{
		{image: regHost + "/a", want: "https://api.ecr.us-east-1.amazonaws.com"},
		{image: "111122223333.dkr.ecr-fips.us-east-1.amazonaws.com/a", want: "https://api.ecr-fips.us-east-1.amazonaws.com"},
		{image: "111122223333.dkr-ecr.us-east-1.on.aws/a", want: "https://ecr.us-east-1.api.aws"},
		{image: "111122223333.dkr-ecr-fips.us-gov-west-1.on.aws/a", want: "https://ecr-fips.us-gov-west-1.api.aws"},
		{image: "111122223333.dkr.ecr.cn-north-1.amazonaws.com.cn/a", want: "https://api.ecr.cn-north-1.amazonaws.com.cn"},
		{image: "public.ecr.aws/a/b", want: "https://api.ecr-public.us-east-1.amazonaws.com"},
		{image: "ecr-public.aws.com/a/b", want: "https://ecr-public.us-east-1.api.aws"},
		{image: regHost + "/a", env: "AWS_ENDPOINT_URL_ECR=https://vpce-0abc.api.ecr.us-east-1.vpce.amazonaws.com", want: "https://vpce-0abc.api.ecr.us-east-1.vpce.amazonaws.com"},
		{image: regHost + "/a", env: "AWS_ENDPOINT_URL=http://127.0.0.1:4566", want: "http://127.0.0.1:4566"},
	}
	for _, tt := range tests {
		t.Run(tt.image+" "+tt.env, func(t *testing.T) {
			if tt.env != "" {
				isolateEnv(t, tt.env)
			} else {
				isolateEnv(t)
			}
			reg, err := ecrhost.Parse(tt.image)
			if err != nil {
				t.Fatal(err)
			}
			a, err := NewSDK(context.Background(), reg, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			got, err := a.APIEndpoint(context.Background())
			if err != nil || got != tt.want {
				t.Errorf("APIEndpoint = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestLayerBucketHost(t *testing.T) {
	tests := []struct{ region, want string }{
		{"us-east-1", "prod-us-east-1-starport-layer-bucket.s3.us-east-1.amazonaws.com"},
		{"eu-west-1", "prod-eu-west-1-starport-layer-bucket.s3.eu-west-1.amazonaws.com"},
		{"cn-north-1", "prod-cn-north-1-starport-layer-bucket.s3.cn-north-1.amazonaws.com.cn"},
	}
	for _, tt := range tests {
		p, _ := ecrhost.PartitionForRegion(tt.region)
		if got := layerBucketHost(tt.region, p.Suffix); got != tt.want {
			t.Errorf("layerBucketHost(%s) = %s, want %s", tt.region, got, tt.want)
		}
	}
}

func TestRoleARN(t *testing.T) {
	tests := []struct{ in, want string }{
		{"arn:aws:sts::111122223333:assumed-role/eks-node/i-0abc", "arn:aws:iam::111122223333:role/eks-node"},
		{"arn:aws-cn:sts::111122223333:assumed-role/node/i-0abc", "arn:aws-cn:iam::111122223333:role/node"},
		{"arn:aws-us-gov:sts::111122223333:assumed-role/node/botocore-session-1", "arn:aws-us-gov:iam::111122223333:role/node"},
		{"arn:aws:iam::111122223333:user/alice", "arn:aws:iam::111122223333:user/alice"},
		{"arn:aws:iam::111122223333:role/node", "arn:aws:iam::111122223333:role/node"},
		{"arn:aws:sts::111122223333:federated-user/bob", "arn:aws:sts::111122223333:federated-user/bob"},
		{"not-an-arn", "not-an-arn"},
	}
	for _, tt := range tests {
		if got := RoleARN(tt.in); got != tt.want {
			t.Errorf("RoleARN(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestParseDenial(t *testing.T) {
	tests := []struct {
		msg  string
		want Denial
	}{
		{
			"User: arn:aws:sts::1:assumed-role/r/i is not authorized to perform: ecr:GetAuthorizationToken on resource: * because no identity-based policy allows the ecr:GetAuthorizationToken action",
			Denial{Principal: "arn:aws:sts::1:assumed-role/r/i", Action: "ecr:GetAuthorizationToken", Resource: "*", Why: "no identity-based policy allows the ecr:GetAuthorizationToken action"},
		},
		{
			"User: arn:aws:sts::1:assumed-role/r/i is not authorized to perform: ecr:BatchGetImage on resource: arn:aws:ecr:us-east-1:2:repository/app with an explicit deny in a service control policy",
			Denial{Principal: "arn:aws:sts::1:assumed-role/r/i", Action: "ecr:BatchGetImage", Resource: "arn:aws:ecr:us-east-1:2:repository/app", Why: "an explicit deny in a service control policy"},
		},
		{
			"User: arn:aws:iam::1:user/u is not authorized to perform: sts:GetServiceBearerToken on resource: * because no identity-based policy allows the sts:GetServiceBearerToken action",
			Denial{Principal: "arn:aws:iam::1:user/u", Action: "sts:GetServiceBearerToken", Resource: "*", Why: "no identity-based policy allows the sts:GetServiceBearerToken action"},
		},
		{"Access denied: not authorized to perform ecr:BatchGetImage", Denial{Action: "ecr:BatchGetImage"}},
	}
	for _, tt := range tests {
		got, ok := ParseDenial(tt.msg)
		if !ok || got != tt.want {
			t.Errorf("ParseDenial(%q)\n = %+v, %v\nwant %+v", tt.msg, got, ok, tt.want)
		}
	}
	if _, ok := ParseDenial("Rate exceeded"); ok {
		t.Error("a throttling message parsed as a denial")
	}
}

func TestParseChallenge(t *testing.T) {
	tests := []struct {
		in     string
		scheme string
		params map[string]string
	}{
		{`Basic realm="https://1.dkr.ecr.us-east-1.amazonaws.com/",service="ecr.amazonaws.com"`, "basic", map[string]string{"realm": "https://1.dkr.ecr.us-east-1.amazonaws.com/", "service": "ecr.amazonaws.com"}},
		{`Bearer realm="https://public.ecr.aws/token/",service="public.ecr.aws",scope="aws"`, "bearer", map[string]string{"realm": "https://public.ecr.aws/token/", "service": "public.ecr.aws", "scope": "aws"}},
		{`Bearer realm=https://x/token, service=x`, "bearer", map[string]string{"realm": "https://x/token", "service": "x"}},
		{`Basic`, "basic", map[string]string{}},
	}
	for _, tt := range tests {
		c := parseChallenge(tt.in)
		if c.Scheme != tt.scheme || len(c.Params) != len(tt.params) {
			t.Errorf("parseChallenge(%q) = %+v", tt.in, c)
			continue
		}
		for k, v := range tt.params {
			if c.Params[k] != v {
				t.Errorf("parseChallenge(%q)[%s] = %q, want %q", tt.in, k, c.Params[k], v)
			}
		}
	}
}

func TestDenialRemedy(t *testing.T) {
	tests := []struct {
		d        Denial
		public   bool
		want     []string
		dontWant string
	}{
		{Denial{Action: "ecr:GetAuthorizationToken", Why: "no identity-based policy allows the ecr:GetAuthorizationToken action"}, false,
			[]string{PolicyPrivateReadOnly, "arn:aws:iam::1:role/r", "ecr:GetAuthorizationToken"}, "explicit"},
		{Denial{Action: "ecr-public:GetAuthorizationToken"}, true,
			[]string{PolicyPublicReadOnly, "sts:GetServiceBearerToken"}, PolicyPrivateReadOnly},
		// Attaching a policy cannot beat an explicit deny: say so instead.
		{Denial{Action: "ecr:GetAuthorizationToken", Why: "an explicit deny in a service control policy"}, false,
			[]string{"explicit deny", "service control policy", "AWS Organizations"}, "attach"},
	}
	for _, tt := range tests {
		got := denialRemedy(tt.d, "arn:aws:iam::1:role/r", tt.public)
		for _, w := range tt.want {
			if !strings.Contains(got, w) {
				t.Errorf("denialRemedy(%+v) = %q, lacks %q", tt.d, got, w)
			}
		}
		if strings.Contains(got, tt.dontWant) {
			t.Errorf("denialRemedy(%+v) = %q, must not say %q", tt.d, got, tt.dontWant)
		}
	}
}
