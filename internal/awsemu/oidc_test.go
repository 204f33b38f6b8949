package awsemu

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// testIssuer is an OIDC issuer over TLS, publishing one RSA key the way the
// Kubernetes API server does (discovery document, then JWKS).
type testIssuer struct {
	srv   *httptest.Server
	key   *rsa.PrivateKey
	kid   string
	caPEM string
	down  bool // answer 503 to everything
}

func newTestIssuer(t *testing.T) *testIssuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	is := &testIssuer{key: key, kid: "test-key-1"}
	is.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if is.down {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			writeJSON(w, map[string]any{"issuer": is.srv.URL, "jwks_uri": is.srv.URL + "/openid/v1/jwks",
				"id_token_signing_alg_values_supported": []string{"RS256"}})
		case "/openid/v1/jwks":
			pub := is.key.PublicKey
			writeJSON(w, map[string]any{"keys": []map[string]string{{
				"kty": "RSA", "alg": "RS256", "use": "sig", "kid": is.kid,
				"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
				"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
			}}})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(is.srv.Close)
	is.caPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: is.srv.Certificate().Raw}))
	return is
}

// sign makes an RS256 JWT with claims, signed by key.
func (is *testIssuer) sign(t *testing.T, key *rsa.PrivateKey, claims map[string]any) string {
	t.Helper()
	h, _ := json.Marshal(map[string]string{"alg": "RS256", "kid": is.kid, "typ": "JWT"})
	c, _ := json.Marshal(claims)
	signed := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	sum := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// trustPolicy is the trust policy EKS documents for IRSA, with the given
// condition operator on sub.
func trustPolicy(providerARN, hostPath, op, sub string) string {
	cond := map[string]map[string]string{"StringEquals": {hostPath + ":aud": "sts.amazonaws.com"}}
	if cond[op] == nil {
		cond[op] = map[string]string{}
	}
	cond[op][hostPath+":sub"] = sub
	b, _ := json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": []any{map[string]any{
		"Effect":    "Allow",
		"Principal": map[string]string{"Federated": providerARN},
		"Action":    "sts:AssumeRoleWithWebIdentity",
		"Condition": cond,
	}}})
	return string(b)
}

