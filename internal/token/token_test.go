package token_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/smithy-go"

	"github.com/kubecred/ecr-credential-provider/internal/ecrhost"
	"github.com/kubecred/ecr-credential-provider/internal/plugin"
	"github.com/kubecred/ecr-credential-provider/internal/token"
)

// recorder answers every request with a canned GetAuthorizationToken body
// and remembers which URL the SDK chose. It never touches the network.
type recorder struct {
	mu   sync.Mutex
	urls []string
}

func (r *recorder) Do(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.urls = append(r.urls, req.URL.Scheme+"://"+req.URL.Host)
	r.mu.Unlock()
	tok := "QVdTOnNlY3JldA==" // AWS:secret
	body := fmt.Sprintf(`{"authorizationData":[{"authorizationToken":%q,"expiresAt":%d}]}`, tok, time.Now().Add(12*time.Hour).Unix())
	if strings.Contains(req.Header.Get("X-Amz-Target"), "SpencerFrontendService") {
		body = fmt.Sprintf(`{"authorizationData":{"authorizationToken":%q,"expiresAt":%d}}`, tok, time.Now().Add(12*time.Hour).Unix())
	}
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/x-amz-json-1.1"}},
		Body: io.NopCloser(strings.NewReader(body)), Request: req}, nil
}

// isolate gives the SDK static keys and nothing else from this machine.
func isolate(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_SESSION_TOKEN": "",
		"AWS_CONFIG_FILE": dir + "/none", "AWS_SHARED_CREDENTIALS_FILE": dir + "/none", "AWS_PROFILE": "",
		"AWS_REGION": "", "AWS_DEFAULT_REGION": "", "AWS_EC2_METADATA_DISABLED": "true",
		"AWS_ENDPOINT_URL": "", "AWS_ENDPOINT_URL_ECR": "", "AWS_ENDPOINT_URL_ECR_PUBLIC": "", "AWS_ENDPOINT_URL_STS": "",
		"AWS_USE_FIPS_ENDPOINT": "", "AWS_USE_DUALSTACK_ENDPOINT": "", "AWS_CA_BUNDLE": "",
	} {
		t.Setenv(k, v)
	}
}

// The API endpoint must follow the registry's flavour: upstream calls the
// plain endpoint even for FIPS and dual-stack registries.
func TestEndpointFollowsRegistryForm(t *testing.T) {
	isolate(t)
	tests := []struct{ image, wantURL string }{
		{"123456789012.dkr.ecr.us-east-1.amazonaws.com/a", "https://api.ecr.us-east-1.amazonaws.com"},
		{"123456789012.dkr.ecr-fips.us-east-2.amazonaws.com/a", "https://api.ecr-fips.us-east-2.amazonaws.com"},
		{"123456789012.dkr-ecr.eu-west-1.on.aws/a", "https://ecr.eu-west-1.api.aws"},
		{"123456789012.dkr-ecr-fips.us-west-2.on.aws/a", "https://ecr-fips.us-west-2.api.aws"},
		{"123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/a", "https://api.ecr.cn-north-1.amazonaws.com.cn"},
		{"123456789012.dkr-ecr.cn-north-1.on.amazonwebservices.com.cn/a", "https://ecr.cn-north-1.api.amazonwebservices.com.cn"},
		{"123456789012.dkr.ecr.us-gov-west-1.amazonaws.com/a", "https://api.ecr.us-gov-west-1.amazonaws.com"},
		{"123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com/a", "https://api.ecr-fips.us-gov-west-1.amazonaws.com"},
		{"123456789012.dkr.ecr.us-iso-east-1.c2s.ic.gov/a", "https://api.ecr.us-iso-east-1.c2s.ic.gov"},
		{"public.ecr.aws/a/b", "https://api.ecr-public.us-east-1.amazonaws.com"},
	}
	for _, tt := range tests {
		t.Run(tt.image, func(t *testing.T) {
			rec := &recorder{}
			reg, err := ecrhost.Parse(tt.image)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := token.New(token.Options{HTTPClient: rec}).Fetch(context.Background(), reg, plugin.Identity{})
			if err != nil {
				t.Fatal(err)
			}
			if tok.Username != "AWS" || tok.Password != "secret" || tok.ExpiresAt.IsZero() {
				t.Fatalf("token %+v", tok)
			}
			if len(rec.urls) != 1 || rec.urls[0] != tt.wantURL {
				t.Fatalf("SDK called %v, want %s", rec.urls, tt.wantURL)
			}
		})
	}
}

