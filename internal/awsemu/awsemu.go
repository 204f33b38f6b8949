// Package awsemu is a loopback emulator of the AWS endpoints the credential
// provider talks to (EC2 IMDSv2, ECR and ECR Public GetAuthorizationToken, STS
// AssumeRoleWithWebIdentity and GetCallerIdentity), so tests and benchmarks can
// drive the real aws-sdk-go-v2 end to end without leaving 127.0.0.1.
//
// One HTTP listener serves every target. Requests are routed by path
// (/latest/... is IMDS), by X-Amz-Target (ECR, ECR Public) and by the form
// Action (STS). Every signed call is verified with an independent SigV4
// implementation against credentials the emulator issued (IMDS, STS) or was
// configured with (Options.StaticKeys), so a signing or credential-chain bug in
// the code under test fails the way it would against AWS.
//
// Point a process at the emulator with the variables from Server.Env. Note that
// they do not set a region: callers pick one as they would on a real node.
//
// # Control API
//
// For out-of-process users (cmd/awsemu, benchmarks, the kubelet e2e) the same
// listener serves a JSON control API under /_emu/:
//
//	GET  /_emu/stats      Stats as JSON
//	GET  /_emu/requests   []Record as JSON (the request log)
//	POST /_emu/fault      {"target":"ecr","latency":"200ms","errorRate":0.5,"kind":"throttle","status":503,"hangRate":1}
//	                      sets the fault of one target; {"target":"ecr"} alone clears it
//	POST /_emu/deny       {"action":"ecr:GetAuthorizationToken","principal":"arn:..."}; "allow":true undoes it;
//	                      {"refuseRole":"arn:aws:iam::...:role/x"} makes STS refuse that role
//	POST /_emu/reset      Reset: counters, log, faults and policy
//	GET  /_emu/password?principal=ARN[&region=R][&token=N]   the password tokens for that principal carry
//	                      (with token=N, the Nth token's: see Options.RotatePasswords)
//	POST /_emu/oidc-provider {"url":"https://issuer","clientIds":["sts.amazonaws.com"],"caPem":"..."}
//	                      registers an IAM OIDC provider (see OIDCProvider); answers {"arn":...}
//	POST /_emu/role       {"arn":"arn:aws:iam::...:role/x","trustPolicy":"{...}","password":"..."}
//	                      registers a role with its trust policy (see Role)
//
// # Web identity
//
// Until an OIDC provider is registered, AssumeRoleWithWebIdentity accepts
// any token for any role. Once one is, it judges tokens as AWS does: the
// issuer must be registered, the signature must verify against the keys its
// discovery document's jwks_uri serves (fetched over HTTPS on each call),
// exp/nbf must hold and aud must be one of the provider's client IDs
// (InvalidIdentityToken, ExpiredTokenException, IDPCommunicationError
// otherwise); then the role must be registered and its trust policy must
// allow the provider and the token's sub and aud (AccessDenied otherwise).
//
// Targets are "imds", "ecr", "ecr-public" and "sts".
package awsemu

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Target names used by faults, stats and records.
const (
	TargetIMDS      = "imds"
	TargetECR       = "ecr"
	TargetECRPublic = "ecr-public"
	TargetSTS       = "sts"
)

// InstanceID is the EC2 instance the emulated IMDS claims to be.
const InstanceID = "i-0123456789abcdef0"

// Options configures an emulator. Zero values get the defaults noted.
type Options struct {
	Account  string // default 123456789012
	Region   string // IMDS placement region; default us-west-2
	RoleName string // instance profile role; default ecr-node-role
	// Password, if set, is the registry password in every token; otherwise
	// each principal gets its own (see Server.PasswordFor).
	Password string
	// RegionalPasswords gives each region's tokens their own password, as
	// real ECR tokens open only their own region's registries, so a test
	// can tell which region a token came from.
	RegionalPasswords bool
	// RotatePasswords gives every token a password of its own, as real ECR
	// tokens have, so a test can see a refresh bring new credentials: the
	// Nth token a principal gets in a region carries TokenPassword(N).
	RotatePasswords bool
	TokenTTL        time.Duration // ECR token lifetime; default 12h
	CredentialTTL   time.Duration // IMDS and STS credential lifetime; default 1h
	// StaticKeys are long-term keys (for env or shared-file credentials),
	// by access key ID.
	StaticKeys map[string]StaticKey
	Seed       int64         // seeds fault decisions and generated keys; 0 uses 1
	MaxSkew    time.Duration // allowed client clock skew; default 5m
	// Now is the emulator clock; default time.Now. Credentials and tokens
	// expire against it.
	Now func() time.Time
}

