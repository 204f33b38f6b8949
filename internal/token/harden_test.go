package token_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kubecred/ecr-credential-provider/internal/ecrhost"
	"github.com/kubecred/ecr-credential-provider/internal/plugin"
	"github.com/kubecred/ecr-credential-provider/internal/token"
)

// scripted answers each request with what answer returns, counting
// attempts per X-Amz-Target or STS action, and never touches the network.
type scripted struct {
	mu       sync.Mutex
	n        map[string]int
	agents   []string
	answer   func(kind string, n int, req *http.Request) (*http.Response, error)
	lastHost string
}

func (s *scripted) Do(req *http.Request) (*http.Response, error) {
	kind := req.Header.Get("X-Amz-Target")
	if kind == "" {
		var body []byte
		if req.Body != nil {
			body, _ = io.ReadAll(req.Body)
		}
		kind = req.Method + " " + req.URL.Path
		if strings.Contains(string(body), "Action=") {
			kind = "sts"
		}
	}
	s.mu.Lock()
	if s.n == nil {
		s.n = map[string]int{}
	}
	s.n[kind]++
	n := s.n[kind]
	s.agents = append(s.agents, req.Header.Get("User-Agent"))
	s.lastHost = req.URL.Scheme + "://" + req.URL.Host
	s.mu.Unlock()
	return s.answer(kind, n, req)
}

func (s *scripted) count(prefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := 0
	for k, v := range s.n {
		if strings.HasPrefix(k, prefix) {
			c += v
		}
	}
	return c
}

func reply(req *http.Request, status int, hdr http.Header, body string) *http.Response {
	if hdr == nil {
		hdr = http.Header{}
	}
	if hdr.Get("Content-Type") == "" {
		hdr.Set("Content-Type", "application/x-amz-json-1.1")
	}
	return &http.Response{StatusCode: status, Header: hdr, Body: io.NopCloser(strings.NewReader(body)), Request: req}
}

func tokenBody(expires time.Time) string {
	return fmt.Sprintf(`{"authorizationData":[{"authorizationToken":"QVdTOnNlY3JldA==","expiresAt":%d}]}`, expires.Unix())
}

func fetchPrivate(t *testing.T, client *scripted, opts token.Options, image string) (plugin.Token, error) {
	t.Helper()
	reg, err := ecrhost.Parse(image)
	if err != nil {
		t.Fatal(err)
	}
	opts.HTTPClient = client
	opts.BaseBackoff, opts.MaxBackoff = time.Millisecond, time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return token.New(opts).Fetch(ctx, reg, plugin.Identity{})
}

const privImage = "123456789012.dkr.ecr.us-east-1.amazonaws.com/app"

// The token's time of issue is AWS's, from the response's Date header, so a
// node clock hours off does not stretch or shrink its life.
func TestIssuedAtIsAWSClock(t *testing.T) {
	isolate(t)
	aws := time.Now().Add(6 * time.Hour).Truncate(time.Second)
	client := &scripted{answer: func(_ string, _ int, req *http.Request) (*http.Response, error) {
		return reply(req, 200, http.Header{"Date": {aws.UTC().Format(http.TimeFormat)}}, tokenBody(aws.Add(12*time.Hour))), nil
	}}
	tok, err := fetchPrivate(t, client, token.Options{}, privImage)
	if err != nil {
		t.Fatal(err)
	}
	if !tok.IssuedAt.Equal(aws) {
		t.Fatalf("IssuedAt %v, want AWS's Date %v", tok.IssuedAt, aws)
	}
	if life, ok := plugin.Life(tok, time.Now()); !ok || life != 12*time.Hour {
		t.Fatalf("life %v %v, want 12h", life, ok)
	}
}

// Where retrying cannot help, the SDK gets at most one retry; throttling
// and 5xx are retried until they pass.
func TestFailFastOnlyWhereRetryingCannotHelp(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}
	nxdomain := &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "api.ecr.us-east-1.amazonaws.com", IsNotFound: true}}
	tlsErr := x509.UnknownAuthorityError{}
	for name, fail := range map[string]error{"connection refused": refused, "DNS name error": nxdomain, "TLS failure": tlsErr} {
		t.Run(name, func(t *testing.T) {
			isolate(t)
			client := &scripted{answer: func(_ string, _ int, _ *http.Request) (*http.Response, error) { return nil, fail }}
			if _, err := fetchPrivate(t, client, token.Options{}, privImage); err == nil {
				t.Fatal("succeeded")
			}
			if n := client.count("AmazonEC2ContainerRegistry"); n < 1 || n > 2 {
				t.Fatalf("%d attempts, want 1 or 2", n)
			}
		})
	}
	for name, status := range map[string]int{"throttled": 400, "503": 503} {
		t.Run(name, func(t *testing.T) {
			isolate(t)
			client := &scripted{answer: func(_ string, n int, req *http.Request) (*http.Response, error) {
				if n <= 5 {
					return reply(req, status, nil, `{"__type":"ThrottlingException","message":"Rate exceeded"}`), nil
				}
				return reply(req, 200, nil, tokenBody(time.Now().Add(12*time.Hour))), nil
			}}
			if _, err := fetchPrivate(t, client, token.Options{}, privImage); err != nil {
				t.Fatal(err)
			}
			if n := client.count("AmazonEC2ContainerRegistry"); n != 6 {
				t.Fatalf("%d attempts, want 6", n)
			}
		})
	}
}

