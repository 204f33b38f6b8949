package awsemu

import (
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// awsEnv lists the settings that could leak a developer's AWS setup into a
// test; isolate clears them.
var awsEnv = []string{
	"AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY",
	"AWS_SECRET_KEY", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ROLE_ARN",
	"AWS_ROLE_SESSION_NAME", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
	"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_ENDPOINT_URL",
	"AWS_EC2_METADATA_DISABLED", "AWS_EC2_METADATA_SERVICE_ENDPOINT", "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
	"AWS_EC2_METADATA_V1_DISABLED", "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE", "AWS_USE_FIPS_ENDPOINT",
	"AWS_USE_DUALSTACK_ENDPOINT", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "AWS_CA_BUNDLE",
	"AWS_ENDPOINT_URL_ECR", "AWS_ENDPOINT_URL_ECR_PUBLIC", "AWS_ENDPOINT_URL_STS",
}

// startEmu starts an emulator and points the process environment (for this
// test only) at it, with empty AWS config files.
func startEmu(t *testing.T, opts Options) *Server {
	t.Helper()
	s, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	dir := t.TempDir()
	for _, name := range []string{"config", "credentials"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range awsEnv {
		t.Setenv(k, "") // registers restoration
		os.Unsetenv(k)
	}
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	return s
}

// loadConfig is the default SDK chain, retrying up to attempts times without
// waiting between attempts.
func loadConfig(t *testing.T, region string, attempts int, extra ...func(*config.LoadOptions) error) aws.Config {
	t.Helper()
	opts := append([]func(*config.LoadOptions) error{
		config.WithRegion(region),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = attempts
				o.RateLimiter = ratelimit.None
				o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
			})
		}),
	}, extra...)
	cfg, err := config.LoadDefaultConfig(context.Background(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// ecrPassword calls ECR GetAuthorizationToken and returns the decoded password
// and proxy endpoint.
func ecrPassword(ctx context.Context, cfg aws.Config, optFns ...func(*ecr.Options)) (string, string, error) {
	out, err := ecr.NewFromConfig(cfg, optFns...).GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		return "", "", err
	}
	if len(out.AuthorizationData) != 1 {
		return "", "", errors.New("want exactly one authorizationData")
	}
	d := out.AuthorizationData[0]
	raw, err := base64.StdEncoding.DecodeString(aws.ToString(d.AuthorizationToken))
	if err != nil {
		return "", "", err
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok || user != "AWS" {
		return "", "", errors.New("token is not AWS:<password>")
	}
	if d.ExpiresAt == nil || time.Until(*d.ExpiresAt) < time.Hour {
		return "", "", errors.New("token expiry missing or too short")
	}
	return pass, aws.ToString(d.ProxyEndpoint), nil
}

func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func TestIMDSCredentialsSignECR(t *testing.T) {
	s := startEmu(t, Options{Account: "111122223333", Region: "eu-central-1", RoleName: "node"})
	ctx := context.Background()

	// Region from IMDS, credentials from the default chain's IMDS provider.
	cfg := loadConfig(t, "", 1, config.WithEC2IMDSRegion())
	if cfg.Region != "eu-central-1" {
		t.Fatalf("region from IMDS = %q, want eu-central-1", cfg.Region)
	}
	creds, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if creds.Source != "EC2RoleProvider" || creds.SessionToken == "" || !creds.CanExpire {
		t.Errorf("credentials = source %q, token set %v, can expire %v; want EC2RoleProvider temporary keys",
			creds.Source, creds.SessionToken != "", creds.CanExpire)
	}

	pass, endpoint, err := ecrPassword(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if want := "arn:aws:sts::111122223333:assumed-role/node/" + InstanceID; s.InstanceARN() != want {
		t.Errorf("InstanceARN = %s, want %s", s.InstanceARN(), want)
	}
	if pass != s.PasswordFor(s.InstanceARN()) {
		t.Errorf("password is not the instance role's")
	}
	if endpoint != "https://111122223333.dkr.ecr.eu-central-1.amazonaws.com" {
		t.Errorf("proxyEndpoint = %s", endpoint)
	}

	st := s.Stats()
	for _, op := range []string{"imds/GetToken", "imds/ListRoles", "imds/GetCredentials", "imds/GetInstanceIdentityDocument", "ecr/GetAuthorizationToken"} {
		if st.Ops[op].Status[200] == 0 {
			t.Errorf("no successful %s request; stats %+v", op, st.Ops)
		}
	}
	var rec Record
	for _, r := range s.Requests() {
		if r.Target == TargetECR {
			rec = r
		}
	}
	if rec.Principal != s.InstanceARN() || rec.AccessKeyID != creds.AccessKeyID || rec.Status != 200 || rec.Region != "eu-central-1" {
		t.Errorf("ECR record = %+v", rec)
	}
}

// tamper returns an ECR option that changes the request after the SDK signed it.
func tamper(f func(*smithyhttp.Request)) func(*ecr.Options) {
	return func(o *ecr.Options) {
		o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
			return st.Finalize.Add(middleware.FinalizeMiddlewareFunc("tamper",
				func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
					f(in.Request.(*smithyhttp.Request))
					return next.HandleFinalize(ctx, in)
				}), middleware.After)
		})
	}
}

func TestECRSignatureChecks(t *testing.T) {
	tests := []struct {
		name     string
		opt      func(*ecr.Options)
		skew     time.Duration
		wantCode string
	}{
		{name: "untouched", wantCode: ""},
		{name: "signature altered", wantCode: "InvalidSignatureException", opt: tamper(func(r *smithyhttp.Request) {
			a := r.Header.Get("Authorization")
			r.Header.Set("Authorization", a[:len(a)-4]+"0000")
		})},
		{name: "signed header altered", wantCode: "InvalidSignatureException", opt: tamper(func(r *smithyhttp.Request) {
			r.Header.Set("Content-Type", "application/x-amz-json-1.0")
		})},
		{name: "session token dropped", wantCode: "UnrecognizedClientException", opt: tamper(func(r *smithyhttp.Request) {
			r.Header.Del("X-Amz-Security-Token")
		})},
		{name: "unknown key", wantCode: "UnrecognizedClientException", opt: func(o *ecr.Options) {
			o.Credentials = aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
				return aws.Credentials{AccessKeyID: "AKIAUNKNOWN", SecretAccessKey: "x"}, nil
			})
		}},
		{name: "client clock ahead", skew: -10 * time.Minute, wantCode: "InvalidSignatureException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := Options{}
			if tt.skew != 0 {
				opts.Now = func() time.Time { return time.Now().Add(tt.skew) }
			}
			s := startEmu(t, opts)
			cfg := loadConfig(t, "us-west-2", 1)
			var optFns []func(*ecr.Options)
			if tt.opt != nil {
				optFns = append(optFns, tt.opt)
			}
			_, _, err := ecrPassword(context.Background(), cfg, optFns...)
			if got := errorCode(err); got != tt.wantCode || (tt.wantCode == "") != (err == nil) {
				t.Fatalf("error %v (code %q), want code %q", err, got, tt.wantCode)
			}
			o := s.Stats().Op(TargetECR, "GetAuthorizationToken")
			if wantFail := map[bool]int{true: 0, false: 1}[tt.wantCode == ""]; o.SignatureFailures != wantFail || o.Requests != 1 {
				t.Errorf("stats %+v, want 1 request and %d signature failures", o, wantFail)
			}
		})
	}
}