// StaticKey is a configured long-term access key.
type StaticKey struct {
	Secret string
	ARN    string // principal the key belongs to
	Token  string // optional session token the key must be used with
}

// Server is a running emulator. All methods are safe for concurrent use.
type Server struct {
	opts Options
	srv  *http.Server
	url  string
	done chan struct{}
	once sync.Once

	mu         sync.Mutex
	rng        *rand.Rand
	creds      map[string]*credential // by access key ID
	imdsCred   *credential
	imdsTokens map[string]time.Time
	faults     map[string]Fault
	limits     map[string]*bucket         // token buckets, by target (ratelimit.go)
	denies     map[string]map[string]bool // action -> principal ARN ("" = everyone)
	refused    map[string]bool            // role ARNs STS refuses to assume
	providers  map[string]*oidcProvider   // by host/path
	roles      map[string]*role           // by role ARN
	stats      map[string]*OpStats        // "target/operation"
	issued     map[string]int             // ECR tokens issued, by principal and region
	total      int
	inFlight   int
	log        []Record
}

type credential struct {
	AKID, Secret, Token, ARN, UserID string
	Expires                          time.Time // zero = never
}

// Start listens on 127.0.0.1 on a free port and serves until Close.
func Start(opts Options) (*Server, error) { return StartOn("127.0.0.1:0", opts) }

// StartOn is Start on a given address, which must be a loopback address: the
// emulator hands out credentials to anyone who asks.
func StartOn(addr string, opts Options) (*Server, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("awsemu: bad listen address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("awsemu: refusing to listen on non-loopback address %q; use 127.0.0.1:PORT", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("awsemu: %w", err)
	}
	s := newServer(opts)
	s.url = "http://" + ln.Addr().String()
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln) //nolint:errcheck // Serve always returns ErrServerClosed after Close.
	return s, nil
}

func newServer(opts Options) *Server {
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	def(&opts.Account, "123456789012")
	def(&opts.Region, "us-west-2")
	def(&opts.RoleName, "ecr-node-role")
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = 12 * time.Hour
	}
	if opts.CredentialTTL <= 0 {
		opts.CredentialTTL = time.Hour
	}
	if opts.MaxSkew <= 0 {
		opts.MaxSkew = 5 * time.Minute
	}
	if opts.Seed == 0 {
		opts.Seed = 1
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{
		opts:       opts,
		done:       make(chan struct{}),
		rng:        rand.New(rand.NewSource(opts.Seed)),
		creds:      map[string]*credential{},
		imdsTokens: map[string]time.Time{},
		providers:  map[string]*oidcProvider{},
		roles:      map[string]*role{},
		issued:     map[string]int{},
	}
	for id, k := range opts.StaticKeys {
		s.creds[id] = &credential{AKID: id, Secret: k.Secret, Token: k.Token, ARN: k.ARN, UserID: id}
	}
	s.Reset()
	return s
}

// URL is the base URL of the emulator, e.g. http://127.0.0.1:34567.
func (s *Server) URL() string { return s.url }

// Close stops the server and releases hung requests.
func (s *Server) Close() {
	s.once.Do(func() {
		close(s.done)
		if s.srv != nil {
			s.srv.Close()
		}
	})
}

// Env returns KEY=VALUE settings that point aws-sdk-go-v2 at the emulator
// through its standard configuration: the IMDS endpoint and the per-service
// endpoint URLs (AWS_ENDPOINT_URL_<SERVICE ID>).
func (s *Server) Env() []string {
	return []string{
		"AWS_EC2_METADATA_SERVICE_ENDPOINT=" + s.url,
		"AWS_EC2_METADATA_V1_DISABLED=true",
		"AWS_EC2_METADATA_DISABLED=false",
		"AWS_ENDPOINT_URL_ECR=" + s.url,
		"AWS_ENDPOINT_URL_ECR_PUBLIC=" + s.url,
		"AWS_ENDPOINT_URL_STS=" + s.url,
	}
}

