package kubeapi

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// clientCert makes a CA and a client certificate it signed for a node.
func clientCert(t *testing.T, cn string, orgs ...string) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn, Organization: orgs},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

// apiServer is a TLS server that asks for client certificates and records
// each request with the identity it came with.
type apiServer struct {
	*httptest.Server
	caPEM []byte // the server's certificate, to trust
	seen  []request
	// answer answers a request: status and JSON body.
	answer func(r request) (int, string)
}

type request struct {
	method, path, user, body, contentType string
}

func newAPIServer(t *testing.T, clientCA []byte) *apiServer {
	t.Helper()
	s := &apiServer{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rq := request{method: r.Method, path: r.URL.Path, body: string(b), contentType: r.Header.Get("Content-Type")}
		switch {
		case r.TLS != nil && len(r.TLS.PeerCertificates) > 0:
			c := r.TLS.PeerCertificates[0].Subject
			rq.user = c.CommonName + "/" + strings.Join(c.Organization, ",")
		case r.Header.Get("Authorization") != "":
			rq.user = r.Header.Get("Authorization")
		}
		s.seen = append(s.seen, rq)
		code, body := s.answer(rq)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		io.WriteString(w, body)
	}))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(clientCA)
	s.TLS = &tls.Config{ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: pool}
	s.StartTLS()
	t.Cleanup(s.Close)
	s.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
	return s
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func TestParseKubeconfigForms(t *testing.T) {
	caPEM, certPEM, keyPEM := clientCert(t, "system:node:n1", "system:nodes")
	dir := t.TempDir()
	files := map[string][]byte{"ca.crt": caPEM, "pki/client.pem": append(append([]byte{}, certPEM...), keyPEM...), "token": []byte("file-token\n")}
	for p, b := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, p), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const head = "apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts:\n- name: other\n  context: {cluster: x, user: x}\n- name: c\n  context: {cluster: k, user: u}\n"
	cases := []struct {
		name    string
		cfg     string
		want    Config
		wantErr string
	}{
		{"data form", head + "clusters:\n- name: k\n  cluster:\n    server: https://10.0.0.1:6443\n    certificate-authority-data: " + b64(caPEM) + "\nusers:\n- name: u\n  user:\n    client-certificate-data: " + b64(certPEM) + "\n    client-key-data: " + b64(keyPEM) + "\n",
			Config{Server: "https://10.0.0.1:6443", CAData: caPEM, CertData: certPEM, KeyData: keyPEM, User: "u", Cluster: "k"}, ""},
		{"file form, relative to the kubeconfig, cert and key in one file (kubelet rotation)", head + "clusters:\n- name: k\n  cluster:\n    server: https://h:6443\n    certificate-authority: ca.crt\n    tls-server-name: kubernetes\nusers:\n- name: u\n  user:\n    client-certificate: " + dir + "/pki/client.pem\n    client-key: pki/client.pem\n",
			Config{Server: "https://h:6443", TLSServerName: "kubernetes", CAData: caPEM, CertData: files["pki/client.pem"], KeyData: files["pki/client.pem"], User: "u", Cluster: "k"}, ""},
		{"token", head + "clusters:\n- name: k\n  cluster: {server: 'https://h', insecure-skip-tls-verify: true}\nusers:\n- name: u\n  user: {token: abc}\n",
			Config{Server: "https://h", Insecure: true, Token: "abc", User: "u", Cluster: "k"}, ""},
		{"token file", head + "clusters:\n- name: k\n  cluster: {server: 'https://h'}\nusers:\n- name: u\n  user: {tokenFile: token}\n",
			Config{Server: "https://h", Token: "file-token", User: "u", Cluster: "k"}, ""},
		{"exec user", head + "clusters:\n- name: k\n  cluster: {server: 'https://h'}\nusers:\n- name: u\n  user: {exec: {command: aws}}\n", Config{}, "exec or auth-provider"},
		{"missing file", head + "clusters:\n- name: k\n  cluster: {server: 'https://h', certificate-authority: nope.crt}\nusers:\n- name: u\n  user: {}\n", Config{}, "certificate-authority: open " + dir + "/nope.crt"},
		{"no such context", "current-context: zz\ncontexts: []\n", Config{}, `current-context "zz" is not among its contexts`},
		{"no server", head + "clusters:\n- name: k\n  cluster: {}\nusers: []\n", Config{}, `cluster "k" has no server`},
		{"cert without key", head + "clusters:\n- name: k\n  cluster: {server: 'https://h'}\nusers:\n- name: u\n  user: {client-certificate-data: " + b64(certPEM) + "}\n", Config{}, "without a key"},
		{"not yaml", "\t:", Config{}, "not a kubeconfig"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, "kubeconfig")
			os.WriteFile(path, []byte(c.cfg), 0o600)
			got, err := LoadFile(path)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, c.want) {
				t.Errorf("got %+v\nwant %+v", *got, c.want)
			}
			wantUser := ""
			if len(c.want.CertData) > 0 {
				wantUser = "system:node:n1"
			}
			if u := got.CertUser(); u != wantUser {
				t.Errorf("CertUser() = %q, want %q", u, wantUser)
			}
		})
	}
}

