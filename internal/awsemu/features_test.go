package awsemu

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecrpublic"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

const (
	staticAKID = "AKIAEMUSTATIC0000001"
	staticARN  = "arn:aws:iam::444455556666:user/ci"
)

// withStaticKeys starts an emulator that knows one long-term key and puts
// that key in the environment, so ECR and STS calls don't depend on IMDS.
func withStaticKeys(t *testing.T, opts Options) *Server {
	t.Helper()
	opts.StaticKeys = map[string]StaticKey{staticAKID: {Secret: "static/secret+key", ARN: staticARN}}
	s := startEmu(t, opts)
	t.Setenv("AWS_ACCESS_KEY_ID", staticAKID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", "static/secret+key")
	return s
}

func callerARN(ctx context.Context, cfg aws.Config) (string, error) {
	out, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return "", err
	}
	return aws.ToString(out.Arn), nil
}

func ecrPublicPassword(ctx context.Context, cfg aws.Config) (string, error) {
	out, err := ecrpublic.NewFromConfig(cfg).GetAuthorizationToken(ctx, &ecrpublic.GetAuthorizationTokenInput{})
	if err != nil {
		return "", err
	}
	raw, err := base64.StdEncoding.DecodeString(aws.ToString(out.AuthorizationData.AuthorizationToken))
	if err != nil {
		return "", err
	}
	if out.AuthorizationData.ExpiresAt == nil {
		return "", errors.New("no expiresAt")
	}
	return strings.TrimPrefix(string(raw), "AWS:"), nil
}

// httpStatus is the HTTP status an SDK error reports. The IMDS token provider
// flattens its errors, so the status is also read from the message there.
func httpStatus(err error) int {
	var se interface{ HTTPStatusCode() int }
	if errors.As(err, &se) {
		return se.HTTPStatusCode()
	}
	var code int
	if _, after, ok := strings.Cut(fmt.Sprint(err), "StatusCode: "); ok {
		fmt.Sscanf(after, "%d", &code)
	}
	return code
}

func TestStaticKeysAndCallerIdentity(t *testing.T) {
	s := withStaticKeys(t, Options{})
	ctx := context.Background()
	cfg := loadConfig(t, "us-west-2", 1)
	arn, err := callerARN(ctx, cfg)
	if err != nil || arn != staticARN {
		t.Fatalf("GetCallerIdentity = %q, %v; want %s", arn, err, staticARN)
	}
	pass, endpoint, err := ecrPassword(ctx, cfg)
	if err != nil || pass != s.PasswordFor(staticARN) || endpoint != "https://444455556666.dkr.ecr.us-west-2.amazonaws.com" {
		t.Fatalf("ECR = %q %q %v; want the static principal's password and own-account endpoint", pass, endpoint, err)
	}
	// Explicit registry IDs each get an endpoint in the signing region.
	//lint:ignore SA1019 deprecated, but ECR still answers it, so the emulator does too
	out, err := ecr.NewFromConfig(cfg).GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{RegistryIds: []string{"111111111111", "222222222222"}})
	if err != nil || len(out.AuthorizationData) != 2 || aws.ToString(out.AuthorizationData[1].ProxyEndpoint) != "https://222222222222.dkr.ecr.us-west-2.amazonaws.com" {
		t.Fatalf("registryIds: %+v, %v", out, err)
	}
	if s.PasswordFor(staticARN) == s.PasswordFor(s.InstanceARN()) {
		t.Error("different principals share a password")
	}
	if n := s.Stats().Target(TargetIMDS).Requests; n != 0 {
		t.Errorf("env credentials still asked IMDS %d times", n)
	}
}

func TestFixedPassword(t *testing.T) {
	s := startEmu(t, Options{Password: "htpasswd-secret"})
	pass, _, err := ecrPassword(context.Background(), loadConfig(t, "us-east-2", 1))
	if err != nil || pass != "htpasswd-secret" || s.PasswordFor("anything") != "htpasswd-secret" {
		t.Fatalf("password = %q, %v; want Options.Password", pass, err)
	}
}