// IsolatedEnv is a whole process environment for running a program against
// the emulator with nothing of this machine's AWS setup in it: PATH, HOME set
// to home, empty shared config and credentials files (written under home),
// and Env. Tests, the demo and the benchmark start the plugin with it, so the
// host's profile, AWS_CA_BUNDLE or a real IMDS never leak in.
func (s *Server) IsolatedEnv(home string) ([]string, error) {
	empty := filepath.Join(home, "aws-empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		return nil, err
	}
	return append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + home,
		"AWS_CONFIG_FILE=" + empty, "AWS_SHARED_CREDENTIALS_FILE=" + empty}, s.Env()...), nil
}

// Account is the emulated account ID.
func (s *Server) Account() string { return s.opts.Account }

// RoleARN is the ARN of the instance profile's role.
func (s *Server) RoleARN() string {
	return fmt.Sprintf("arn:aws:iam::%s:role/%s", s.opts.Account, s.opts.RoleName)
}

// InstanceARN is the assumed-role ARN IMDS credentials belong to.
func (s *Server) InstanceARN() string {
	return fmt.Sprintf("arn:aws:sts::%s:assumed-role/%s/%s", s.opts.Account, s.opts.RoleName, InstanceID)
}

// PasswordFor is the registry password in tokens issued to principalARN:
// Options.Password if set, otherwise derived from the ARN alone so separate
// emulator processes agree.
func (s *Server) PasswordFor(principalARN string) string {
	if s.opts.Password != "" {
		return s.opts.Password
	}
	if pw := s.rolePassword(principalARN); pw != "" {
		return pw
	}
	sum := sha256.Sum256([]byte("awsemu-password\x00" + principalARN))
	return "pw-" + hex.EncodeToString(sum[:12])
}

// PasswordIn is the registry password in tokens a region issues to
// principalARN: PasswordFor's, unless Options.RegionalPasswords is set.
func (s *Server) PasswordIn(principalARN, region string) string {
	if !s.opts.RegionalPasswords || s.opts.Password != "" {
		return s.PasswordFor(principalARN)
	}
	return s.PasswordFor(principalARN + "\x00" + region)
}

// TokenPassword is the registry password in the nth token (counting from
// 1) a region issues to principalARN: PasswordIn's, with the token's
// number appended when Options.RotatePasswords is set.
func (s *Server) TokenPassword(principalARN, region string, n int) string {
	pw := s.PasswordIn(principalARN, region)
	if !s.opts.RotatePasswords {
		return pw
	}
	return fmt.Sprintf("%s-%d", pw, n)
}

// TokensIssued is how many ECR tokens a region has issued to principalARN
// (ECR and ECR Public together). Reset keeps the count: the tokens AWS
// handed out stay handed out.
func (s *Server) TokensIssued(principalARN, region string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issued[principalARN+"\x00"+region]
}

// issueToken counts one more token for principalARN in region and returns
// its password.
func (s *Server) issueToken(principalARN, region string) string {
	s.mu.Lock()
	s.issued[principalARN+"\x00"+region]++
	n := s.issued[principalARN+"\x00"+region]
	s.mu.Unlock()
	return s.TokenPassword(principalARN, region, n)
}

// ServeHTTP routes one request; see the package doc.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_emu/") {
		s.control(w, r)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	c := &call{s: s, w: w, r: r, body: body}
	c.rec.Time = s.opts.Now()
	s.mu.Lock()
	s.inFlight++
	s.mu.Unlock()
	c.route()
	s.record(c)
}

// call is one in-flight emulated request.
type call struct {
	s       *Server
	w       http.ResponseWriter
	r       *http.Request
	body    []byte
	rec     Record
	cred    *credential
	sigFail bool
}