type apiErr struct{ code, msg string }

func (e apiErr) Error() string                 { return e.code + ": " + e.msg }
func (e apiErr) ErrorCode() string             { return e.code }
func (e apiErr) ErrorMessage() string          { return e.msg }
func (e apiErr) ErrorFault() smithy.ErrorFault { return smithy.FaultClient }

func TestExplain(t *testing.T) {
	denied := apiErr{"AccessDeniedException", "User: arn:aws:sts::1:assumed-role/node/i-1 is not authorized to perform: ecr:GetAuthorizationToken"}
	stsDenied := &smithy.OperationError{ServiceID: "ECR", OperationName: "GetAuthorizationToken",
		Err: fmt.Errorf("get identity: %w", &smithy.OperationError{ServiceID: "STS", OperationName: "AssumeRoleWithWebIdentity", Err: apiErr{"AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity"}})}
	tests := []struct {
		name       string
		err        error
		action     string
		wantDenied bool
		want       []string
	}{
		{"ecr denied", &smithy.OperationError{ServiceID: "ECR", OperationName: "GetAuthorizationToken", Err: denied}, "ecr:GetAuthorizationToken", true,
			[]string{"missing permission ecr:GetAuthorizationToken", "AmazonEC2ContainerRegistryReadOnly"}},
		{"public denied", apiErr{"AccessDeniedException", "no"}, "ecr-public:GetAuthorizationToken", true,
			[]string{"ecr-public:GetAuthorizationToken", "AmazonElasticContainerRegistryPublicReadOnly"}},
		{"per-pod role refused", stsDenied, "ecr:GetAuthorizationToken", true,
			[]string{"sts:AssumeRoleWithWebIdentity", "trust policy"}},
		{"deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), "ecr:GetAuthorizationToken", false, []string{"did not complete in time"}},
		{"bad keys", apiErr{"UnrecognizedClientException", "The security token included in the request is invalid"}, "ecr:GetAuthorizationToken", false, []string{"did not accept the node's credentials", "doctor"}},
		{"other", apiErr{"ServerException", "oops"}, "ecr:GetAuthorizationToken", false, []string{"ServerException: oops"}},
		{"not an API error", errors.New("dial tcp: refused"), "ecr:GetAuthorizationToken", false, []string{"failed: dial tcp: refused"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := token.Explain(tt.err, tt.action)
			if errors.Is(got, plugin.ErrAccessDenied) != tt.wantDenied {
				t.Fatalf("denied = %v for %v", !tt.wantDenied, got)
			}
			for _, w := range tt.want {
				if !strings.Contains(got.Error(), w) {
					t.Fatalf("%q lacks %q", got, w)
				}
			}
		})
	}
}

// IMDS retries must fit many attempts into the IMDS client's own 5 s per
// operation; other calls may back off longer. Both jitter, so throttled
// nodes don't retry in step.
func TestRetryBackoffCaps(t *testing.T) {
	f := token.New(token.Options{})
	for _, tt := range []struct {
		name    string
		delay   func(attempt int, err error) (time.Duration, error)
		ceiling time.Duration
	}{
		{"ECR and STS", f.Retryer().RetryDelay, 2 * time.Second},
		{"IMDS", f.IMDSRetryer().RetryDelay, 500 * time.Millisecond},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var longest time.Duration
			seen := map[time.Duration]bool{}
			for range 200 {
				d, err := tt.delay(12, errors.New("ThrottlingException"))
				if err != nil {
					t.Fatal(err)
				}
				// Full jitter over [0, ceiling), plus a 1 ms floor.
				if d < time.Millisecond || d > tt.ceiling+time.Millisecond {
					t.Fatalf("backoff %v outside [1ms, %v+1ms]", d, tt.ceiling)
				}
				longest = max(longest, d)
				seen[d] = true
			}
			if longest < tt.ceiling/2 || len(seen) < 100 {
				t.Fatalf("late-attempt backoffs reach %v with %d distinct values; want jitter up to %v", longest, len(seen), tt.ceiling)
			}
		})
	}
}