func TestECRPublic(t *testing.T) {
	tests := []struct {
		region   string
		wantCode string
	}{
		{region: "us-east-1"},
		// ECR Public only exists in us-east-1; signing for another region is
		// a client bug the emulator must expose.
		{region: "us-west-2", wantCode: "InvalidSignatureException"},
	}
	for _, tt := range tests {
		t.Run(tt.region, func(t *testing.T) {
			s := startEmu(t, Options{})
			pass, err := ecrPublicPassword(context.Background(), loadConfig(t, tt.region, 1))
			if errorCode(err) != tt.wantCode || (err == nil) != (tt.wantCode == "") {
				t.Fatalf("err = %v, want code %q", err, tt.wantCode)
			}
			if err == nil && pass != s.PasswordFor(s.InstanceARN()) {
				t.Error("ECR Public password is not the instance role's")
			}
			if n := s.Stats().Op(TargetECRPublic, "GetAuthorizationToken").Requests; n != 1 {
				t.Errorf("ecr-public requests = %d, want 1", n)
			}
		})
	}
}

func TestWebIdentity(t *testing.T) {
	const roleARN = "arn:aws:iam::777788889999:role/app-puller"
	const wantARN = "arn:aws:sts::777788889999:assumed-role/app-puller/kubelet-session"
	const jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZGVmYXVsdDpwdWxsZXIifQ.c2ln"
	tests := []struct {
		name     string
		refuse   bool
		wantCode string
	}{
		{name: "assumed"},
		{name: "role refused", refuse: true, wantCode: "AccessDenied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startEmu(t, Options{})
			if tt.refuse {
				s.RefuseRole(roleARN)
			}
			tokenFile := filepath.Join(t.TempDir(), "token")
			if err := os.WriteFile(tokenFile, []byte(jwt), 0o600); err != nil {
				t.Fatal(err)
			}
			t.Setenv("AWS_ROLE_ARN", roleARN)
			t.Setenv("AWS_WEB_IDENTITY_TOKEN_FILE", tokenFile)
			t.Setenv("AWS_ROLE_SESSION_NAME", "kubelet-session")
			ctx := context.Background()
			cfg := loadConfig(t, "eu-west-1", 1)
			arn, err := callerARN(ctx, cfg)
			if errorCode(err) != tt.wantCode || (err == nil) != (tt.wantCode == "") {
				t.Fatalf("GetCallerIdentity: %v, want code %q", err, tt.wantCode)
			}
			recs := s.Requests()
			i := slices.IndexFunc(recs, func(r Record) bool { return r.Operation == "AssumeRoleWithWebIdentity" })
			if i < 0 {
				t.Fatalf("no AssumeRoleWithWebIdentity in %+v", recs)
			}
			if got, want := recs[i].WebIdentityTokenSHA256, sha256Hex([]byte(jwt))[:12]; got != want {
				t.Errorf("token fingerprint = %q, want %q", got, want)
			}
			if raw, _ := json.Marshal(recs); strings.Contains(string(raw), jwt[40:]) {
				t.Error("request log contains the web identity token")
			}
			if tt.wantCode != "" {
				return
			}
			if arn != wantARN {
				t.Errorf("caller = %s, want %s", arn, wantARN)
			}
			pass, _, err := ecrPassword(ctx, cfg)
			if err != nil || pass != s.PasswordFor(wantARN) {
				t.Errorf("ECR with web identity creds: %v; password matches assumed role: %v", err, pass == s.PasswordFor(wantARN))
			}
			if n := s.Stats().Target(TargetIMDS).Requests; n != 0 {
				t.Errorf("web identity chain asked IMDS %d times", n)
			}
		})
	}
}

