// Package token fetches ECR and ECR Public authorization tokens through
// aws-sdk-go-v2, with the SDK's default credential chain, the registry's own
// region and endpoint flavour (FIPS, dual-stack), per-pod roles assumed with a
// service account token, and retries that stay inside the caller's deadline.
package token

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecrpublic"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"

	"github.com/kubecred/ecr-credential-provider/internal/ecrhost"
	"github.com/kubecred/ecr-credential-provider/internal/plugin"
)

// ECRAPI is the part of the ECR client the fetcher uses.
type ECRAPI interface {
	GetAuthorizationToken(context.Context, *ecr.GetAuthorizationTokenInput, ...func(*ecr.Options)) (*ecr.GetAuthorizationTokenOutput, error)
}

// ECRPublicAPI is the part of the ECR Public client the fetcher uses.
type ECRPublicAPI interface {
	GetAuthorizationToken(context.Context, *ecrpublic.GetAuthorizationTokenInput, ...func(*ecrpublic.Options)) (*ecrpublic.GetAuthorizationTokenOutput, error)
}

// Options tune the fetcher. The zero value is usable.
type Options struct {
	// AttemptTimeout bounds one HTTP attempt, so a hung connection costs one
	// retry rather than the whole deadline. Default 5s.
	AttemptTimeout time.Duration
	// MaxAttempts per API call, including the first. Default 20: throttling
	// is common when a fleet restarts, and the caller's deadline bounds the
	// total anyway.
	MaxAttempts int
	// BaseBackoff is the first retry's backoff ceiling. Default 50ms.
	BaseBackoff time.Duration
	// MaxBackoff caps the jittered exponential backoff. Default 2s.
	MaxBackoff time.Duration
	// SessionName names per-pod role sessions. Default "ecr-credential-provider".
	SessionName string
	// HTTPClient replaces the SDK's HTTP client (tests record requests with it).
	HTTPClient aws.HTTPClient
	Logger     *slog.Logger
	// Version goes into the User-Agent's app ID.
	Version string
}

func (o *Options) defaults() {
	if o.AttemptTimeout <= 0 {
		o.AttemptTimeout = 5 * time.Second
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 20
	}
	if o.BaseBackoff <= 0 {
		o.BaseBackoff = 50 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 2 * time.Second
	}
	if o.SessionName == "" {
		o.SessionName = "ecr-credential-provider"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Version == "" {
		o.Version = "dev"
	}
}

// AppID is what the plugin calls itself in the User-Agent of every AWS
// call, so that CloudTrail tells its calls apart from others of the node.
// The SDK writes it as app/ecr-credential-provider-<version> (it turns the
// slash into a dash); the plugin also adds ecr-credential-provider/<version>.
func (o Options) AppID() string { return "ecr-credential-provider/" + o.Version }

// Fetcher gets tokens from AWS. It builds SDK clients only when asked for a
// token, so that callers served from a cache pay nothing for it.
type Fetcher struct {
	opts Options
}

// New returns a Fetcher.
func New(opts Options) *Fetcher {
	opts.defaults()
	return &Fetcher{opts: opts}
}

// Retryer is the SDK retryer the fetcher uses: full-jitter exponential
// backoff, no client-side retry quota (one short-lived process has nothing to
// protect), and HTTP 429 retried too, as IMDS throttles with a bare 429.
func (f *Fetcher) Retryer() aws.Retryer { return f.retryer(f.opts.MaxBackoff) }

// IMDSMaxBackoff caps the backoff between IMDS attempts. The SDK's
// credentials cache calls IMDS without the caller's deadline, so the IMDS
// client bounds each operation to its own 5 s; with a 2 s cap, a run of
// 429s used up those 5 s in 1-3% of calls under 50% throttling. At 0.5 s a
// dozen or more attempts fit.
const IMDSMaxBackoff = 500 * time.Millisecond

// IMDSRetryer is Retryer with the backoff capped at IMDSMaxBackoff.
func (f *Fetcher) IMDSRetryer() aws.Retryer {
	return f.retryer(min(f.opts.MaxBackoff, IMDSMaxBackoff))
}

func (f *Fetcher) retryer(maxBackoff time.Duration) aws.Retryer {
	return &failFast{RetryerV2: retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = f.opts.MaxAttempts
		o.MaxBackoff = maxBackoff
		// The SDK's legacy backoff starts at one second and, with a cap
		// that low, never jitters: every throttled node would retry in step.
		o.Backoff = fullJitter{base: f.opts.BaseBackoff, max: maxBackoff}
		o.RateLimiter = ratelimit.None
		o.Retryables = append(o.Retryables, retry.RetryableHTTPStatusCode{Codes: map[int]struct{}{429: {}}})
	})}
}