func (c *call) route() {
	r := c.r
	switch target := r.Header.Get("X-Amz-Target"); {
	case strings.HasPrefix(r.URL.Path, "/latest/"):
		c.rec.Target = TargetIMDS
		c.serveIMDS()
	case strings.HasPrefix(target, "AmazonEC2ContainerRegistry_V20150921."):
		c.rec.Target, c.rec.Operation = TargetECR, strings.TrimPrefix(target, "AmazonEC2ContainerRegistry_V20150921.")
		c.serveECR()
	case strings.HasPrefix(target, "SpencerFrontendService."):
		c.rec.Target, c.rec.Operation = TargetECRPublic, strings.TrimPrefix(target, "SpencerFrontendService.")
		c.serveECR()
	case r.Method == http.MethodPost && r.FormValue("Action") != "":
		c.rec.Target, c.rec.Operation = TargetSTS, r.FormValue("Action")
		c.serveSTS()
	default:
		c.rec.Target, c.rec.Operation = "unknown", r.Method+" "+r.URL.Path
		c.rec.Status = http.StatusNotFound
		http.Error(c.w, "awsemu: no emulated API here", http.StatusNotFound)
	}
}

// preamble applies the target's latency and hang faults and reports whether
// the request should continue (false when the client or server gave up).
func (c *call) preamble() bool {
	f, hang := c.s.faultFor(c.rec.Target, "hang")
	if f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		defer t.Stop()
		select {
		case <-t.C:
		case <-c.r.Context().Done():
			c.rec.Error = "client gone"
			return false
		case <-c.s.done:
			return false
		}
	}
	if hang {
		c.rec.Error = "hang"
		select {
		case <-c.r.Context().Done():
		case <-c.s.done:
		}
		return false
	}
	return true
}

// authenticate verifies the SigV4 signature, expecting the given signing
// service name, and reports the failure in the target's shape.
func (c *call) authenticate(service string) bool {
	s := c.s
	now := s.opts.Now()
	sc, err := verifySigV4(c.r, c.body, now, s.opts.MaxSkew, func(akid string) (string, string, bool) {
		s.mu.Lock()
		defer s.mu.Unlock()
		cr := s.creds[akid]
		if cr == nil {
			return "", "", false
		}
		c.cred = cr
		return cr.Secret, cr.Token, true
	})
	c.rec.AccessKeyID, c.rec.Region = sc.AccessKeyID, sc.Region
	if err == nil && sc.Service != service {
		err = &sigError{"sig", fmt.Sprintf("Credential should be scoped to correct service: '%s'. ", service)}
	}
	if err == nil && c.rec.Target == TargetECRPublic && sc.Region != "us-east-1" {
		err = &sigError{"sig", "Credential should be scoped to a valid region. "}
	}
	if err == nil && !c.cred.Expires.IsZero() && now.After(c.cred.Expires) {
		err = &sigError{"expired", "The security token included in the request is expired"}
	}
	if err != nil {
		c.sigFail = true
		c.cred = nil
		var se *sigError
		errors.As(err, &se)
		c.fail(se.Kind, se.Msg)
		return false
	}
	c.rec.Principal = c.cred.ARN
	return true
}

// awsErrors maps a failure kind to the status and code each protocol answers
// with: AWS JSON 1.1 (ECR, ECR Public), STS query, and IMDS (status only).
var awsErrors = map[string]struct {
	jsonStatus int
	jsonCode   string
	stsStatus  int
	stsCode    string
	imdsStatus int
}{
	"missing":  {403, "MissingAuthenticationTokenException", 403, "MissingAuthenticationToken", 401},
	"sig":      {400, "InvalidSignatureException", 403, "SignatureDoesNotMatch", 401},
	"skew":     {400, "InvalidSignatureException", 403, "SignatureDoesNotMatch", 401},
	"key":      {400, "UnrecognizedClientException", 403, "InvalidClientTokenId", 401},
	"expired":  {400, "ExpiredTokenException", 400, "ExpiredToken", 401},
	"throttle": {400, "ThrottlingException", 400, "Throttling", 429},
	"500":      {500, "ServerException", 500, "InternalFailure", 500},
	"503":      {503, "ServiceUnavailableException", 503, "ServiceUnavailable", 503},
	"denied":   {400, "AccessDeniedException", 403, "AccessDenied", 403},
}