func TestDeny(t *testing.T) {
	const other = "arn:aws:iam::123456789012:user/someone-else"
	tests := []struct {
		name      string
		setup     func(s *Server)
		call      func(ctx context.Context, cfg aws.Config) error
		wantCode  string
		wantInMsg string
	}{
		{name: "ecr denied for the node role", wantCode: "AccessDeniedException",
			setup: func(s *Server) { s.Deny("ecr:GetAuthorizationToken", s.InstanceARN()) },
			wantInMsg: "User: arn:aws:sts::123456789012:assumed-role/ecr-node-role/i-0123456789abcdef0 is not authorized to perform: " +
				"ecr:GetAuthorizationToken on resource: * because no identity-based policy allows the ecr:GetAuthorizationToken action"},
		{name: "ecr denied for someone else", setup: func(s *Server) { s.Deny("ecr:GetAuthorizationToken", other) }},
		{name: "ecr denied for everyone", wantCode: "AccessDeniedException",
			setup: func(s *Server) { s.Deny("ecr:GetAuthorizationToken", "") }},
		{name: "denied then allowed", setup: func(s *Server) {
			s.Deny("ecr:GetAuthorizationToken", s.InstanceARN())
			s.Allow("ecr:GetAuthorizationToken", s.InstanceARN())
		}},
		{name: "denied then reset", setup: func(s *Server) { s.Deny("ecr:GetAuthorizationToken", ""); s.Reset() }},
		{name: "ecr-public denied", wantCode: "AccessDeniedException", wantInMsg: "perform: ecr-public:GetAuthorizationToken on resource",
			setup: func(s *Server) { s.Deny("ecr-public:GetAuthorizationToken", "") },
			call: func(ctx context.Context, cfg aws.Config) error {
				cfg.Region = "us-east-1"
				_, err := ecrPublicPassword(ctx, cfg)
				return err
			}},
		{name: "sts denied", wantCode: "AccessDenied", wantInMsg: "sts:GetCallerIdentity",
			setup: func(s *Server) { s.Deny("sts:GetCallerIdentity", "") },
			call:  func(ctx context.Context, cfg aws.Config) error { _, err := callerARN(ctx, cfg); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startEmu(t, Options{})
			tt.setup(s)
			call := tt.call
			if call == nil {
				call = func(ctx context.Context, cfg aws.Config) error { _, _, err := ecrPassword(ctx, cfg); return err }
			}
			err := call(context.Background(), loadConfig(t, "us-west-2", 3))
			if errorCode(err) != tt.wantCode || (err == nil) != (tt.wantCode == "") {
				t.Fatalf("err = %v, want code %q", err, tt.wantCode)
			}
			if err != nil && !strings.Contains(err.Error(), tt.wantInMsg) {
				t.Errorf("error %q does not contain %q", err, tt.wantInMsg)
			}
		})
	}
}

