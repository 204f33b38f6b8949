package awsemu

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/kubecred/ecr-credential-provider/internal/arn"
)

// OIDCProvider is an IAM OpenID Connect identity provider: the issuer whose
// tokens AssumeRoleWithWebIdentity accepts and the audiences (client IDs) it
// accepts them for.
type OIDCProvider struct {
	// URL is the issuer, e.g. https://oidc.eks.us-west-2.amazonaws.com/id/X or
	// a test API server's https://127.0.0.1:PORT. Tokens must carry it as iss.
	URL string `json:"url"`
	// ClientIDs are the audiences a token's aud must name one of.
	ClientIDs []string `json:"clientIds"`
	// CAPEM holds the CA certificates the issuer's HTTPS is verified with
	// (AWS uses public roots; a test issuer has its own CA).
	CAPEM string `json:"caPem,omitempty"`
}

// Role is an IAM role that web identities may assume.
type Role struct {
	ARN string `json:"arn"`
	// TrustPolicy is the role's trust policy document, as IAM's JSON.
	TrustPolicy string `json:"trustPolicy"`
	// Password, if set, is the registry password in ECR tokens fetched with
	// credentials of this role; otherwise it is derived from the assumed
	// role's ARN like every other principal's (Server.PasswordFor).
	Password string `json:"password,omitempty"`
}

// oidcProvider is a registered provider with its HTTP client.
type oidcProvider struct {
	OIDCProvider
	hostPath string // the URL without scheme: IAM's name for the provider
	client   *http.Client
}

// role is a registered role with its parsed trust policy.
type role struct {
	Role
	policy *policyDocument
}

// providerHostPath is IAM's name for a provider: its URL without https://
// and without a trailing slash.
func providerHostPath(issuer string) string {
	return strings.TrimSuffix(strings.TrimPrefix(issuer, "https://"), "/")
}

// RegisterOIDCProvider adds (or replaces) an OIDC provider. Once any provider
// is registered, AssumeRoleWithWebIdentity judges every token as AWS does:
// before that it accepts any token (the permissive mode the plugin's unit
// tests, which carry no issuer, rely on).
func (s *Server) RegisterOIDCProvider(p OIDCProvider) error {
	u, err := url.Parse(p.URL)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("awsemu: OIDC provider URL %q: want https://HOST[/PATH], as IAM does", p.URL)
	}
	if len(p.ClientIDs) == 0 {
		return fmt.Errorf("awsemu: OIDC provider %s: give at least one client ID (audience), e.g. sts.amazonaws.com", p.URL)
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if p.CAPEM != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(p.CAPEM)) {
			return fmt.Errorf("awsemu: OIDC provider %s: CA bundle holds no PEM certificate", p.URL)
		}
		tlsCfg.RootCAs = pool
	}
	op := &oidcProvider{OIDCProvider: p, hostPath: providerHostPath(p.URL), client: &http.Client{
		Timeout: 5 * time.Second,
		// No proxy: the issuer is reached directly, and a test's proxy
		// settings for its own clients must not leak in.
		Transport: &http.Transport{TLSClientConfig: tlsCfg, Proxy: nil},
	}}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.providers[op.hostPath] = op
	return nil
}

// OIDCProviderARN is the ARN IAM gives the provider of issuer; trust
// policies name it as Principal.Federated.
func (s *Server) OIDCProviderARN(issuer string) string {
	return fmt.Sprintf("arn:aws:iam::%s:oidc-provider/%s", s.opts.Account, providerHostPath(issuer))
}

