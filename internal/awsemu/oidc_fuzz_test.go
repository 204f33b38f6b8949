package awsemu

import (
	"context"
	"errors"
	"testing"
)

// FuzzParsePolicy: any trust policy document is parsed or refused with an
// error, never a panic, and a parsed one can be evaluated.
func FuzzParsePolicy(f *testing.F) {
	f.Add(trustPolicy("arn:aws:iam::1:oidc-provider/issuer", "issuer", "StringLike", "system:serviceaccount:*"))
	f.Add(`{"Statement":[{"Effect":"Deny","Principal":{"Federated":["*"]},"Action":["sts:*"]}]}`)
	f.Add(`{"Statement":[{"Effect":"Allow","Condition":{"StringNotLike":{"issuer:sub":["a?","[b"]}}}]}`)
	id := &identity{provider: &oidcProvider{hostPath: "issuer"}, sub: "system:serviceaccount:ns:sa", aud: "sts.amazonaws.com"}
	f.Fuzz(func(t *testing.T, doc string) {
		p, err := parsePolicy(doc)
		if err != nil {
			return
		}
		p.allows("arn:aws:iam::1:oidc-provider/issuer", id)
	})
}

// FuzzWebIdentityToken: any token is refused with one of AWS's STS errors
// and never panics. No provider matches the fuzzed issuers, so no network
// is touched.
func FuzzWebIdentityToken(f *testing.F) {
	f.Add("eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwczovL3gifQ.c2ln")
	f.Add("a.b.c")
	f.Add("")
	s := newServer(Options{})
	f.Fuzz(func(t *testing.T, token string) {
		_, err := s.verifyWebIdentity(context.Background(), token)
		var sf *stsFailure
		if !errors.As(err, &sf) || sf.code != "InvalidIdentityToken" {
			t.Fatalf("token %q: err %v, want InvalidIdentityToken", token, err)
		}
	})
}