func TestFaults(t *testing.T) {
	ecrCall := func(ctx context.Context, cfg aws.Config) error { _, _, err := ecrPassword(ctx, cfg); return err }
	ecrPublicCall := func(ctx context.Context, cfg aws.Config) error {
		cfg.Region = "us-east-1"
		_, err := ecrPublicPassword(ctx, cfg)
		return err
	}
	stsCall := func(ctx context.Context, cfg aws.Config) error { _, err := callerARN(ctx, cfg); return err }
	imdsCall := func(ctx context.Context, cfg aws.Config) error {
		// Keep loadConfig's zero backoff: IMDS otherwise wraps it in its own.
		client := imds.NewFromConfig(cfg, func(o *imds.Options) { o.DisableDefaultMaxBackoff = true })
		_, err := client.GetRegion(ctx, &imds.GetRegionInput{})
		return err
	}
	tests := []struct {
		name         string
		target       string
		fault        Fault
		call         func(context.Context, aws.Config) error
		wantCode     string
		wantStatus   int
		wantAttempts int // requests the emulator saw for the target
	}{
		{name: "ecr throttle is retried", target: TargetECR, fault: Fault{ErrorRate: 1, Kind: FaultThrottle},
			call: ecrCall, wantCode: "ThrottlingException", wantStatus: 400, wantAttempts: 3},
		{name: "ecr 503 is retried", target: TargetECR, fault: Fault{ErrorRate: 1, Kind: Fault5xx, Status: 503},
			call: ecrCall, wantCode: "ServiceUnavailableException", wantStatus: 503, wantAttempts: 3},
		{name: "ecr 500 is retried", target: TargetECR, fault: Fault{ErrorRate: 1, Kind: Fault5xx},
			call: ecrCall, wantCode: "ServerException", wantStatus: 500, wantAttempts: 3},
		{name: "ecr denied is final", target: TargetECR, fault: Fault{ErrorRate: 1, Kind: FaultDenied},
			call: ecrCall, wantCode: "AccessDeniedException", wantStatus: 400, wantAttempts: 1},
		{name: "ecr-public throttle", target: TargetECRPublic, fault: Fault{ErrorRate: 1},
			call: ecrPublicCall, wantCode: "ThrottlingException", wantStatus: 400, wantAttempts: 3},
		{name: "sts throttle is retried", target: TargetSTS, fault: Fault{ErrorRate: 1, Kind: FaultThrottle},
			call: stsCall, wantCode: "Throttling", wantStatus: 400, wantAttempts: 3},
		{name: "sts 503 is retried", target: TargetSTS, fault: Fault{ErrorRate: 1, Kind: Fault5xx, Status: 503},
			call: stsCall, wantCode: "ServiceUnavailable", wantStatus: 503, wantAttempts: 3},
		{name: "sts denied", target: TargetSTS, fault: Fault{ErrorRate: 1, Kind: FaultDenied},
			call: stsCall, wantCode: "AccessDenied", wantStatus: 403, wantAttempts: 1},
		{name: "imds 503 is retried", target: TargetIMDS, fault: Fault{ErrorRate: 1, Kind: Fault5xx, Status: 503},
			call: imdsCall, wantStatus: 503, wantAttempts: 3},
		{name: "imds throttle", target: TargetIMDS, fault: Fault{ErrorRate: 1, Kind: FaultThrottle},
			call: imdsCall, wantStatus: 429, wantAttempts: 1},
		{name: "no error drawn at rate 0", target: TargetECR, fault: Fault{Latency: time.Millisecond},
			call: ecrCall, wantAttempts: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := withStaticKeys(t, Options{})
			s.SetFault(tt.target, tt.fault)
			err := tt.call(context.Background(), loadConfig(t, "us-west-2", 3))
			if errorCode(err) != tt.wantCode || httpStatus(err) != tt.wantStatus || (err == nil) != (tt.wantStatus == 0) {
				t.Fatalf("err = %v (code %q, status %d), want code %q status %d", err, errorCode(err), httpStatus(err), tt.wantCode, tt.wantStatus)
			}
			st := s.Stats().Target(tt.target)
			if st.Requests != tt.wantAttempts {
				t.Errorf("%s requests = %d, want %d (stats %+v)", tt.target, st.Requests, tt.wantAttempts, s.Stats().Ops)
			}
			if tt.wantStatus != 0 && st.Status[tt.wantStatus] != tt.wantAttempts {
				t.Errorf("status %d count = %d, want %d", tt.wantStatus, st.Status[tt.wantStatus], tt.wantAttempts)
			}
		})
	}
}