// fail answers with the error of kind in the target's protocol.
func (c *call) fail(kind, msg string) {
	e := awsErrors[kind]
	switch c.rec.Target {
	case TargetSTS:
		c.stsError(e.stsStatus, e.stsCode, msg)
	case TargetIMDS:
		c.imdsError(e.imdsStatus)
	default:
		c.jsonError(e.jsonStatus, e.jsonCode, msg)
	}
}

// injectedError applies the target's error fault, if this request draws one.
// It returns true when it answered the request.
func (c *call) injectedError() bool {
	f, fail := c.s.faultFor(c.rec.Target, "error")
	switch {
	case !fail:
		return false
	case f.Kind == FaultDenied:
		c.deny()
	case f.Kind == Fault5xx && f.Status == http.StatusServiceUnavailable:
		c.fail("503", "Service unavailable (emulated)")
	case f.Kind == Fault5xx:
		c.fail("500", "Internal failure (emulated)")
	default:
		c.fail("throttle", "Rate exceeded")
	}
	return true
}

// action is the IAM action name of the current call, e.g.
// "ecr:GetAuthorizationToken".
func (c *call) action() string {
	if c.rec.Target == TargetECRPublic {
		return "ecr-public:" + c.rec.Operation
	}
	return c.rec.Target + ":" + c.rec.Operation
}

// denied reports whether policy denies the current call.
func (c *call) denied() bool {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	p := c.s.denies[c.action()]
	return p[""] || p[c.rec.Principal]
}

// deny answers with the AccessDenied error AWS gives when no policy allows the
// action.
func (c *call) deny() {
	action := c.action()
	c.fail("denied", fmt.Sprintf("User: %s is not authorized to perform: %s on resource: * because no identity-based policy allows the %s action",
		c.rec.Principal, action, action))
}

func (c *call) requestID() string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%p%d", c, c.rec.Time.UnixNano()))
	h := hex.EncodeToString(sum[:16])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func (c *call) reply(status int, contentType string, body []byte) {
	c.rec.Status = status
	c.w.Header().Set("Content-Type", contentType)
	c.w.Header().Set("X-Amzn-Requestid", c.requestID())
	c.w.WriteHeader(status)
	c.w.Write(body) //nolint:errcheck // the client may be gone; nothing to do.
}

// jsonError answers in the AWS JSON 1.1 error shape.
func (c *call) jsonError(status int, code, msg string) {
	c.rec.Error = code
	c.w.Header().Set("X-Amzn-Errortype", code)
	c.reply(status, "application/x-amz-json-1.1", mustJSON(map[string]string{"__type": code, "message": msg}))
}

func (c *call) imdsError(status int) {
	c.rec.Status = status
	c.rec.Error = http.StatusText(status)
	http.Error(c.w, http.StatusText(status), status)
}

// faultFor draws the fault decision of kind "hang" or "error" for a target.
func (s *Server) faultFor(target, kind string) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.faults[target]
	if !ok {
		return f, false
	}
	rate := f.ErrorRate
	if kind == "hang" {
		rate = f.HangRate
	}
	return f, rate > 0 && (rate >= 1 || s.rng.Float64() < rate)
}

// newCredential issues temporary keys for principal arn.
func (s *Server) newCredential(arn, userID string, ttl time.Duration) *credential {
	s.mu.Lock()
	defer s.mu.Unlock()
	cr := &credential{
		AKID:    "ASIA" + s.randString(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"),
		Secret:  s.randString(40, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"),
		ARN:     arn,
		UserID:  userID,
		Expires: s.opts.Now().Add(ttl).UTC().Truncate(time.Second),
	}
	cr.Token = "IQoJb3JpZ2luX2VtdQ" + s.randString(120, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
	s.creds[cr.AKID] = cr
	return cr
}

// randString must be called with s.mu held.
func (s *Server) randString(n int, alphabet string) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[s.rng.Intn(len(alphabet))]
	}
	return string(b)
}

// roleUserID is the stable "AROA..." unique ID AWS gives a role.
func roleUserID(roleARN string) string {
	sum := sha256.Sum256([]byte(roleARN))
	return "AROA" + strings.ToUpper(hex.EncodeToString(sum[:8]))
}