func TestWebIdentityJudgedAsAWS(t *testing.T) {
	const (
		roleA    = "arn:aws:iam::123456789012:role/team-a"
		roleWild = "arn:aws:iam::123456789012:role/team-any"
		subA     = "system:serviceaccount:team-a:puller"
	)
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tests := []struct {
		name     string
		role     string
		claims   func(iss string) map[string]any
		badKey   bool
		down     bool
		wantCode string
		wantMsg  string
	}{
		{name: "good token", role: roleA},
		{name: "aud as a list", role: roleA, claims: func(iss string) map[string]any {
			return map[string]any{"iss": iss, "sub": subA, "aud": []string{"other", "sts.amazonaws.com"}, "exp": now.Add(time.Hour).Unix()}
		}},
		{name: "bad signature", role: roleA, badKey: true, wantCode: "InvalidIdentityToken", wantMsg: "could not be validated"},
		{name: "wrong aud", role: roleA, claims: func(iss string) map[string]any {
			return map[string]any{"iss": iss, "sub": subA, "aud": "vault", "exp": now.Add(time.Hour).Unix()}
		}, wantCode: "InvalidIdentityToken", wantMsg: "Incorrect token audience"},
		{name: "expired", role: roleA, claims: func(iss string) map[string]any {
			return map[string]any{"iss": iss, "sub": subA, "aud": "sts.amazonaws.com", "exp": now.Add(-time.Minute).Unix()}
		}, wantCode: "ExpiredTokenException", wantMsg: "Token expired"},
		{name: "not yet valid", role: roleA, claims: func(iss string) map[string]any {
			return map[string]any{"iss": iss, "sub": subA, "aud": "sts.amazonaws.com", "nbf": now.Add(time.Hour).Unix(), "exp": now.Add(2 * time.Hour).Unix()}
		}, wantCode: "InvalidIdentityToken"},
		{name: "sub not in trust policy", role: roleA, claims: func(iss string) map[string]any {
			return map[string]any{"iss": iss, "sub": "system:serviceaccount:team-b:puller", "aud": "sts.amazonaws.com", "exp": now.Add(time.Hour).Unix()}
		}, wantCode: "AccessDenied", wantMsg: "Not authorized to perform sts:AssumeRoleWithWebIdentity"},
		{name: "unknown issuer", role: roleA, claims: func(string) map[string]any {
			return map[string]any{"iss": "https://oidc.example.com/id/ABC", "sub": subA, "aud": "sts.amazonaws.com", "exp": now.Add(time.Hour).Unix()}
		}, wantCode: "InvalidIdentityToken", wantMsg: "No OpenIDConnect provider found in your account for https://oidc.example.com/id/ABC"},
		{name: "unregistered role", role: "arn:aws:iam::123456789012:role/nobody", wantCode: "AccessDenied"},
		{name: "issuer unreachable", role: roleA, down: true, wantCode: "IDPCommunicationError"},
		{name: "StringLike wildcard matches", role: roleWild, claims: func(iss string) map[string]any {
			return map[string]any{"iss": iss, "sub": "system:serviceaccount:team-a:anything", "aud": "sts.amazonaws.com", "exp": now.Add(time.Hour).Unix()}
		}},
		{name: "StringLike wildcard stays in its namespace", role: roleWild, claims: func(iss string) map[string]any {
			return map[string]any{"iss": iss, "sub": "system:serviceaccount:team-ab:x", "aud": "sts.amazonaws.com", "exp": now.Add(time.Hour).Unix()}
		}, wantCode: "AccessDenied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startEmu(t, Options{})
			is := newTestIssuer(t)
			is.down = tt.down
			if err := s.RegisterOIDCProvider(OIDCProvider{URL: is.srv.URL, ClientIDs: []string{"sts.amazonaws.com"}, CAPEM: is.caPEM}); err != nil {
				t.Fatal(err)
			}
			hp := providerHostPath(is.srv.URL)
			for role, pol := range map[string]string{
				roleA:    trustPolicy(s.OIDCProviderARN(is.srv.URL), hp, "StringEquals", subA),
				roleWild: trustPolicy(s.OIDCProviderARN(is.srv.URL), hp, "StringLike", "system:serviceaccount:team-a:*"),
			} {
				if err := s.RegisterRole(Role{ARN: role, TrustPolicy: pol}); err != nil {
					t.Fatal(err)
				}
			}
			claims := map[string]any{"iss": is.srv.URL, "sub": subA, "aud": "sts.amazonaws.com", "exp": now.Add(time.Hour).Unix()}
			if tt.claims != nil {
				claims = tt.claims(is.srv.URL)
			}
			key := is.key
			if tt.badKey {
				key = otherKey
			}
			token := is.sign(t, key, claims)

			cfg := loadConfig(t, "us-east-1", 1)
			out, err := sts.NewFromConfig(cfg).AssumeRoleWithWebIdentity(context.Background(), &sts.AssumeRoleWithWebIdentityInput{
				RoleArn: aws.String(tt.role), RoleSessionName: aws.String("s"), WebIdentityToken: aws.String(token),
			})
			if tt.wantCode != "" {
				if errorCode(err) != tt.wantCode || !strings.Contains(fmt.Sprint(err), tt.wantMsg) {
					t.Fatalf("err = %v; want code %s with %q", err, tt.wantCode, tt.wantMsg)
				}
				if strings.Contains(fmt.Sprint(err), token) {
					t.Error("the error carries the token")
				}
				return
			}
			if err != nil {
				t.Fatalf("AssumeRoleWithWebIdentity: %v", err)
			}
			if got, want := aws.ToString(out.AssumedRoleUser.Arn), AssumedRoleARN(tt.role, "s"); got != want {
				t.Errorf("assumed %s, want %s", got, want)
			}
			recs := s.Requests()
			i := slices.IndexFunc(recs, func(r Record) bool { return r.Operation == "AssumeRoleWithWebIdentity" })
			if i < 0 || recs[i].WebIdentitySubject != claims["sub"] || recs[i].WebIdentityAudience != "sts.amazonaws.com" {
				t.Errorf("request log %+v: want the verified sub and aud", recs)
			}
		})
	}
}