// An explicit endpoint for ECR wins over the FIPS and dual-stack forms of
// the registry host, and -v 1 says so.
func TestExplicitEndpointWinsOverFIPS(t *testing.T) {
	for _, image := range []string{
		"123456789012.dkr.ecr-fips.us-east-2.amazonaws.com/a",
		"123456789012.dkr-ecr-fips.us-west-2.on.aws/a",
		"123456789012.dkr-ecr.us-west-2.on.aws/a",
	} {
		t.Run(image, func(t *testing.T) {
			isolate(t)
			t.Setenv("AWS_ENDPOINT_URL_ECR", "https://ecr.vpce.example")
			client := &scripted{answer: func(_ string, _ int, req *http.Request) (*http.Response, error) {
				return reply(req, 200, nil, tokenBody(time.Now().Add(12*time.Hour))), nil
			}}
			var logs bytes.Buffer
			_, err := fetchPrivate(t, client, token.Options{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))}, image)
			if err != nil {
				t.Fatal(err)
			}
			if client.lastHost != "https://ecr.vpce.example" {
				t.Fatalf("called %s", client.lastHost)
			}
			if !strings.Contains(logs.String(), "AWS_ENDPOINT_URL_ECR") {
				t.Fatalf("-v 1 does not say the explicit endpoint is used: %q", logs.String())
			}
		})
	}
}

// AWS can tell the plugin's calls apart in CloudTrail.
func TestUserAgentNamesThePlugin(t *testing.T) {
	isolate(t)
	client := &scripted{answer: func(_ string, _ int, req *http.Request) (*http.Response, error) {
		return reply(req, 200, nil, tokenBody(time.Now().Add(12*time.Hour))), nil
	}}
	if _, err := fetchPrivate(t, client, token.Options{Version: "v1.2.3"}, privImage); err != nil {
		t.Fatal(err)
	}
	if ua := client.agents[0]; !strings.Contains(ua, "app/ecr-credential-provider-v1.2.3") || !strings.Contains(ua, " ecr-credential-provider/v1.2.3") {
		t.Fatalf("User-Agent %q has no app ID", ua)
	}
}

// With no credentials anywhere, the error says which sources were tried
// and how to give one on a node outside EC2.
func TestNoCredentialsSaysWhatToDo(t *testing.T) {
	isolate(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	client := &scripted{answer: func(_ string, _ int, _ *http.Request) (*http.Response, error) {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}
	}}
	_, err := fetchPrivate(t, client, token.Options{}, privImage)
	if err == nil {
		t.Fatal("succeeded")
	}
	msg := err.Error()
	for _, want := range []string{"no AWS credentials", "environment", "IMDS", "fix:", "credential_process", "AWS_PROFILE"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("error spans lines: %q", msg)
	}
}

// When STS is what fails on the per-pod path, the error names STS and the
// permission, not ECR's.
func TestPerPodSTSFailureNamesSTS(t *testing.T) {
	for name, body := range map[string]string{
		"throttled": `<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>`,
		"denied":    `<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>Not authorized to perform sts:AssumeRoleWithWebIdentity</Message></Error></ErrorResponse>`,
	} {
		t.Run(name, func(t *testing.T) {
			isolate(t)
			client := &scripted{answer: func(kind string, _ int, req *http.Request) (*http.Response, error) {
				if kind == "sts" {
					return reply(req, 400, http.Header{"Content-Type": {"text/xml"}}, body), nil
				}
				return reply(req, 200, nil, tokenBody(time.Now().Add(12*time.Hour))), nil
			}}
			reg, _ := ecrhost.Parse(privImage)
			f := token.New(token.Options{HTTPClient: client, MaxAttempts: 3, BaseBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
			_, err := f.Fetch(context.Background(), reg, plugin.Identity{RoleARN: "arn:aws:iam::123456789012:role/pod", WebIdentityToken: "jwt"})
			if err == nil {
				t.Fatal("succeeded")
			}
			for _, want := range []string{"STS", "sts:AssumeRoleWithWebIdentity"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %s", err, want)
				}
			}
			if strings.Contains(err.Error(), "ecr:GetAuthorizationToken") {
				t.Errorf("error %q blames ECR", err)
			}
		})
	}
}

// The SDK's own log lines go through the plugin's logger, never raw to
// stderr: IMDS answering the token request with 403 makes the SDK fall
// back to IMDSv1 and warn.
func TestSDKLogsGoThroughOurLogger(t *testing.T) {
	isolate(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "false")
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://169.254.169.254")
	client := &scripted{answer: func(kind string, _ int, req *http.Request) (*http.Response, error) {
		switch {
		case kind == "PUT /latest/api/token":
			return reply(req, 403, nil, ""), nil
		case kind == "GET /latest/meta-data/iam/security-credentials/":
			return reply(req, 200, nil, "node-role"), nil
		case strings.HasPrefix(kind, "GET /latest/meta-data/iam/security-credentials/"):
			return reply(req, 200, nil, fmt.Sprintf(`{"Code":"Success","AccessKeyId":"AKID","SecretAccessKey":"s","Token":"t","Expiration":%q}`, time.Now().Add(time.Hour).UTC().Format(time.RFC3339))), nil
		}
		return reply(req, 200, nil, tokenBody(time.Now().Add(12*time.Hour))), nil
	}}
	var logs bytes.Buffer
	if _, err := fetchPrivate(t, client, token.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}, privImage); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "IMDSv1") {
		t.Fatalf("the SDK's IMDSv1 warning did not reach our logger: %q", logs.String())
	}
}