// RegisterRole adds (or replaces) a role and its trust policy.
func (s *Server) RegisterRole(r Role) error {
	if _, _, err := splitRoleARN(r.ARN); err != nil {
		return err
	}
	pol, err := parsePolicy(r.TrustPolicy)
	if err != nil {
		return fmt.Errorf("awsemu: role %s: MalformedPolicyDocument: %w", r.ARN, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.roles[r.ARN] = &role{Role: r, policy: pol}
	return nil
}

// AssumedRoleARN is the principal AssumeRoleWithWebIdentity returns for
// roleARN and session.
func AssumedRoleARN(roleARN, session string) string {
	partition, account, name := "aws", "", roleARN
	if a, ok := arn.Parse(roleARN); ok {
		partition, account, name = a.Partition, a.Account, a.Resource[strings.LastIndex(a.Resource, "/")+1:]
	}
	return fmt.Sprintf("arn:%s:sts::%s:assumed-role/%s/%s", partition, account, name, session)
}

// splitRoleARN checks arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME.
func splitRoleARN(roleARN string) (partition, account string, err error) {
	a, ok := arn.Parse(roleARN)
	if !ok || a.RoleName() == "" {
		return "", "", fmt.Errorf("awsemu: %q is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)", roleARN)
	}
	return a.Partition, a.Account, nil
}

// stsFailure is a refused AssumeRoleWithWebIdentity: the STS error code,
// HTTP status and message AWS answers with.
type stsFailure struct {
	status  int
	code    string
	message string
}

func (f *stsFailure) Error() string { return f.code + ": " + f.message }

func invalidToken(msg string) *stsFailure {
	return &stsFailure{http.StatusBadRequest, "InvalidIdentityToken", msg}
}

// The messages AWS STS answers with.
const (
	msgNotValidated   = "The web identity token that was passed could not be validated by AWS. Get a new identity token from the identity provider and then retry the request."
	msgIDPUnreachable = "The request could not be fulfilled because the identity provider (IDP) that was asked to verify the incoming identity token could not be reached. " +
		"Couldn't retrieve verification key from your identity provider, please reference AssumeRoleWithWebIdentity documentation for requirements"
	msgNotAuthorized = "Not authorized to perform sts:AssumeRoleWithWebIdentity"
)

// jwtClaims are the claims IAM reads; aud may be a string or a list.
type jwtClaims struct {
	Iss string          `json:"iss"`
	Sub string          `json:"sub"`
	Aud json.RawMessage `json:"aud"`
	Exp *json.Number    `json:"exp"`
	Nbf *json.Number    `json:"nbf"`
}

func (c *jwtClaims) audiences() []string {
	var one string
	if json.Unmarshal(c.Aud, &one) == nil {
		return []string{one}
	}
	var many []string
	json.Unmarshal(c.Aud, &many) //nolint:errcheck // neither shape: no audience
	return many
}

// identity is what a verified token tells about its holder.
type identity struct {
	provider *oidcProvider
	sub, aud string
}

// verifyWebIdentity judges token as IAM does: a registered issuer, a
// signature by one of the issuer's published keys, a current validity
// window and an audience among the provider's client IDs.
func (s *Server) verifyWebIdentity(ctx context.Context, token string) (*identity, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, invalidToken(msgNotValidated)
	}
	var header struct{ Alg, Kid string }
	var claims jwtClaims
	if err := decodeSegment(parts[0], &header); err != nil {
		return nil, invalidToken(msgNotValidated)
	}
	if err := decodeSegment(parts[1], &claims); err != nil || claims.Iss == "" {
		return nil, invalidToken(msgNotValidated)
	}
	s.mu.Lock()
	p := s.providers[providerHostPath(claims.Iss)]
	s.mu.Unlock()
	if p == nil || !strings.HasPrefix(claims.Iss, "https://") {
		return nil, invalidToken("No OpenIDConnect provider found in your account for " + claims.Iss)
	}
	keys, err := p.fetchKeys(ctx)
	if err != nil {
		return nil, &stsFailure{http.StatusBadRequest, "IDPCommunicationError", msgIDPUnreachable}
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || !verifySignature(header.Alg, header.Kid, keys, parts[0]+"."+parts[1], sig) {
		return nil, invalidToken(msgNotValidated)
	}
	now := s.opts.Now()
	if claims.Exp == nil {
		return nil, invalidToken(msgNotValidated)
	}
	exp, err := claims.Exp.Int64()
	if err != nil {
		return nil, invalidToken(msgNotValidated)
	}
	if now.Unix() >= exp {
		return nil, &stsFailure{http.StatusBadRequest, "ExpiredTokenException",
			fmt.Sprintf("Token expired: current date/time %d must be before the expiration date/time %d", now.Unix(), exp)}
	}
	if claims.Nbf != nil {
		if nbf, err := claims.Nbf.Int64(); err != nil || now.Unix() < nbf {
			return nil, invalidToken(msgNotValidated)
		}
	}
	for _, aud := range claims.audiences() {
		for _, id := range p.ClientIDs {
			if aud == id {
				return &identity{provider: p, sub: claims.Sub, aud: aud}, nil
			}
		}
	}
	return nil, invalidToken("Incorrect token audience")
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.UseNumber()
	return d.Decode(v)
}

// jwk is one key of a JWKS; only RSA and EC P-256 signing keys are used.
type jwk struct {
	Kty, Kid, Alg, Use, N, E, Crv, X, Y string
}

// fetchKeys follows the issuer's discovery document to its JWKS, as IAM
// does, on every call: tests rotate keys and expect the change to count.
func (p *oidcProvider) fetchKeys(ctx context.Context) ([]jwk, error) {
	var disc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := p.getJSON(ctx, strings.TrimSuffix(p.URL, "/")+"/.well-known/openid-configuration", &disc); err != nil {
		return nil, err
	}
	if disc.JWKSURI == "" || !strings.HasPrefix(disc.JWKSURI, "https://") {
		return nil, fmt.Errorf("discovery document has no https jwks_uri")
	}
	var set struct{ Keys []jwk }
	if err := p.getJSON(ctx, disc.JWKSURI, &set); err != nil {
		return nil, err
	}
	return set.Keys, nil
}

func (p *oidcProvider) getJSON(ctx context.Context, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(v)
}

// verifySignature checks sig over signed with the key named kid (any key
// when the token names none) under alg.
func verifySignature(alg, kid string, keys []jwk, signed string, sig []byte) bool {
	sum := sha256.Sum256([]byte(signed))
	for _, k := range keys {
		if (kid != "" && k.Kid != kid) || (k.Use != "" && k.Use != "sig") {
			continue
		}
		switch {
		case alg == "RS256" && k.Kty == "RSA":
			pub, err := k.rsaKey()
			if err == nil && rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig) == nil {
				return true
			}
		case alg == "ES256" && k.Kty == "EC" && k.Crv == "P-256" && len(sig) == 64:
			pub, err := k.ecKey()
			r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
			if err == nil && ecdsa.Verify(pub, sum[:], r, s) {
				return true
			}
		}
	}
	return false
}

func (k jwk) rsaKey() (*rsa.PublicKey, error) {
	n, err1 := base64.RawURLEncoding.DecodeString(k.N)
	e, err2 := base64.RawURLEncoding.DecodeString(k.E)
	if err := errors.Join(err1, err2); err != nil || len(e) == 0 || len(e) > 4 {
		return nil, fmt.Errorf("bad RSA key %q", k.Kid)
	}
	return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}, nil
}

func (k jwk) ecKey() (*ecdsa.PublicKey, error) {
	x, err1 := base64.RawURLEncoding.DecodeString(k.X)
	y, err2 := base64.RawURLEncoding.DecodeString(k.Y)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("bad EC key %q", k.Kid)
	}
	if len(x) != 32 || len(y) != 32 {
		return nil, fmt.Errorf("bad EC key %q: P-256 coordinates are 32 bytes", k.Kid)
	}
	// The uncompressed point form; parsing it checks the point is on the curve.
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
	if err != nil {
		return nil, fmt.Errorf("EC key %q is not on P-256", k.Kid)
	}
	return pub, nil
}

// rolePassword is the Password of the registered role principalARN is an
// assumed-role session of, or "".
func (s *Server) rolePassword(principalARN string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.roles {
		if r.Password != "" && strings.HasPrefix(principalARN, AssumedRoleARN(r.ARN, "")) {
			return r.Password
		}
	}
	return ""
}