// TestPerRolePasswords: ECR tokens fetched with an assumed role's
// credentials carry that role's password, so a registry can tell roles apart.
func TestPerRolePasswords(t *testing.T) {
	s := startEmu(t, Options{})
	is := newTestIssuer(t)
	if err := s.RegisterOIDCProvider(OIDCProvider{URL: is.srv.URL, ClientIDs: []string{"sts.amazonaws.com"}, CAPEM: is.caPEM}); err != nil {
		t.Fatal(err)
	}
	hp := providerHostPath(is.srv.URL)
	roles := map[string]string{ // role ARN -> service account
		"arn:aws:iam::123456789012:role/a": "system:serviceaccount:ns:a",
		"arn:aws:iam::123456789012:role/b": "system:serviceaccount:ns:b",
	}
	for arn, sub := range roles {
		if err := s.RegisterRole(Role{ARN: arn, TrustPolicy: trustPolicy(s.OIDCProviderARN(is.srv.URL), hp, "StringEquals", sub)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RegisterRole(Role{ARN: "arn:aws:iam::123456789012:role/fixed", Password: "fixed-pw",
		TrustPolicy: trustPolicy(s.OIDCProviderARN(is.srv.URL), hp, "StringLike", "*")}); err != nil {
		t.Fatal(err)
	}
	roles["arn:aws:iam::123456789012:role/fixed"] = "system:serviceaccount:ns:c"
	seen := map[string]string{}
	for arn, sub := range roles {
		token := is.sign(t, is.key, map[string]any{"iss": is.srv.URL, "sub": sub, "aud": "sts.amazonaws.com", "exp": time.Now().Add(time.Hour).Unix()})
		tokenFile := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("AWS_ROLE_ARN", arn)
		t.Setenv("AWS_WEB_IDENTITY_TOKEN_FILE", tokenFile)
		t.Setenv("AWS_ROLE_SESSION_NAME", "ecr-credential-provider")
		pass, _, err := ecrPassword(context.Background(), loadConfig(t, "us-east-1", 1))
		if err != nil {
			t.Fatalf("%s: %v", arn, err)
		}
		want := s.PasswordFor(AssumedRoleARN(arn, "ecr-credential-provider"))
		if strings.HasSuffix(arn, "/fixed") && want != "fixed-pw" {
			t.Errorf("PasswordFor the fixed role = %q, want its registered password", want)
		}
		if pass != want {
			t.Errorf("%s: password %q, want %q", arn, pass, want)
		}
		if other, dup := seen[pass]; dup {
			t.Errorf("%s and %s got the same password", arn, other)
		}
		seen[pass] = arn
	}
	if _, dup := seen[s.PasswordFor(s.InstanceARN())]; dup {
		t.Error("a role's password equals the node's")
	}
}

func TestRegistrationRefusesBadInput(t *testing.T) {
	s := startEmu(t, Options{})
	for name, p := range map[string]OIDCProvider{
		"http issuer":   {URL: "http://issuer.example", ClientIDs: []string{"sts.amazonaws.com"}},
		"no client IDs": {URL: "https://issuer.example"},
		"bad CA":        {URL: "https://issuer.example", ClientIDs: []string{"x"}, CAPEM: "not pem"},
	} {
		if err := s.RegisterOIDCProvider(p); err == nil {
			t.Errorf("%s: registered", name)
		}
	}
	for name, r := range map[string]Role{
		"not a role ARN":     {ARN: "arn:aws:iam::1:user/x", TrustPolicy: `{"Statement":[{"Effect":"Allow"}]}`},
		"not JSON":           {ARN: "arn:aws:iam::1:role/x", TrustPolicy: `{`},
		"no statement":       {ARN: "arn:aws:iam::1:role/x", TrustPolicy: `{"Version":"2012-10-17"}`},
		"unknown operator":   {ARN: "arn:aws:iam::1:role/x", TrustPolicy: `{"Statement":[{"Effect":"Allow","Condition":{"ForAnyValue:StringEquals":{}}}]}`},
		"misspelt field":     {ARN: "arn:aws:iam::1:role/x", TrustPolicy: `{"Statement":[{"Efect":"Allow"}]}`},
		"effect not allowed": {ARN: "arn:aws:iam::1:role/x", TrustPolicy: `{"Statement":[{"Effect":"Maybe"}]}`},
	} {
		if err := s.RegisterRole(r); err == nil {
			t.Errorf("%s: registered", name)
		}
	}
}

// TestWebIdentityControlAPI registers a provider and a role through the
// control API, as the out-of-process users do.
func TestWebIdentityControlAPI(t *testing.T) {
	s := startEmu(t, Options{})
	is := newTestIssuer(t)
	post := func(path string, body any) (int, string) {
		b, _ := json.Marshal(body)
		resp, err := http.Post(s.URL()+path, "application/json", strings.NewReader(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ = io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := post("/_emu/oidc-provider", OIDCProvider{URL: is.srv.URL, ClientIDs: []string{"sts.amazonaws.com"}, CAPEM: is.caPEM})
	if code != 200 || !strings.Contains(body, s.OIDCProviderARN(is.srv.URL)) {
		t.Fatalf("register provider: %d %s", code, body)
	}
	const role = "arn:aws:iam::123456789012:role/api"
	pol := trustPolicy(s.OIDCProviderARN(is.srv.URL), providerHostPath(is.srv.URL), "StringEquals", "system:serviceaccount:x:y")
	if code, body := post("/_emu/role", Role{ARN: role, TrustPolicy: pol}); code != 200 {
		t.Fatalf("register role: %d %s", code, body)
	}
	if code, _ := post("/_emu/role", Role{ARN: role, TrustPolicy: "{"}); code != http.StatusBadRequest {
		t.Errorf("bad policy answered %d, want 400", code)
	}
	cfg := loadConfig(t, "us-east-1", 1)
	for sub, wantCode := range map[string]string{"system:serviceaccount:x:y": "", "system:serviceaccount:x:z": "AccessDenied"} {
		token := is.sign(t, is.key, map[string]any{"iss": is.srv.URL, "sub": sub, "aud": "sts.amazonaws.com", "exp": time.Now().Add(time.Hour).Unix()})
		_, err := sts.NewFromConfig(cfg).AssumeRoleWithWebIdentity(context.Background(), &sts.AssumeRoleWithWebIdentityInput{
			RoleArn: aws.String(role), RoleSessionName: aws.String("s"), WebIdentityToken: aws.String(token),
		})
		if errorCode(err) != wantCode {
			t.Errorf("%s: err %v, want code %q", sub, err, wantCode)
		}
	}
}

func TestGlobMatch(t *testing.T) {
	for _, tt := range []struct {
		pattern, s string
		want       bool
	}{
		{"system:serviceaccount:ns:*", "system:serviceaccount:ns:a", true},
		{"system:serviceaccount:ns:*", "system:serviceaccount:other:a", false},
		{"*", "a/b/c", true},
		{"a?c", "abc", true},
		{"a?c", "abbc", false},
		{"a/*", "a/b/c", true},
		{"[x]", "[x]", true}, // brackets are literal in IAM
		{"[x]", "x", false},
		{"[x]*", "[x]yz", true},
		{`a\*`, `a\bc`, true},
		{"exact", "exact", true},
		{"exact", "exactly", false},
	} {
		if got := globMatch(tt.pattern, tt.s); got != tt.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
		}
	}
}
