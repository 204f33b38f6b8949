package awsemu

import (
	"context"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// The GET ListUsers example from the AWS SigV4 documentation ("Create a
// canonical request" / "Calculate the signature").
const (
	exampleSecret    = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
	exampleSignature = "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
)

func exampleRequest(signature string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08", nil)
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	r.Header.Set("X-Amz-Date", "20150830T123600Z")
	r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, "+
		"SignedHeaders=content-type;host;x-amz-date, Signature="+signature)
	return r
}

func exampleLookup(akid string) (string, string, bool) {
	return exampleSecret, "", akid == "AKIDEXAMPLE"
}

func TestSigV4AWSDocumentationExample(t *testing.T) {
	now := time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC)

	// The intermediate values published with the example.
	creq := canonicalRequest(exampleRequest(exampleSignature), []string{"content-type", "host", "x-amz-date"}, sha256Hex(nil))
	if got, want := sha256Hex([]byte(creq)), "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"; got != want {
		t.Errorf("canonical request hash = %s, want %s\ncanonical request:\n%s", got, want, creq)
	}
	if got, want := hex.EncodeToString(signingKey(exampleSecret, "20150830", "us-east-1", "iam")), "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"; got != want {
		t.Errorf("signing key = %s, want %s", got, want)
	}

	tests := []struct {
		name     string
		mutate   func(*http.Request)
		now      time.Time
		wantKind string // "" = accepted
	}{
		{name: "published request", now: now},
		{name: "changed query", now: now, mutate: func(r *http.Request) { r.URL.RawQuery = "Action=ListUsers&Version=2010-05-09" }, wantKind: "sig"},
		{name: "changed signed header", now: now, mutate: func(r *http.Request) { r.Header.Set("Content-Type", "text/plain") }, wantKind: "sig"},
		{name: "changed host", now: now, mutate: func(r *http.Request) { r.Host = "iam.example.com" }, wantKind: "sig"},
		{name: "wrong signature", now: now, mutate: func(r *http.Request) {
			r.Header.Set("Authorization", exampleRequest(strings.Repeat("0", 64)).Header.Get("Authorization"))
		}, wantKind: "sig"},
		{name: "unknown key", now: now, mutate: func(r *http.Request) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "AKIDEXAMPLE", "AKIDOTHER", 1))
		}, wantKind: "key"},
		{name: "clock skew", now: now.Add(6 * time.Minute), wantKind: "skew"},
		{name: "unsigned", now: now, mutate: func(r *http.Request) { r.Header.Del("Authorization") }, wantKind: "missing"},
		{name: "unsigned header not checked", now: now, mutate: func(r *http.Request) { r.Header.Set("User-Agent", "x") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := exampleRequest(exampleSignature)
			if tt.mutate != nil {
				tt.mutate(r)
			}
			sc, err := verifySigV4(r, nil, tt.now, 5*time.Minute, exampleLookup)
			kind := ""
			if err != nil {
				kind = err.(*sigError).Kind
			}
			if kind != tt.wantKind {
				t.Fatalf("verify: kind %q (err %v), want %q", kind, err, tt.wantKind)
			}
			if err == nil && (sc != sigScope{"AKIDEXAMPLE", "20150830", "us-east-1", "iam"}) {
				t.Errorf("scope = %+v", sc)
			}
		})
	}
}

// TestSigV4AgainstSDKSigner signs requests with the SDK's signer, which the
// verifier shares no code with, including the awkward encodings.
func TestSigV4AgainstSDKSigner(t *testing.T) {
	now := time.Now().UTC()
	creds := aws.Credentials{AccessKeyID: "ASIATEST", SecretAccessKey: "s3cr3t/+KEY", SessionToken: "tok+/="}
	lookup := func(akid string) (string, string, bool) {
		return creds.SecretAccessKey, creds.SessionToken, akid == creds.AccessKeyID
	}
	tests := []struct {
		name     string
		url      string
		body     string
		signCred aws.Credentials
		tamper   func(*http.Request, *[]byte)
		wantKind string
	}{
		{name: "json post", url: "http://127.0.0.1:1/", body: `{"registryIds":["123456789012"]}`, signCred: creds},
		{name: "escaped path and query", url: "http://127.0.0.1:1/a%20b/c~d/%E2%82%AC?z=1&a=x%20y&a=%2F&empty=", signCred: creds},
		{name: "body changed after signing", url: "http://127.0.0.1:1/", body: `{"a":1}`, signCred: creds,
			tamper: func(_ *http.Request, b *[]byte) { *b = []byte(`{"a":2}`) }, wantKind: "sig"},
		{name: "header changed after signing", url: "http://127.0.0.1:1/", signCred: creds,
			tamper: func(r *http.Request, _ *[]byte) { r.Header.Set("X-Amz-Target", "Other.Op") }, wantKind: "sig"},
		{name: "session token swapped", url: "http://127.0.0.1:1/", signCred: creds,
			tamper: func(r *http.Request, _ *[]byte) { r.Header.Set("X-Amz-Security-Token", "other") }, wantKind: "key"},
		{name: "session token missing", url: "http://127.0.0.1:1/",
			signCred: aws.Credentials{AccessKeyID: creds.AccessKeyID, SecretAccessKey: creds.SecretAccessKey}, wantKind: "key"},
		{name: "wrong secret", url: "http://127.0.0.1:1/",
			signCred: aws.Credentials{AccessKeyID: creds.AccessKeyID, SecretAccessKey: "nope", SessionToken: creds.SessionToken}, wantKind: "sig"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, tt.url, strings.NewReader(tt.body))
			r.Header.Set("Content-Type", "application/x-amz-json-1.1")
			r.Header.Set("X-Amz-Target", "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken")
			body := []byte(tt.body)
			err := v4.NewSigner().SignHTTP(context.Background(), tt.signCred, r, sha256Hex(body), "ecr", "eu-west-1", now)
			if err != nil {
				t.Fatal(err)
			}
			if tt.tamper != nil {
				tt.tamper(r, &body)
			}
			sc, err := verifySigV4(r, body, now, 5*time.Minute, lookup)
			kind := ""
			if err != nil {
				kind = err.(*sigError).Kind
			}
			if kind != tt.wantKind {
				t.Fatalf("verify: kind %q (err %v), want %q", kind, err, tt.wantKind)
			}
			if err == nil && (sc.Service != "ecr" || sc.Region != "eu-west-1") {
				t.Errorf("scope = %+v", sc)
			}
		})
	}
}