// TestErrorRateIsSeeded runs the same request sequence against two emulators
// with the same seed: a flaky test must replay identically.
func TestErrorRateIsSeeded(t *testing.T) {
	withStaticKeys(t, Options{}) // environment only
	cfg := loadConfig(t, "us-west-2", 1)
	run := func() []int {
		s, err := Start(Options{Seed: 7, StaticKeys: map[string]StaticKey{staticAKID: {Secret: "static/secret+key", ARN: staticARN}}})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		s.SetFault(TargetECR, Fault{ErrorRate: 0.5})
		client := ecr.NewFromConfig(cfg, func(o *ecr.Options) { o.BaseEndpoint = aws.String(s.URL()) })
		var statuses []int
		for range 24 {
			_, err := client.GetAuthorizationToken(context.Background(), &ecr.GetAuthorizationTokenInput{})
			statuses = append(statuses, httpStatus(err))
		}
		return statuses
	}
	a, b := run(), run()
	if !slices.Equal(a, b) {
		t.Fatalf("same seed, different outcomes:\n%v\n%v", a, b)
	}
	if !slices.Contains(a, 0) || !slices.Contains(a, 400) {
		t.Errorf("rate 0.5 over 24 requests should both fail and succeed: %v", a)
	}
}

func TestHangAndLatencyEndWithTheClient(t *testing.T) {
	tests := []struct {
		name  string
		fault Fault
	}{
		{name: "hang", fault: Fault{HangRate: 1}},
		{name: "latency longer than the client waits", fault: Fault{Latency: time.Hour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := withStaticKeys(t, Options{})
			s.SetFault(TargetECR, tt.fault)
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			_, _, err := ecrPassword(ctx, loadConfig(t, "us-west-2", 1))
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err = %v, want the client's deadline", err)
			}
			// The server side lets go too (the record is written on return).
			for s.Stats().Op(TargetECR, "GetAuthorizationToken").Requests == 0 {
				time.Sleep(5 * time.Millisecond)
			}
			if st := s.Stats(); st.InFlight != 0 {
				t.Errorf("in flight = %d after the client left", st.InFlight)
			}
		})
	}
}

func TestHangEndsOnClose(t *testing.T) {
	s := withStaticKeys(t, Options{})
	s.SetFault(TargetECR, Fault{HangRate: 1})
	cfg := loadConfig(t, "us-west-2", 1)
	done := make(chan error, 1)
	go func() { _, _, err := ecrPassword(context.Background(), cfg); done <- err }()
	for s.Stats().InFlight == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	s.Close()
	if err := <-done; err == nil {
		t.Fatal("hung call succeeded after Close")
	}
}

func TestExpiredCredentialsRejected(t *testing.T) {
	var offset atomic.Int64
	s := startEmu(t, Options{CredentialTTL: time.Hour, MaxSkew: 3 * time.Hour,
		Now: func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }})
	ctx := context.Background()
	cfg := loadConfig(t, "us-west-2", 1)
	creds, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	offset.Store(int64(2 * time.Hour)) // the emulator's clock passes the expiry; the SDK's does not
	_, _, err = ecrPassword(ctx, cfg, func(o *ecr.Options) {
		o.Credentials = aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return creds, nil })
	})
	if errorCode(err) != "ExpiredTokenException" {
		t.Fatalf("err = %v, want ExpiredTokenException", err)
	}
	if n := s.Stats().Op(TargetECR, "GetAuthorizationToken").SignatureFailures; n != 1 {
		t.Errorf("signature failures = %d, want 1", n)
	}
}

