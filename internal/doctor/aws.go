package doctor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecrpublic"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/kubecred/ecr-credential-provider/internal/ecrhost"
	"github.com/kubecred/ecr-credential-provider/internal/plugin"
	"github.com/kubecred/ecr-credential-provider/internal/token"
)

// AWS is what the doctor asks of AWS for one registry.
type AWS interface {
	// Credentials retrieves credentials from the default chain.
	Credentials(ctx context.Context) (Creds, error)
	// Identity asks STS whose credentials they are.
	Identity(ctx context.Context) (Identity, error)
	// AuthToken calls (ECR or ECR Public) GetAuthorizationToken. Its error
	// is the SDK's own, so the doctor can read the API error code.
	AuthToken(ctx context.Context) (plugin.Token, error)
	// APIEndpoint is the URL the SDK sends GetAuthorizationToken to, after
	// endpoint overrides (AWS_ENDPOINT_URL_ECR...), FIPS and dual-stack.
	APIEndpoint(ctx context.Context) (string, error)
}

// Creds describes credentials without their secrets.
type Creds struct {
	// Source is aws.Credentials.Source, e.g. "EC2RoleProvider".
	Source      string
	AccessKeyID string
	Expires     time.Time
}

// Identity is STS GetCallerIdentity's answer.
type Identity struct {
	ARN, Account, UserID string
}

// sdkAWS is AWS through aws-sdk-go-v2, with clients built by the token
// package so endpoint choices (FIPS, dual-stack, ECR Public's region) live
// in one place.
type sdkAWS struct {
	cfg aws.Config
	reg ecrhost.Registry
}

// NewSDK loads the SDK's default configuration for the registry's region.
// attempt bounds each HTTP attempt; a doctor retries little, it reports.
func NewSDK(ctx context.Context, reg ecrhost.Registry, attempt time.Duration) (AWS, error) {
	f := fetcher(attempt)
	region := reg.Region
	if reg.Public {
		region = ecrhost.PublicRegion
	}
	cfg, err := f.LoadConfig(ctx, region)
	if err != nil {
		return nil, err
	}
	return &sdkAWS{cfg: cfg, reg: reg}, nil
}

// fetcher is the plugin's token fetcher, tuned for a doctor: it reports
// rather than retries.
func fetcher(attempt time.Duration) *token.Fetcher {
	return token.New(token.Options{AttemptTimeout: attempt, MaxAttempts: 2, MaxBackoff: 200 * time.Millisecond})
}

// NewPodSDK is NewSDK as a pod's role: credentials come from
// AssumeRoleWithWebIdentity with the service account token, through the
// same stscreds provider the plugin uses (the call itself is unsigned).
func NewPodSDK(ctx context.Context, reg ecrhost.Registry, roleARN, tok string, attempt time.Duration) (AWS, error) {
	a, err := NewSDK(ctx, reg, attempt)
	if err != nil {
		return nil, err
	}
	s := a.(*sdkAWS)
	s.cfg = fetcher(attempt).WithIdentity(s.cfg, plugin.Identity{RoleARN: roleARN, WebIdentityToken: tok})
	return s, nil
}

func (s *sdkAWS) Credentials(ctx context.Context) (Creds, error) {
	if s.cfg.Credentials == nil {
		return Creds{}, errors.New("the SDK configuration has no credential provider")
	}
	c, err := s.cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return Creds{Source: c.Source}, err
	}
	out := Creds{Source: c.Source, AccessKeyID: c.AccessKeyID}
	if c.CanExpire {
		out.Expires = c.Expires
	}
	return out, nil
}

func (s *sdkAWS) Identity(ctx context.Context) (Identity, error) {
	out, err := sts.NewFromConfig(s.cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return Identity{}, err
	}
	return Identity{ARN: aws.ToString(out.Arn), Account: aws.ToString(out.Account), UserID: aws.ToString(out.UserId)}, nil
}

func (s *sdkAWS) AuthToken(ctx context.Context) (plugin.Token, error) {
	// The token package decodes; the raw SDK error is kept for the doctor,
	// which reads the API error code and message itself.
	if s.reg.Public {
		rec := &recorder[*ecrpublic.GetAuthorizationTokenInput, *ecrpublic.GetAuthorizationTokenOutput, *ecrpublic.Options]{call: token.ECRPublicClient(s.cfg, s.reg).GetAuthorizationToken}
		t, err := token.FetchPublic(ctx, rec)
		return t, firstErr(rec.err, err)
	}
	rec := &recorder[*ecr.GetAuthorizationTokenInput, *ecr.GetAuthorizationTokenOutput, *ecr.Options]{call: token.ECRClient(s.cfg, s.reg).GetAuthorizationToken}
	t, err := token.FetchPrivate(ctx, rec)
	return t, firstErr(rec.err, err)
}

func (s *sdkAWS) APIEndpoint(ctx context.Context) (string, error) {
	if s.reg.Public {
		o := token.ECRPublicClient(s.cfg, s.reg).Options()
		ep, err := o.EndpointResolverV2.ResolveEndpoint(ctx, ecrpublic.EndpointParameters{
			Region:       aws.String(o.Region),
			UseDualStack: aws.Bool(o.EndpointOptions.UseDualStackEndpoint == aws.DualStackEndpointStateEnabled),
			UseFIPS:      aws.Bool(o.EndpointOptions.UseFIPSEndpoint == aws.FIPSEndpointStateEnabled),
			Endpoint:     o.BaseEndpoint,
		})
		if err != nil {
			return "", fmt.Errorf("resolving the ECR Public API endpoint: %w", err)
		}
		return ep.URI.String(), nil
	}
	o := token.ECRClient(s.cfg, s.reg).Options()
	ep, err := o.EndpointResolverV2.ResolveEndpoint(ctx, ecr.EndpointParameters{
		Region:       aws.String(o.Region),
		UseDualStack: aws.Bool(o.EndpointOptions.UseDualStackEndpoint == aws.DualStackEndpointStateEnabled),
		UseFIPS:      aws.Bool(o.EndpointOptions.UseFIPSEndpoint == aws.FIPSEndpointStateEnabled),
		Endpoint:     o.BaseEndpoint,
	})
	if err != nil {
		return "", fmt.Errorf("resolving the ECR API endpoint: %w", err)
	}
	return ep.URI.String(), nil
}

// recorder keeps the raw SDK error of a GetAuthorizationToken call that
// the token package wraps; it fits both token.ECRAPI and token.ECRPublicAPI.
type recorder[In, Out, Opt any] struct {
	call func(context.Context, In, ...func(Opt)) (Out, error)
	err  error
}

func (r *recorder[In, Out, Opt]) GetAuthorizationToken(ctx context.Context, in In, fns ...func(Opt)) (Out, error) {
	out, err := r.call(ctx, in, fns...)
	r.err = err
	return out, err
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