// failFast gives errors that retrying cannot fix one retry, where the SDK
// would retry them until the deadline: a refused connection, an unknown
// host name, a TLS failure. The kubelet pulls one image at a time by
// default, so each second spent here holds up every pull on the node.
// Throttling and 5xx keep their retries.
type failFast struct {
	aws.RetryerV2
	hopeless atomic.Int32
}

func (r *failFast) IsErrorRetryable(err error) bool {
	if hopeless(err) && r.hopeless.Add(1) > 1 {
		return false
	}
	return r.RetryerV2.IsErrorRetryable(err)
}

func hopeless(err error) bool {
	var dns *net.DNSError
	var unknownCA x509.UnknownAuthorityError
	var badName x509.HostnameError
	var badCert x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	var notTLS tls.RecordHeaderError
	var alert tls.AlertError
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) ||
		errors.As(err, &dns) && dns.IsNotFound ||
		errors.As(err, &unknownCA) || errors.As(err, &badName) || errors.As(err, &badCert) ||
		errors.As(err, &verify) || errors.As(err, &notTLS) || errors.As(err, &alert)
}

// fullJitter waits a random time up to base*2^attempt, capped at max.
type fullJitter struct{ base, max time.Duration }

func (b fullJitter) BackoffDelay(attempt int, _ error) (time.Duration, error) {
	ceil := b.max
	if attempt < 30 && b.base<<attempt < b.max {
		ceil = b.base << attempt
	}
	return time.Duration(rand.Int64N(int64(ceil))) + time.Millisecond, nil
}

// LoadConfig loads the SDK configuration for a region with the default
// credential chain intact. An empty region leaves it to the chain (env,
// profile, then IMDS).
func (f *Fetcher) LoadConfig(ctx context.Context, region string) (aws.Config, error) {
	httpClient := f.opts.HTTPClient
	if httpClient == nil {
		httpClient = awshttp.NewBuildableClient().WithTimeout(f.opts.AttemptTimeout)
	}
	// The IMDS client replaces any retryer's backoff with a fixed one-second
	// sleep unless told not to; under IMDS throttling that alone eats the
	// deadline. The credential provider gets a client built from the final
	// config (so endpoint and IMDSv1 settings still come from it) with that
	// override turned off.
	roleIMDS := &lazyIMDS{}
	logger := sdkLogger{f.opts.Logger}
	opts := []func(*config.LoadOptions) error{
		config.WithRetryer(f.Retryer),
		config.WithLogger(logger),
		config.WithAppID(f.opts.AppID()),
		config.WithAPIOptions([]func(*middleware.Stack) error{awsmiddleware.AddUserAgentKeyValue("ecr-credential-provider", f.opts.Version)}),
		config.WithHTTPClient(httpClient),
		config.WithEC2RoleCredentialOptions(func(o *ec2rolecreds.Options) { o.Client = roleIMDS }),
	}
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	} else {
		opts = append(opts, config.WithEC2IMDSRegion(func(o *config.UseEC2IMDSRegion) {
			o.Client = imds.New(imds.Options{Retryer: f.IMDSRetryer(), HTTPClient: httpClient, DisableDefaultMaxBackoff: true, Logger: logger})
		}))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("loading AWS configuration: %w", err)
	}
	roleIMDS.client = imds.NewFromConfig(cfg, func(o *imds.Options) {
		o.Retryer = f.IMDSRetryer()
		o.DisableDefaultMaxBackoff = true
	})
	if cfg.Region == "" {
		return aws.Config{}, errors.New("no AWS region: the image host names none and none is configured; set AWS_REGION in the provider's env")
	}
	return cfg, nil
}