func TestIMDSRequiresSessionToken(t *testing.T) {
	s := startEmu(t, Options{})
	tests := []struct {
		method, path, token string
		wantStatus          int
	}{
		{"GET", "/latest/meta-data/placement/region", "", http.StatusUnauthorized},
		{"GET", "/latest/meta-data/placement/region", "bogus", http.StatusUnauthorized},
		{"PUT", "/latest/api/token", "", http.StatusBadRequest}, // no TTL header
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, s.URL()+tt.path, nil)
		if tt.token != "" {
			req.Header.Set("X-Aws-Ec2-Metadata-Token", tt.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.wantStatus {
			t.Errorf("%s %s (token %q) = %d, want %d", tt.method, tt.path, tt.token, resp.StatusCode, tt.wantStatus)
		}
	}
	// Through the SDK client every documented read works with a token.
	client := imds.NewFromConfig(loadConfig(t, "us-west-2", 1))
	ctx := context.Background()
	region, err := client.GetRegion(ctx, &imds.GetRegionInput{})
	if err != nil || region.Region != "us-west-2" {
		t.Fatalf("GetRegion = %+v, %v", region, err)
	}
	doc, err := client.GetInstanceIdentityDocument(ctx, &imds.GetInstanceIdentityDocumentInput{})
	if err != nil || doc.AccountID != "123456789012" || doc.InstanceID != InstanceID || doc.Region != "us-west-2" {
		t.Fatalf("identity document = %+v, %v", doc, err)
	}
	info, err := client.GetIAMInfo(ctx, &imds.GetIAMInfoInput{})
	if err != nil || !strings.HasSuffix(info.InstanceProfileArn, ":instance-profile/ecr-node-role") {
		t.Fatalf("IAM info = %+v, %v", info, err)
	}
}

func TestControlAPI(t *testing.T) {
	s := withStaticKeys(t, Options{})
	post := func(path, body string) int {
		resp, err := http.Post(s.URL()+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	getJSON := func(path string, v any) {
		resp, err := http.Get(s.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	for _, bad := range []struct{ path, body string }{
		{"/_emu/fault", `{"target":"s3","errorRate":1}`},
		{"/_emu/fault", `{"target":"ecr","kind":"explode"}`},
		{"/_emu/fault", `{"target":"ecr","latency":"soon"}`},
		{"/_emu/deny", `{}`},
		{"/_emu/fault", `not json`},
	} {
		if code := post(bad.path, bad.body); code != http.StatusBadRequest {
			t.Errorf("POST %s %s = %d, want 400", bad.path, bad.body, code)
		}
	}
	ctx := context.Background()
	cfg := loadConfig(t, "us-west-2", 1)
	steps := []struct {
		path, body string
		wantCode   string
	}{
		{"/_emu/fault", `{"target":"ecr","errorRate":1,"kind":"5xx","status":503}`, "ServiceUnavailableException"},
		{"/_emu/fault", `{"target":"ecr"}`, ""},
		{"/_emu/deny", `{"action":"ecr:GetAuthorizationToken","principal":"` + staticARN + `"}`, "AccessDeniedException"},
		{"/_emu/deny", `{"action":"ecr:GetAuthorizationToken","principal":"` + staticARN + `","allow":true}`, ""},
		{"/_emu/fault", `{"target":"ecr","errorRate":1}`, "ThrottlingException"},
		{"/_emu/reset", ``, ""},
	}
	for _, st := range steps {
		if code := post(st.path, st.body); code != http.StatusOK {
			t.Fatalf("POST %s %s = %d", st.path, st.body, code)
		}
		if _, _, err := ecrPassword(ctx, cfg); errorCode(err) != st.wantCode {
			t.Fatalf("after %s %s: err %v, want code %q", st.path, st.body, err, st.wantCode)
		}
	}
	var stats Stats
	getJSON("/_emu/stats", &stats)
	if o := stats.Op(TargetECR, "GetAuthorizationToken"); o.Requests != 1 || o.Status[200] != 1 {
		t.Errorf("stats after reset and one call = %+v", o)
	}
	var recs []Record
	getJSON("/_emu/requests", &recs)
	if len(recs) != 1 || recs[0].Principal != staticARN || recs[0].AccessKeyID != staticAKID {
		t.Errorf("requests = %+v", recs)
	}
	var pw map[string]string
	getJSON("/_emu/password?principal="+staticARN, &pw)
	if pw["password"] != s.PasswordFor(staticARN) {
		t.Errorf("password endpoint disagrees with PasswordFor")
	}
}

func TestStartRefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "10.1.2.3:0", "[::]:0", "example.com:0"} {
		if s, err := StartOn(addr, Options{}); err == nil {
			s.Close()
			t.Errorf("StartOn(%q) succeeded, want refusal", addr)
		}
	}
	s, err := StartOn("127.0.0.1:0", Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

// TestIMDSv1FallbackDisabled checks that Env's AWS_EC2_METADATA_V1_DISABLED
// reaches the SDK: when the token call is refused it must not retry without a
// token, as it would by default.
func TestIMDSv1FallbackDisabled(t *testing.T) {
	s := startEmu(t, Options{})
	s.SetFault(TargetIMDS, Fault{ErrorRate: 1, Kind: FaultDenied})
	if _, err := loadConfig(t, "us-west-2", 1).Credentials.Retrieve(context.Background()); err == nil {
		t.Fatal("credentials retrieved although IMDS refused every request")
	}
	for _, r := range s.Requests() {
		if r.Operation != "GetToken" {
			t.Errorf("SDK fell back to IMDSv1: %+v", r)
		}
	}
	if s.Stats().Op(TargetIMDS, "GetToken").Requests == 0 {
		t.Error("SDK never asked for an IMDS token")
	}
}

func TestRegionalPasswords(t *testing.T) {
	plain, err := Start(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	arn := plain.InstanceARN()
	if plain.PasswordIn(arn, "eu-west-1") != plain.PasswordFor(arn) {
		t.Error("without RegionalPasswords a region changed the password")
	}
	regional, err := Start(Options{RegionalPasswords: true})
	if err != nil {
		t.Fatal(err)
	}
	defer regional.Close()
	a, b := regional.PasswordIn(arn, "eu-west-1"), regional.PasswordIn(arn, "us-east-1")
	if a == b || a != regional.PasswordIn(arn, "eu-west-1") {
		t.Errorf("regional passwords: eu-west-1 %q, us-east-1 %q; want distinct and stable", a, b)
	}
}

func TestRotatePasswords(t *testing.T) {
	ctx := context.Background()
	for _, rotate := range []bool{false, true} {
		t.Run(fmt.Sprint("rotate=", rotate), func(t *testing.T) {
			s := withStaticKeys(t, Options{RotatePasswords: rotate})
			cfg := loadConfig(t, "us-west-2", 1)
			var got []string
			for range 3 {
				pw, _, err := ecrPassword(ctx, cfg)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, pw)
			}
			if n := s.TokensIssued(staticARN, "us-west-2"); n != 3 {
				t.Errorf("TokensIssued = %d, want 3", n)
			}
			for i, pw := range got {
				if want := s.TokenPassword(staticARN, "us-west-2", i+1); pw != want {
					t.Errorf("token %d carries %q, TokenPassword says %q", i+1, pw, want)
				}
			}
			distinct := got[0] != got[1] && got[1] != got[2] && got[0] != got[2]
			if rotate && !distinct {
				t.Errorf("with RotatePasswords the tokens share passwords: %q", got)
			}
			if !rotate && (got[0] != got[1] || got[1] != got[2] || got[0] != s.PasswordFor(staticARN)) {
				t.Errorf("without RotatePasswords the password changed: %q", got)
			}
			// The control API names the same Nth password.
			resp, err := http.Get(s.URL() + "/_emu/password?principal=" + staticARN + "&region=us-west-2&token=2")
			if err != nil {
				t.Fatal(err)
			}
			var pw map[string]string
			err = json.NewDecoder(resp.Body).Decode(&pw)
			resp.Body.Close()
			if err != nil || pw["password"] != got[1] {
				t.Errorf("GET /_emu/password?token=2 = %v (%v), want %q", pw, err, got[1])
			}
			resp, err = http.Get(s.URL() + "/_emu/password?principal=" + staticARN + "&token=0")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("token=0 answered %d, want 400", resp.StatusCode)
			}
		})
	}
}
