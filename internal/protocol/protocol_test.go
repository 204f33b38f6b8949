package protocol_test

import (
	"strings"
	"testing"

	"github.com/kubecred/ecr-credential-provider/internal/protocol"
)

// The wire-compatibility tests against the kubelet's own types and
// serializer are in test/e2e/wire_test.go, so k8s.io stays out of this
// module's go.mod.

func TestDecodeRejects(t *testing.T) {
	tests := []struct {
		name, in, wantErr string
	}{
		{"empty", "", "no request on stdin"},
		{"whitespace", " \n", "no request on stdin"},
		{"not json", "{", "not valid JSON"},
		{"array", "[]", "not a JSON object"},
		{"wrong kind", `{"kind":"Pod","apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":"a/b"}`, `kind is "Pod"`},
		{"unknown version", `{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/v2","image":"a/b"}`, "not supported"},
		{"other group", `{"kind":"CredentialProviderRequest","apiVersion":"v1","image":"a/b"}`, "not supported"},
		{"empty image", `{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":""}`, "empty image"},
		{"image wrong type", `{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":5}`, `"image" has the wrong type`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := protocol.DecodeRequest([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

// ReadRequest bounds what it reads; ReadRequestBytes hands back what it read
// either way, so a caller can pass it on intact.
func TestReadRequestSizeLimit(t *testing.T) {
	const req = `{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":"a/b"}`
	for _, tt := range []struct {
		name    string
		in      string
		wantErr string
	}{
		{"at the limit", req + strings.Repeat(" ", protocol.MaxRequestBytes-len(req)), ""},
		{"one byte over", req + strings.Repeat(" ", protocol.MaxRequestBytes-len(req)+1), "larger than"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			data, err := protocol.ReadRequestBytes(strings.NewReader(tt.in))
			if tt.wantErr == "" {
				if err != nil || string(data) != tt.in {
					t.Fatalf("read %d bytes, err %v; want all %d", len(data), err, len(tt.in))
				}
			} else if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(tt.in, string(data)) || len(data) != protocol.MaxRequestBytes+1 {
				t.Fatalf("read %d bytes, err %v; want the first %d bytes and %q", len(data), err, protocol.MaxRequestBytes+1, tt.wantErr)
			}
			_, err = protocol.ReadRequest(strings.NewReader(tt.in))
			if (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("ReadRequest err %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// TestErrorsNeverEchoTheToken guards against a decode error quoting input.
func TestErrorsNeverEchoTheToken(t *testing.T) {
	secret := "SECRET-SA-TOKEN"
	for _, in := range []string{
		`{"kind":"CredentialProviderRequest","apiVersion":"x","serviceAccountToken":"` + secret + `","image":"a/b"}`,
		`{"kind":"Nope","serviceAccountToken":"` + secret + `"}`,
		`{"kind":"CredentialProviderRequest","serviceAccountToken":"` + secret + `",`,
		`{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/v1","serviceAccountToken":"` + secret + `","image":""}`,
	} {
		_, err := protocol.DecodeRequest([]byte(in))
		if err == nil || strings.Contains(err.Error(), secret) {
			t.Fatalf("err = %v", err)
		}
	}
	r := protocol.Request{ServiceAccountToken: secret}
	if strings.Contains(r.String(), secret) || strings.Contains(protocol.AuthConfig{Password: secret}.String(), secret) {
		t.Fatal("String() leaks a secret")
	}
}

func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte(`{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":"1.dkr.ecr.us-east-1.amazonaws.com/x"}`))
	f.Add([]byte(`{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/v1alpha1","image":"x","serviceAccountToken":"t"}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := protocol.DecodeRequest(data)
		if err != nil {
			return
		}
		if req.Kind != protocol.RequestKind || !protocol.Supported(req.APIVersion) || strings.TrimSpace(req.Image) == "" {
			t.Fatalf("accepted an invalid request: %+v", req)
		}
		if req.APIVersion != protocol.V1 && req.ServiceAccountToken != "" {
			t.Fatal("service account token kept for a pre-v1 request")
		}
	})
}

// An error repeats at most a short prefix of any request field.
func TestErrorsClipEchoedFields(t *testing.T) {
	huge := strings.Repeat("k", 1<<20)
	for name, in := range map[string]string{
		"kind":       `{"kind":"` + huge + `","apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":"x/y"}`,
		"apiVersion": `{"kind":"CredentialProviderRequest","apiVersion":"` + huge + `","image":"x/y"}`,
	} {
		_, err := protocol.DecodeRequest([]byte(in))
		if err == nil {
			t.Fatalf("%s: accepted", name)
		}
		if len(err.Error()) > 1024 {
			t.Errorf("%s: error is %d bytes long", name, len(err.Error()))
		}
	}
}