// TestClientCalls: each call sends the API server's method, path and body,
// with the node's client certificate, and reads its answer.
func TestClientCalls(t *testing.T) {
	clientCA, certPEM, keyPEM := clientCert(t, "system:node:n1", "system:nodes")
	s := newAPIServer(t, clientCA)
	s.answer = func(r request) (int, string) {
		switch {
		case r.method == "POST" && r.path == "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews":
			var in struct {
				APIVersion, Kind string
				Spec             struct{ ResourceAttributes ResourceAttributes }
			}
			json.Unmarshal([]byte(r.body), &in)
			if in.APIVersion != "authorization.k8s.io/v1" || in.Kind != "SelfSubjectAccessReview" {
				return 400, `{"kind":"Status","reason":"BadRequest","message":"wrong kind"}`
			}
			if in.Spec.ResourceAttributes == (ResourceAttributes{Verb: "request-serviceaccounts-token-audience", Resource: "sts.amazonaws.com", Namespace: "team"}) {
				return 201, `{"status":{"allowed":true,"reason":"RBAC: allowed by ClusterRoleBinding"}}`
			}
			return 201, `{"status":{"allowed":false}}`
		case r.method == "GET" && r.path == "/api/v1/namespaces/team/serviceaccounts/app":
			return 200, `{"kind":"ServiceAccount","metadata":{"name":"app","namespace":"team","uid":"u-1","annotations":{"eks.amazonaws.com/ecr-role-arn":"arn:aws:iam::111122223333:role/a"}}}`
		case r.method == "GET" && r.path == "/api/v1/namespaces/team/serviceaccounts/gone":
			return 404, `{"kind":"Status","reason":"NotFound","message":"serviceaccounts \"gone\" not found","code":404}`
		case r.method == "POST" && r.path == "/api/v1/namespaces/team/serviceaccounts/app/token":
			var in struct {
				APIVersion, Kind string
				Spec             struct {
					Audiences         []string
					ExpirationSeconds int64
				}
			}
			json.Unmarshal([]byte(r.body), &in)
			if in.Kind != "TokenRequest" || in.APIVersion != "authentication.k8s.io/v1" || len(in.Spec.Audiences) != 1 || in.Spec.Audiences[0] != "sts.amazonaws.com" || in.Spec.ExpirationSeconds != 600 {
				return 400, `{"kind":"Status","reason":"BadRequest","message":"bad TokenRequest"}`
			}
			return 201, `{"status":{"token":"a.b.c","expirationTimestamp":"2030-01-02T03:04:05Z"}}`
		case r.method == "POST" && r.path == "/api/v1/namespaces/team/serviceaccounts/other/token":
			return 403, `{"kind":"Status","reason":"Forbidden","message":"serviceaccounts \"other\" is forbidden: User \"system:node:n1\" cannot create resource \"serviceaccounts/token\"","code":403}`
		}
		return 500, `{}`
	}
	c, err := New(&Config{Server: s.URL, CAData: s.caPEM, CertData: certPEM, KeyData: keyPEM}, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	acc, err := c.CanI(ctx, ResourceAttributes{Verb: "request-serviceaccounts-token-audience", Resource: "sts.amazonaws.com", Namespace: "team"})
	if err != nil || !acc.Allowed || acc.Reason == "" {
		t.Errorf("CanI allowed: %+v, %v", acc, err)
	}
	acc, err = c.CanI(ctx, ResourceAttributes{Verb: "request-serviceaccounts-token-audience", Resource: "other", Namespace: "team"})
	if err != nil || acc.Allowed {
		t.Errorf("CanI denied: %+v, %v", acc, err)
	}

	sa, err := c.GetServiceAccount(ctx, "team", "app")
	if err != nil || sa.Metadata.Name != "app" || sa.Metadata.UID != "u-1" || sa.Metadata.Annotations["eks.amazonaws.com/ecr-role-arn"] != "arn:aws:iam::111122223333:role/a" {
		t.Errorf("GetServiceAccount: %+v, %v", sa, err)
	}
	if _, err := c.GetServiceAccount(ctx, "team", "gone"); !IsNotFound(err) || !strings.Contains(err.Error(), `serviceaccounts "gone" not found`) {
		t.Errorf("missing service account: %v", err)
	}

	tok, err := c.CreateToken(ctx, "team", "app", []string{"sts.amazonaws.com"}, 10*time.Minute)
	if err != nil || tok.Value != "a.b.c" || !tok.ExpiresAt.Equal(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Errorf("CreateToken: %+v, %v", tok, err)
	}
	_, err = c.CreateToken(ctx, "team", "other", []string{"sts.amazonaws.com"}, 10*time.Minute)
	if !IsForbidden(err) || IsNotFound(err) || !strings.Contains(err.Error(), "cannot create resource") {
		t.Errorf("refused TokenRequest: %v", err)
	}

	for _, r := range s.seen {
		if r.user != "system:node:n1/system:nodes" {
			t.Errorf("%s %s came as %q, want the node's certificate", r.method, r.path, r.user)
		}
		if (r.method == "POST") != (r.contentType == "application/json") {
			t.Errorf("%s %s: content type %q", r.method, r.path, r.contentType)
		}
	}
	if len(s.seen) != 6 {
		t.Errorf("%d requests, want 6", len(s.seen))
	}
}

func TestClientTokenAndTLS(t *testing.T) {
	clientCA, _, _ := clientCert(t, "x")
	s := newAPIServer(t, clientCA)
	s.answer = func(r request) (int, string) { return 200, `{"metadata":{"name":"app"}}` }
	c, err := New(&Config{Server: s.URL + "/", CAData: s.caPEM, Token: "secret-token"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetServiceAccount(context.Background(), "ns", "app"); err != nil {
		t.Fatal(err)
	}
	if got := s.seen[0]; got.user != "Bearer secret-token" || got.path != "/api/v1/namespaces/ns/serviceaccounts/app" {
		t.Errorf("request %+v", got)
	}
	// Negative control: without the server's CA the client refuses it.
	otherCA, _, _ := clientCert(t, "y")
	c, _ = New(&Config{Server: s.URL, CAData: otherCA, Token: "secret-token"}, 0)
	_, err = c.GetServiceAccount(context.Background(), "ns", "app")
	if err == nil || !strings.Contains(err.Error(), "certificate") || strings.Contains(err.Error(), "secret-token") {
		t.Errorf("untrusted server: %v", err)
	}
	if len(s.seen) != 1 {
		t.Errorf("the untrusted server got the request")
	}
	for _, bad := range []Config{{Server: "10.0.0.1:6443"}, {Server: "https://h", CAData: []byte("x")}, {Server: "https://h", CertData: []byte("x"), KeyData: []byte("y")}} {
		if _, err := New(&bad, 0); err == nil {
			t.Errorf("New(%+v) accepted", bad)
		}
	}
}

func TestDecodeClaims(t *testing.T) {
	enc := func(payload string) string {
		return "eyJhbGciOiJSUzI1NiJ9." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + ".sig"
	}
	cases := []struct {
		token   string
		want    Claims
		wantErr string
	}{
		{enc(`{"iss":"https://oidc.example.com/id/X","sub":"system:serviceaccount:team:app","aud":["sts.amazonaws.com"],"exp":1893456000}`),
			Claims{"https://oidc.example.com/id/X", "system:serviceaccount:team:app", []string{"sts.amazonaws.com"}, time.Unix(1893456000, 0)}, ""},
		{enc(`{"sub":"s","aud":"one"}`), Claims{Subject: "s", Audience: []string{"one"}}, ""},
		{"a.b", Claims{}, "2 dot-separated parts"},
		{"a.!!!.c", Claims{}, "not base64url"},
		{enc(`[1]`), Claims{}, "not a JSON object"},
		{enc(`{"aud":7}`), Claims{}, "aud claim"},
		{enc(`{"exp":"soon"}`), Claims{}, "not a JSON object"},
	}
	for _, c := range cases {
		got, err := DecodeClaims(c.token)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) || strings.Contains(err.Error(), c.token) {
				t.Errorf("DecodeClaims(%q) error %v, want %q (and no token in it)", c.token, err, c.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("DecodeClaims(%q) = %+v, %v; want %+v", c.token, got, err, c.want)
		}
	}
}

func FuzzDecodeClaims(f *testing.F) {
	f.Add("e30." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"s","aud":["a"],"exp":1}`)) + ".x")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, tok string) {
		if _, err := DecodeClaims(tok); err != nil && len(tok) > 8 && strings.Contains(err.Error(), tok) {
			t.Errorf("the error quotes the token")
		}
	})
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\nclusters: [{name: k, cluster: {server: 'https://h'}}]\nusers: [{name: u, user: {token: t}}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data, "/nonexistent", func(string) ([]byte, error) { return nil, os.ErrNotExist })
		if err == nil && cfg.Server == "" {
			t.Errorf("a config without a server was accepted")
		}
	})
}