// lazyIMDS lets the credential provider be configured before the config it
// builds its IMDS client from exists; it is first called after loading.
type lazyIMDS struct{ client *imds.Client }

func (l *lazyIMDS) GetMetadata(ctx context.Context, in *imds.GetMetadataInput, opts ...func(*imds.Options)) (*imds.GetMetadataOutput, error) {
	if l.client == nil {
		return nil, errors.New("IMDS client used before the AWS configuration finished loading")
	}
	return l.client.GetMetadata(ctx, in, opts...)
}

// ECRClient returns an ECR client for the registry, on its FIPS or
// dual-stack API endpoint when the registry host is one. An explicit
// endpoint (AWS_ENDPOINT_URL_ECR, a VPC endpoint say) wins over both: the
// SDK refuses to combine them, and the operator chose it on purpose.
func ECRClient(cfg aws.Config, reg ecrhost.Registry) *ecr.Client {
	return ecr.NewFromConfig(cfg, func(o *ecr.Options) {
		if o.BaseEndpoint != nil {
			o.EndpointOptions.UseFIPSEndpoint = aws.FIPSEndpointStateDisabled
			o.EndpointOptions.UseDualStackEndpoint = aws.DualStackEndpointStateDisabled
			return
		}
		if reg.FIPS {
			o.EndpointOptions.UseFIPSEndpoint = aws.FIPSEndpointStateEnabled
		}
		if reg.DualStack {
			o.EndpointOptions.UseDualStackEndpoint = aws.DualStackEndpointStateEnabled
		}
	})
}

// ECRPublicClient returns an ECR Public client. ECR Public issues tokens only
// in us-east-1, whatever the node's region.
func ECRPublicClient(cfg aws.Config, reg ecrhost.Registry) *ecrpublic.Client {
	return ecrpublic.NewFromConfig(cfg, func(o *ecrpublic.Options) {
		o.Region = ecrhost.PublicRegion
		if o.BaseEndpoint != nil {
			o.EndpointOptions.UseFIPSEndpoint = aws.FIPSEndpointStateDisabled
			o.EndpointOptions.UseDualStackEndpoint = aws.DualStackEndpointStateDisabled
			return
		}
		if reg.DualStack {
			o.EndpointOptions.UseDualStackEndpoint = aws.DualStackEndpointStateEnabled
		}
	})
}

// WithIdentity returns cfg with credentials for id: unchanged for the node's
// identity, or the role assumed with the pod's service account token.
func (f *Fetcher) WithIdentity(cfg aws.Config, id plugin.Identity) aws.Config {
	cfg, _ = f.withIdentity(cfg, id)
	return cfg
}

func (f *Fetcher) withIdentity(cfg aws.Config, id plugin.Identity) (aws.Config, *stsRecorder) {
	if !id.PerPod() {
		return cfg, nil
	}
	client := sts.NewFromConfig(cfg)
	provider := &stsRecorder{CredentialsProvider: stscreds.NewWebIdentityRoleProvider(client, id.RoleARN, staticToken(id.WebIdentityToken), func(o *stscreds.WebIdentityRoleOptions) {
		o.RoleSessionName = f.opts.SessionName
	})}
	cfg = cfg.Copy()
	cfg.Credentials = aws.NewCredentialsCache(provider)
	return cfg, provider
}

// stsRecorder remembers why assuming the pod's role failed: when STS runs
// out the deadline, the ECR call's error says only that getting its
// credentials was cancelled, and the operator would chase ECR's policy.
type stsRecorder struct {
	aws.CredentialsProvider
	mu  sync.Mutex
	ok  bool
	err error
}

func (r *stsRecorder) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := r.CredentialsProvider.Retrieve(ctx)
	r.mu.Lock()
	r.ok, r.err = err == nil, err
	r.mu.Unlock()
	return c, err
}

// failed reports whether the role was never assumed, and STS's error if it
// answered one. The SDK's credentials cache lets STS retries run on after
// the caller's deadline, so a call can fail with STS still retrying.
func (r *stsRecorder) failed() (bool, error) {
	if r == nil {
		return false, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.ok, r.err
}

type staticToken string

func (t staticToken) GetIdentityToken() ([]byte, error) { return []byte(t), nil }

// Fetch gets a token for the registry with the identity's credentials. For a
// host that is not ECR-shaped it uses the SDK's configured region.
func (f *Fetcher) Fetch(ctx context.Context, reg ecrhost.Registry, id plugin.Identity) (plugin.Token, error) {
	region := reg.Region
	if !reg.ECR {
		f.opts.Logger.Warn("registry host is not ECR-shaped; using the AWS SDK's configured region", "host", reg.Hostname)
	}
	cfg, err := f.LoadConfig(ctx, region)
	if err != nil {
		return plugin.Token{}, err
	}
	cfg, assumed := f.withIdentity(cfg, id)
	var tok plugin.Token
	if reg.Public {
		client := ECRPublicClient(cfg, reg)
		f.logEndpoint(client.Options().BaseEndpoint, "AWS_ENDPOINT_URL_ECR_PUBLIC", reg)
		tok, err = FetchPublic(ctx, client)
	} else {
		client := ECRClient(cfg, reg)
		f.logEndpoint(client.Options().BaseEndpoint, "AWS_ENDPOINT_URL_ECR", reg)
		f.opts.Logger.Info("calling ecr:GetAuthorizationToken", "region", cfg.Region, "fips", reg.FIPS, "dualStack", reg.DualStack, "perPodRole", id.RoleARN)
		tok, err = FetchPrivate(ctx, client)
	}
	if failed, stsErr := assumed.failed(); err != nil && failed {
		if stsErr == nil {
			// STS is still retrying: what ended the call is the deadline.
			stsErr = context.Cause(ctx)
			if stsErr == nil {
				stsErr = context.DeadlineExceeded
			}
		}
		return plugin.Token{}, Explain(stsErr, "sts:AssumeRoleWithWebIdentity")
	}
	return tok, err
}

func (f *Fetcher) logEndpoint(endpoint *string, env string, reg ecrhost.Registry) {
	if endpoint == nil {
		return
	}
	msg := "using the explicit endpoint (" + env + " or the shared config's services section)"
	if reg.FIPS || reg.DualStack {
		msg += " instead of the registry's FIPS or dual-stack API endpoint"
	}
	f.opts.Logger.Info(msg, "endpoint", *endpoint, "registry", reg.Host)
}

// FetchPrivate calls ECR's GetAuthorizationToken and decodes the answer.
func FetchPrivate(ctx context.Context, api ECRAPI) (plugin.Token, error) {
	out, err := api.GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		return plugin.Token{}, Explain(err, "ecr:GetAuthorizationToken")
	}
	if out == nil || len(out.AuthorizationData) == 0 || out.AuthorizationData[0].AuthorizationToken == nil {
		return plugin.Token{}, errors.New("ecr:GetAuthorizationToken returned no authorization data")
	}
	d := out.AuthorizationData[0]
	return issued(decode(*d.AuthorizationToken, d.ExpiresAt))(out.ResultMetadata)
}

// FetchPublic calls ECR Public's GetAuthorizationToken and decodes the answer.
func FetchPublic(ctx context.Context, api ECRPublicAPI) (plugin.Token, error) {
	out, err := api.GetAuthorizationToken(ctx, &ecrpublic.GetAuthorizationTokenInput{})
	if err != nil {
		return plugin.Token{}, Explain(err, "ecr-public:GetAuthorizationToken")
	}
	if out == nil || out.AuthorizationData == nil || out.AuthorizationData.AuthorizationToken == nil {
		return plugin.Token{}, errors.New("ecr-public:GetAuthorizationToken returned no authorization data")
	}
	return issued(decode(*out.AuthorizationData.AuthorizationToken, out.AuthorizationData.ExpiresAt))(out.ResultMetadata)
}

// issued sets the token's time of issue to AWS's clock, from the Date
// header the SDK recorded, so its life does not depend on the node's clock.
func issued(t plugin.Token, err error) func(middleware.Metadata) (plugin.Token, error) {
	return func(md middleware.Metadata) (plugin.Token, error) {
		if err == nil {
			if at, ok := awsmiddleware.GetServerTime(md); ok {
				t.IssuedAt = at
			}
		}
		return t, err
	}
}

func decode(encoded string, expiresAt *time.Time) (plugin.Token, error) {
	raw, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		return plugin.Token{}, errors.New("authorization token is not valid base64")
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok || user == "" || pass == "" {
		return plugin.Token{}, errors.New("authorization token is not of the form user:password")
	}
	t := plugin.Token{Username: user, Password: pass}
	if expiresAt != nil {
		t.ExpiresAt = *expiresAt
	}
	return t, nil
}

// Explain turns an SDK error into one line an operator can act on. The SDK's
// messages carry no secrets: request IDs, codes and ARNs only.
func Explain(err error, action string) error {
	action = innermostAction(err, action)
	if strings.HasPrefix(action, "sts:") {
		return fmt.Errorf("assuming the pod's role through STS: %w", explain(err, action))
	}
	return explain(err, action)
}

// noCredentials is the SDK's error when its whole default chain came up
// empty: IMDS, the chain's last source, found no role.
const noCredentials = "no EC2 IMDS role found"

func explain(err error, action string) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s did not complete in time: %w", action, err)
	}
	if strings.Contains(err.Error(), noCredentials) {
		// Name only IMDS's own failure, not the chain's wrapping of it.
		cause := err
		var op *smithy.OperationError
		for e := err; errors.As(e, &op); e = op.Err {
			if op.Service() == "ec2imds" {
				cause = op.Err
				break
			}
		}
		return fmt.Errorf("%s failed: no AWS credentials: the SDK tried the environment (AWS_ACCESS_KEY_ID), the shared config and credentials files (AWS_PROFILE), web identity (AWS_WEB_IDENTITY_TOKEN_FILE), container credentials (AWS_CONTAINER_CREDENTIALS_FULL_URI) and the EC2 instance metadata service, IMDS (%v); fix: on EC2 attach an instance profile with AmazonEC2ContainerRegistryReadOnly; outside EC2 give the provider's env AWS_PROFILE with a profile using credential_process (IAM Roles Anywhere's aws_signing_helper), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
			action, oneLine(cause))
	}
	var api smithy.APIError
	if !errors.As(err, &api) {
		return fmt.Errorf("%s failed: %w", action, err)
	}
	switch code := api.ErrorCode(); code {
	case "AccessDeniedException", "AccessDenied":
		return &deniedError{action: action, msg: api.ErrorMessage()}
	case "ExpiredTokenException", "ExpiredToken", "InvalidIdentityToken", "InvalidIdentityTokenException":
		return fmt.Errorf("%s failed: the service account token was refused (%s: %s)", action, code, api.ErrorMessage())
	case "UnrecognizedClientException", "InvalidClientTokenId", "SignatureDoesNotMatch":
		return fmt.Errorf("%s failed: AWS did not accept the node's credentials (%s); check which credentials the SDK chain picks with 'ecr-credential-provider doctor IMAGE'", action, code)
	default:
		return fmt.Errorf("%s failed: %s: %s", action, code, api.ErrorMessage())
	}
}

// innermostAction names the STS call when a per-pod role's STS error comes
// wrapped in the ECR call's error, or the operator chases the wrong policy.
func innermostAction(err error, action string) string {
	var op *smithy.OperationError
	for errors.As(err, &op) {
		if op.Service() == "STS" {
			action = "sts:" + op.Operation()
		}
		err = op.Err
	}
	return action
}

type deniedError struct{ action, msg string }

func (e *deniedError) Error() string {
	fix := "attach the managed policy AmazonEC2ContainerRegistryReadOnly to the node role"
	switch {
	case strings.HasPrefix(e.action, "sts:"):
		fix = "let the service account assume the role: its trust policy must allow sts:AssumeRoleWithWebIdentity for this cluster's OIDC provider and service account"
	case strings.HasPrefix(e.action, "ecr-public:"):
		fix = "attach the managed policy AmazonElasticContainerRegistryPublicReadOnly (it includes sts:GetServiceBearerToken)"
	}
	return fmt.Sprintf("%s denied: missing permission %s (%s); fix: %s", e.action, e.action, e.msg, fix)
}

func (e *deniedError) Is(target error) bool { return target == plugin.ErrAccessDenied }

func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }
