package doctor

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
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/smithy-go"

	"github.com/kubecred/ecr-credential-provider/internal/ecrhost"
	"github.com/kubecred/ecr-credential-provider/internal/plugin"
	"github.com/kubecred/ecr-credential-provider/internal/providerconfig"
)

const (
	saRole   = "arn:aws:iam::" + acct + ":role/team-app-ecr"
	issuer   = "https://oidc.example.com/id/CLUSTER1"
	saSub    = "system:serviceaccount:team:app"
	nodeUser = "system:node:n1"
)

// fakeAPIServer answers the node's calls as kube-apiserver does, and
// records who asked what.
type fakeAPIServer struct {
	*httptest.Server
	mu sync.Mutex
	// audienceAllowed is the RBAC verdict for the audience.
	audienceAllowed bool
	annotations     map[string]string
	saMissing       bool
	saForbidden     bool
	// token, when set, is what a TokenRequest returns; else 403.
	token string
	seen  []string
}

func newFakeAPIServer(t *testing.T, ca *testCA) *fakeAPIServer {
	f := &fakeAPIServer{}
	f.Server = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.TLS = &tls.Config{Certificates: []tls.Certificate{ca.leaf(t, "127.0.0.1")}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.pool}
	quiet(f.Server)
	f.StartTLS()
	t.Cleanup(f.Close)
	return f
}

func (f *fakeAPIServer) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	user := r.TLS.PeerCertificates[0].Subject
	body, _ := io.ReadAll(r.Body)
	f.seen = append(f.seen, r.Method+" "+r.URL.Path+" as "+user.CommonName)
	reply := func(code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(v)
	}
	status := func(code int, reason, msg string) {
		reply(code, map[string]any{"kind": "Status", "status": "Failure", "reason": reason, "message": msg, "code": code})
	}
	switch {
	case r.Method == "POST" && r.URL.Path == "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews":
		var in struct {
			Spec struct {
				ResourceAttributes map[string]string `json:"resourceAttributes"`
			} `json:"spec"`
		}
		json.Unmarshal(body, &in)
		a := in.Spec.ResourceAttributes
		ok := f.audienceAllowed && a["verb"] == "request-serviceaccounts-token-audience" && a["resource"] == "sts.amazonaws.com" && a["namespace"] == "team" && a["name"] == "app"
		reply(201, map[string]any{"status": map[string]any{"allowed": ok}})
	case r.Method == "GET" && r.URL.Path == "/api/v1/namespaces/team/serviceaccounts/app":
		switch {
		case f.saMissing:
			status(404, "NotFound", `serviceaccounts "app" not found`)
		case f.saForbidden:
			status(403, "Forbidden", `serviceaccounts "app" is forbidden: User "system:node:n1" cannot get resource "serviceaccounts" in API group "" in the namespace "team": no relationship found between node 'n1' and this object`)
		default:
			reply(200, map[string]any{"metadata": map[string]any{"name": "app", "namespace": "team", "annotations": f.annotations}})
		}
	case r.Method == "POST" && r.URL.Path == "/api/v1/namespaces/team/serviceaccounts/app/token":
		if f.token == "" {
			status(403, "Forbidden", `serviceaccounts "app" is forbidden: User "system:node:n1" cannot create resource "serviceaccounts/token"`)
			return
		}
		reply(201, map[string]any{"status": map[string]any{"token": f.token, "expirationTimestamp": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}})
	default:
		status(404, "NotFound", "no such path")
	}
}

// clientCertPEM issues a node client certificate, cert and key in one PEM
// file as the kubelet keeps them after rotation.
func (ca *testCA) clientCertPEM(t *testing.T, cn string, orgs ...string) string {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn, Organization: orgs},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})) + string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}))
}

// jwt makes an unsigned-looking service account token with the claims.
func jwt(sub string, aud []string, exp time.Time) string {
	p, _ := json.Marshal(map[string]any{"iss": issuer, "sub": sub, "aud": aud, "exp": exp.Unix()})
	return "eyJhbGciOiJSUzI1NiIsImtpZCI6InRlc3QifQ." + base64.RawURLEncoding.EncodeToString(p) + ".c2lnbmF0dXJlLXNlY3JldC1wYXJ0"
}

// perPodNode is a kubeadm-style node whose kubelet has per-pod roles
// configured and its own kubeconfig pointing at api.
func perPodNode(t *testing.T, w *world, api *fakeAPIServer, perPod bool) (*node, Options) {
	return perPodNodeAt(t, w, api, perPod, "/etc/kubernetes/kubelet.conf", true)
}

// perPodNodeAt writes the kubelet's kubeconfig at kubeconfig; withProcess
// runs a kubelet that names it, else the doctor must find it by itself.
func perPodNodeAt(t *testing.T, w *world, api *fakeAPIServer, perPod bool, kubeconfig string, withProcess bool) (*node, Options) {
	n := newNode(t)
	if withProcess {
		n.process(t, "4321", []string{"/usr/bin/kubelet", "--kubeconfig=" + kubeconfig,
			"--image-credential-provider-config=/etc/kubernetes/ecr.yaml", "--image-credential-provider-bin-dir=/usr/libexec/kcp"}, nil)
	}
	cfg, err := providerconfig.Recommended(providerconfig.RecommendedOptions{PerPodRoles: perPod})
	must(t, err)
	n.file(t, "/etc/kubernetes/ecr.yaml", string(cfg), 0o644)
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: w.ca.cert.Raw})
	// The kubelet's own layout: CA inline, client cert and key in one file.
	n.file(t, kubeconfig, `apiVersion: v1
kind: Config
clusters:
- name: default
  cluster:
    server: `+api.URL+`
    certificate-authority-data: `+base64.StdEncoding.EncodeToString(caPEM)+`
contexts:
- name: default
  context: {cluster: default, user: default}
current-context: default
users:
- name: default
  user:
    client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem
    client-key: /var/lib/kubelet/pki/kubelet-client-current.pem
`, 0o600)
	n.file(t, "/var/lib/kubelet/pki/kubelet-client-current.pem", w.ca.clientCertPEM(t, nodeUser, "system:nodes"), 0o600)
	o := w.options(t, regHost+"/app:v1")
	o.ProcRoot, o.Root, o.ServiceAccount = n.proc, n.root, "team/app"
	if !withProcess {
		o.ConfigPath = n.root + "/etc/kubernetes/ecr.yaml"
	}
	return n, o
}

// TestKubeconfigDiscovery: the doctor asks as the kubelet's own identity,
// found from its --kubeconfig flag, else in the distributions' places.
func TestKubeconfigDiscovery(t *testing.T) {
	cases := []struct {
		path        string
		withProcess bool
		kubeconfig  string // --kubeconfig
		ok          bool
		says        string
	}{
		{"/var/lib/kubelet/custom.kubeconfig", true, "", true, "/var/lib/kubelet/custom.kubeconfig"},
		{"/var/lib/rancher/k3s/agent/kubelet.kubeconfig", false, "", true, "/var/lib/rancher/k3s/agent/kubelet.kubeconfig"},
		{"/var/lib/kubelet/kubeconfig", false, "", true, "/var/lib/kubelet/kubeconfig"},
		{"/srv/node.kubeconfig", false, "/srv/node.kubeconfig", true, "/srv/node.kubeconfig"},
		{"/srv/node.kubeconfig", false, "", false, "no kubeconfig found (looked at /etc/kubernetes/kubelet.conf, /var/lib/kubelet/kubeconfig, /var/lib/rancher/k3s/agent/kubelet.kubeconfig, /var/lib/rancher/rke2/agent/kubelet.kubeconfig)"},
		{"/srv/node.kubeconfig", false, "/srv/other", false, "kubeconfig /srv/other: open "},
	}
	for _, c := range cases {
		w := newWorld(t)
		api := newFakeAPIServer(t, w.ca)
		api.audienceAllowed = true
		_, o := perPodNodeAt(t, w, api, true, c.path, c.withProcess)
		o.Kubeconfig = c.kubeconfig
		rep, err := Run(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		ch := mustCheck(t, rep, CheckAudienceRBAC)
		if (ch.Status == StatusOK) != c.ok || !strings.Contains(ch.Summary+ch.Facts["kubeconfig"], c.says) {
			t.Errorf("kubeconfig at %s (process %v, --kubeconfig %q): %s %s %v", c.path, c.withProcess, c.kubeconfig, ch.Status, ch.Summary, ch.Facts)
		}
		if c.ok && len(api.seen) == 0 {
			t.Errorf("%s: the API server was not asked", c.path)
		}
	}
}

func TestServiceAccountPath(t *testing.T) {
	good := jwt(saSub, []string{"sts.amazonaws.com"}, time.Now().Add(time.Hour))
	tests := []struct {
		name   string
		perPod bool
		setup  func(api *fakeAPIServer, w *world, o *Options)
		want   map[string]Status
		text   map[string][]string
		policy []string // substrings of the web identity check's policy
	}{
		{
			name: "everything in place, token from a TokenRequest", perPod: true,
			setup: func(api *fakeAPIServer, w *world, o *Options) {
				api.audienceAllowed, api.token = true, good
				api.annotations = map[string]string{"eks.amazonaws.com/ecr-role-arn": saRole}
			},
			want: map[string]Status{CheckTokenAttributes: StatusOK, CheckAudienceRBAC: StatusOK, CheckServiceAccount: StatusOK, CheckWebIdentity: StatusOK, CheckPodAuthToken: StatusOK},
			text: map[string][]string{
				CheckPodAuthToken:    {"token for user AWS as " + saRole},
				CheckTokenAttributes: {"audience sts.amazonaws.com", "optional annotations eks.amazonaws.com/ecr-role-arn"},
				CheckServiceAccount:  {"names role " + saRole + " in eks.amazonaws.com/ecr-role-arn, which the kubelet passes"},
				CheckWebIdentity:     {"assumed " + saRole, "from a TokenRequest as the node"},
			},
		},
		{
			name: "the role lacks ECR permissions", perPod: true,
			setup: func(api *fakeAPIServer, w *world, o *Options) {
				api.audienceAllowed = true
				api.annotations = map[string]string{"eks.amazonaws.com/ecr-role-arn": saRole}
				o.ServiceAccountToken = good
				w.emu.Deny("ecr:GetAuthorizationToken", "arn:aws:sts::"+acct+":assumed-role/team-app-ecr/ecr-credential-provider")
			},
			want: map[string]Status{CheckWebIdentity: StatusOK, CheckPodAuthToken: StatusFail, CheckAuthToken: StatusOK},
			text: map[string][]string{CheckPodAuthToken: {"missing permission ecr:GetAuthorizationToken", "attach the managed policy AmazonEC2ContainerRegistryReadOnly to " + saRole}},
		},
		{
			name: "no tokenAttributes, no RBAC", perPod: false,
			setup: func(api *fakeAPIServer, w *world, o *Options) {
				api.annotations = map[string]string{"eks.amazonaws.com/ecr-role-arn": saRole}
				o.ServiceAccountToken = good
			},
			want: map[string]Status{CheckTokenAttributes: StatusFail, CheckAudienceRBAC: StatusFail, CheckServiceAccount: StatusOK, CheckWebIdentity: StatusOK},
			text: map[string][]string{
				CheckTokenAttributes: {"has no tokenAttributes", "install --per-pod-roles"},
				CheckAudienceRBAC:    {"the node (system:node:n1 from /etc/kubernetes/kubelet.conf) may not request service account tokens for audience \"sts.amazonaws.com\"", "ClusterRole ecr-credential-provider-token-audience", "ecr-credential-provider rbac | kubectl apply -f -"},
				CheckWebIdentity:     {"from --service-account-token"},
			},
		},
		{
			name: "node refused a token, none given", perPod: true,
			setup: func(api *fakeAPIServer, w *world, o *Options) {
				api.audienceAllowed = true
				api.annotations = map[string]string{"eks.amazonaws.com/ecr-role-arn": saRole}
			},
			want: map[string]Status{CheckWebIdentity: StatusSkip},
			text: map[string][]string{CheckWebIdentity: {"NodeRestriction", "kubectl create token app -n team --audience sts.amazonaws.com", "--service-account-token"}},
		},
		{
			name: "annotation the kubelet does not pass", perPod: true,
			setup: func(api *fakeAPIServer, w *world, o *Options) {
				api.audienceAllowed = true
				api.annotations = map[string]string{"example.com/role": saRole}
				o.ServiceAccountToken = good
			},
			want: map[string]Status{CheckServiceAccount: StatusFail, CheckWebIdentity: StatusSkip},
			text: map[string][]string{CheckServiceAccount: {"has no role annotation (eks.amazonaws.com/ecr-role-arn)", "kubectl annotate serviceaccount -n team app eks.amazonaws.com/ecr-role-arn="}},
		},
		{
			name: "annotation not a role ARN", perPod: true,
			setup: func(api *fakeAPIServer, w *world, o *Options) {
				api.audienceAllowed = true
				api.annotations = map[string]string{"eks.amazonaws.com/ecr-role-arn": "team-app-ecr"}
			},
			want: map[string]Status{CheckServiceAccount: StatusFail},
			text: map[string][]string{CheckServiceAccount: {"is not an IAM role ARN"}},
		},
		{
			name: "service account missing", perPod: true,
			setup: func(api *fakeAPIServer, w *world, o *Options) { api.saMissing = true },
			want:  map[string]Status{CheckServiceAccount: StatusFail, CheckWebIdentity: StatusSkip},
			text:  map[string][]string{CheckServiceAccount: {"does not exist", "kubectl create serviceaccount app -n team"}},
		},
		{
			name: "node may not read the service account", perPod: true,
			setup: func(api *fakeAPIServer, w *world, o *Options) { api.saForbidden = true },
			want:  map[string]Status{CheckServiceAccount: StatusFail},
			text:  map[string][]string{CheckServiceAccount: {"Node authorizer", "--kubeconfig"}},
		},
		{
			name: "token for another service account", perPod: true,
			setup: func(api *fakeAPIServer, w *world, o *Options) {
				api.audienceAllowed = true
				api.annotations = map[string]string{"eks.amazonaws.com/ecr-role-arn": saRole}
				o.ServiceAccountToken = jwt("system:serviceaccount:team:other", []string{"sts.amazonaws.com"}, time.Now().Add(time.Hour))
			},
			want: map[string]Status{CheckWebIdentity: StatusFail},
			text: map[string][]string{CheckWebIdentity: {`the token is for "system:serviceaccount:team:other", not "system:serviceaccount:team:app"`}},
		},
		{
			name: "token with another audience", perPod: true,
			setup: func(api *fakeAPIServer, w *world, o *Options) {
				api.audienceAllowed = true
				api.annotations = map[string]string{"eks.amazonaws.com/ecr-role-arn": saRole}
				o.ServiceAccountToken = jwt(saSub, []string{"https://kubernetes.default.svc"}, time.Now().Add(time.Hour))
			},
			want: map[string]Status{CheckWebIdentity: StatusFail},
			text: map[string][]string{CheckWebIdentity: {`audience is "https://kubernetes.default.svc", but the kubelet requests "sts.amazonaws.com"`}},
		},
		{
			name: "trust policy refuses, no policy given", perPod: true,
			setup: func(api *fakeAPIServer, w *world, o *Options) {
				api.audienceAllowed = true
				api.annotations = map[string]string{"eks.amazonaws.com/ecr-role-arn": saRole}
				o.ServiceAccountToken = good
				w.emu.RefuseRole(saRole)
			},
			want:   map[string]Status{CheckWebIdentity: StatusFail},
			text:   map[string][]string{CheckWebIdentity: {"AccessDenied", "AWS does not say which condition failed", "--trust-policy", "aws iam update-assume-role-policy --role-name team-app-ecr"}},
			policy: []string{`"Federated": "arn:aws:iam::111122223333:oidc-provider/oidc.example.com/id/CLUSTER1"`, `"oidc.example.com/id/CLUSTER1:sub": "system:serviceaccount:team:app"`, `"oidc.example.com/id/CLUSTER1:aud": "sts.amazonaws.com"`, `"Action": "sts:AssumeRoleWithWebIdentity"`},
		},
		{
			name: "trust policy refuses, the sub condition named", perPod: true,
			setup: func(api *fakeAPIServer, w *world, o *Options) {
				api.audienceAllowed = true
				api.annotations = map[string]string{"eks.amazonaws.com/ecr-role-arn": saRole}
				o.ServiceAccountToken = good
				o.TrustPolicy = []byte(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Federated":"arn:aws:iam::111122223333:oidc-provider/oidc.example.com/id/CLUSTER1"},"Action":"sts:AssumeRoleWithWebIdentity","Condition":{"StringEquals":{"oidc.example.com/id/CLUSTER1:sub":"system:serviceaccount:team:other","oidc.example.com/id/CLUSTER1:aud":"sts.amazonaws.com"}}}]}`)
				w.emu.RefuseRole(saRole)
			},
			want: map[string]Status{CheckWebIdentity: StatusFail},
			text: map[string][]string{CheckWebIdentity: {`StringEquals "oidc.example.com/id/CLUSTER1:sub" is "system:serviceaccount:team:other", but the token's sub is "system:serviceaccount:team:app"`}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			api := newFakeAPIServer(t, w.ca)
			_, o := perPodNode(t, w, api, tt.perPod)
			tt.setup(api, w, &o)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			rep, err := Run(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			text, _ := render(t, rep, good, o.ServiceAccountToken, api.token)
			for id, st := range tt.want {
				if c := mustCheck(t, rep, id); c.Status != st {
					t.Errorf("%s: %s, want %s: %s\n%s", id, c.Status, st, c.Summary, text)
				}
			}
			for id, subs := range tt.text {
				c := mustCheck(t, rep, id)
				all := c.Summary + "\n" + c.Remedy + "\n" + strings.Join(c.Notes, "\n")
				for _, s := range subs {
					if !strings.Contains(all, s) {
						t.Errorf("%s does not say %q:\n%s", id, s, all)
					}
				}
			}
			pol := mustCheck(t, rep, CheckWebIdentity).Policy
			for _, s := range tt.policy {
				if !strings.Contains(pol, s) {
					t.Errorf("policy lacks %s:\n%s", s, pol)
				}
			}
			for _, s := range api.seen {
				if !strings.HasSuffix(s, " as "+nodeUser) {
					t.Errorf("API call %q not made as the node", s)
				}
			}
			if rep.OK && !allOK(rep, CheckTokenAttributes, CheckAudienceRBAC, CheckServiceAccount) {
				t.Errorf("a failing per-pod check left the verdict OK: %s", rep.Verdict)
			}
		})
	}
}

// refusedRole is AWS as a role STS will not let the token assume.
type refusedRole struct{ err error }

func (f refusedRole) Credentials(context.Context) (Creds, error)      { return Creds{}, f.err }
func (f refusedRole) Identity(context.Context) (Identity, error)      { return Identity{}, f.err }
func (f refusedRole) AuthToken(context.Context) (plugin.Token, error) { return plugin.Token{}, f.err }
func (f refusedRole) APIEndpoint(context.Context) (string, error)     { return "", f.err }

func allOK(rep *Report, ids ...string) bool {
	for _, id := range ids {
		if c, _ := rep.Find(id); c.Status != StatusOK {
			return false
		}
	}
	return true
}

// TestWebIdentityErrors: each STS refusal names the part of the setup that
// refused the token.
func TestWebIdentityErrors(t *testing.T) {
	cases := []struct {
		code, msg string
		want      []string
	}{
		{"InvalidIdentityToken", "No OpenIDConnect provider found in your account for https://oidc.example.com/id/CLUSTER1",
			[]string{"aws iam create-open-id-connect-provider --url " + issuer + " --client-id-list sts.amazonaws.com"}},
		{"InvalidIdentityToken", "Incorrect token audience",
			[]string{"the aud condition of the OIDC provider", "add-client-id-to-open-id-connect-provider --open-id-connect-provider-arn arn:aws:iam::111122223333:oidc-provider/oidc.example.com/id/CLUSTER1 --client-id sts.amazonaws.com"}},
		{"InvalidIdentityToken", "Couldn't retrieve verification key from your identity provider", []string{".well-known/openid-configuration"}},
		{"ExpiredTokenException", "Token expired: current date/time 1 must be before the expiration date/time 0", []string{"kubectl create token app -n team"}},
		{"AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity", []string{"trust policy"}},
	}
	for _, c := range cases {
		w := newWorld(t)
		api := newFakeAPIServer(t, w.ca)
		_, o := perPodNode(t, w, api, true)
		api.audienceAllowed = true
		api.annotations = map[string]string{"eks.amazonaws.com/ecr-role-arn": saRole}
		o.ServiceAccountToken = jwt(saSub, []string{"sts.amazonaws.com"}, time.Now().Add(time.Hour))
		var gotRole, gotToken string
		o.NewPodAWS = func(ctx context.Context, reg ecrhost.Registry, roleARN, token string) (AWS, error) {
			gotRole, gotToken = roleARN, token
			return refusedRole{&smithy.OperationError{ServiceID: "STS", OperationName: "AssumeRoleWithWebIdentity", Err: &smithy.GenericAPIError{Code: c.code, Message: c.msg}}}, nil
		}
		rep, err := Run(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		render(t, rep, o.ServiceAccountToken)
		ch := mustCheck(t, rep, CheckWebIdentity)
		all := ch.Summary + "\n" + ch.Remedy
		if ch.Status != StatusFail || ch.Facts["code"] != c.code {
			t.Errorf("%s: %s %v", c.code, ch.Status, ch.Facts)
		}
		for _, s := range c.want {
			if !strings.Contains(all, s) {
				t.Errorf("%s %q: does not say %q:\n%s", c.code, c.msg, s, all)
			}
		}
		if gotRole != saRole || gotToken != o.ServiceAccountToken {
			t.Errorf("NewPodAWS got role %q and another token", gotRole)
		}
		if pc := mustCheck(t, rep, CheckPodAuthToken); pc.Status != StatusSkip {
			t.Errorf("the role's ECR token was asked for without the role: %+v", pc)
		}
	}
	if _, err := Run(context.Background(), Options{Image: regHost + "/a", ServiceAccount: "app"}); err == nil || !strings.Contains(err.Error(), "NAMESPACE/NAME") {
		t.Errorf("a service account without a namespace: %v", err)
	}
}

func TestEvaluateTrust(t *testing.T) {
	prov := newOIDCProvider(issuer+"/", saRole)
	if prov.Key != "oidc.example.com/id/CLUSTER1" || prov.ARN != "arn:aws:iam::111122223333:oidc-provider/oidc.example.com/id/CLUSTER1" {
		t.Fatalf("provider %+v", prov)
	}
	stmt := func(principal, cond string) string {
		return `{"Effect":"Allow","Principal":{"Federated":"` + principal + `"},"Action":["sts:AssumeRoleWithWebIdentity"],"Condition":` + cond + `}`
	}
	const k = "oidc.example.com/id/CLUSTER1"
	cases := []struct {
		name    string
		doc     string
		allowed bool
		failing []string
		notes   []string
	}{
		{"exact match", `{"Statement":[` + stmt(prov.ARN, `{"StringEquals":{"`+k+`:sub":"`+saSub+`","`+k+`:aud":"sts.amazonaws.com"}}`) + `]}`, true, nil, nil},
		{"one statement, not a list", `{"Statement":` + stmt(prov.ARN, `{"StringEquals":{"`+k+`:sub":"`+saSub+`"}}`) + `}`, true, nil, nil},
		{"StringLike wildcard", `{"Statement":[` + stmt(prov.ARN, `{"StringLike":{"`+k+`:sub":"system:serviceaccount:team:*"}}`) + `]}`, true, nil, nil},
		{"StringLike another namespace", `{"Statement":[` + stmt(prov.ARN, `{"StringLike":{"`+k+`:sub":"system:serviceaccount:ops:*"}}`) + `]}`, false,
			[]string{`StringLike "` + k + `:sub" is "system:serviceaccount:ops:*", but the token's sub is "` + saSub + `"`}, nil},
		{"aud condition fails", `{"Statement":[` + stmt(prov.ARN, `{"StringEquals":{"`+k+`:sub":"`+saSub+`","`+k+`:aud":["ecr.example.com","other"]}}`) + `]}`, false,
			[]string{`StringEquals "` + k + `:aud" is ["ecr.example.com", "other"], but the token's aud is "sts.amazonaws.com"`}, nil},
		{"both fail", `{"Statement":[` + stmt(prov.ARN, `{"StringEquals":{"`+k+`:sub":"x","`+k+`:aud":"y"}}`) + `]}`, false,
			[]string{`StringEquals "` + k + `:aud" is "y", but the token's aud is "sts.amazonaws.com"`, `StringEquals "` + k + `:sub" is "x", but the token's sub is "` + saSub + `"`}, nil},
		{"the closest of two statements", `{"Statement":[` + stmt(prov.ARN, `{"StringEquals":{"`+k+`:sub":"x","`+k+`:aud":"y"}}`) + `,` + stmt(prov.ARN, `{"StringEquals":{"`+k+`:sub":"x","`+k+`:aud":"sts.amazonaws.com"}}`) + `]}`, false,
			[]string{`StringEquals "` + k + `:sub" is "x", but the token's sub is "` + saSub + `"`}, nil},
		{"another cluster's provider", `{"Statement":[` + stmt("arn:aws:iam::111122223333:oidc-provider/oidc.example.com/id/OTHER", `{}`) + `]}`, false,
			[]string{"no Allow statement for sts:AssumeRoleWithWebIdentity trusts the OIDC provider " + prov.ARN + " (it trusts arn:aws:iam::111122223333:oidc-provider/oidc.example.com/id/OTHER)"}, nil},
		{"a Deny-only policy", `{"Statement":[{"Effect":"Deny","Principal":"*","Action":"*"}]}`, false, []string{"no Allow statement"}, nil},
		{"StringNotEquals", `{"Statement":[` + stmt(prov.ARN, `{"StringNotEquals":{"`+k+`:sub":"`+saSub+`"}}`) + `]}`, false, []string{"StringNotEquals"}, nil},
		{"unknown operator and key", `{"Statement":[` + stmt(prov.ARN, `{"ArnLike":{"`+k+`:sub":"x"},"StringEquals":{"aws:SourceIp":"1.2.3.4"}}`) + `]}`, true, nil,
			[]string{"ArnLike " + k + ":sub", "StringEquals aws:SourceIp"}},
	}
	for _, c := range cases {
		v, err := evaluateTrust([]byte(c.doc), prov, saSub, []string{"sts.amazonaws.com"})
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if v.Allowed != c.allowed || len(v.Failing) != len(c.failing) || len(v.Unchecked) != len(c.notes) {
			t.Errorf("%s: %+v", c.name, v)
			continue
		}
		for i := range c.failing {
			if !strings.Contains(v.Failing[i], c.failing[i]) {
				t.Errorf("%s: failing[%d] = %q, want %q", c.name, i, v.Failing[i], c.failing[i])
			}
		}
		for i := range c.notes {
			if v.Unchecked[i] != c.notes[i] {
				t.Errorf("%s: unchecked[%d] = %q, want %q", c.name, i, v.Unchecked[i], c.notes[i])
			}
		}
	}
	for _, bad := range []string{"", "[]", `{"Statement":"x"}`} {
		if _, err := evaluateTrust([]byte(bad), prov, saSub, nil); err == nil {
			t.Errorf("evaluateTrust(%q) accepted", bad)
		}
	}
}

func TestLikeMatch(t *testing.T) {
	for _, c := range []struct {
		p, s string
		ok   bool
	}{{"*", "", true}, {"a*c", "abbbc", true}, {"a*c", "ab/c", true}, {"a?c", "abc", true}, {"a?c", "ac", false}, {"abc", "abd", false}, {"*:app", "system:serviceaccount:team:app", true}} {
		if likeMatch(c.p, c.s) != c.ok {
			t.Errorf("likeMatch(%q, %q) != %v", c.p, c.s, c.ok)
		}
	}
}

func FuzzEvaluateTrust(f *testing.F) {
	f.Add([]byte(`{"Statement":[{"Effect":"Allow","Principal":{"Federated":"*"},"Action":"sts:*","Condition":{"StringLike":{"k:sub":"*a*b*c"}}}]}`), "abc")
	f.Fuzz(func(t *testing.T, doc []byte, sub string) {
		if len(doc) > 4096 || len(sub) > 256 {
			return
		}
		evaluateTrust(doc, oidcProvider{Key: "k", ARN: "arn"}, sub, []string{"aud"})
	})
}

// TestServiceAccountPathForAnotherRegistry: the role is still checked for
// an image no ECR provider matches, and the role's ECR token is not asked
// for.
func TestServiceAccountPathForAnotherRegistry(t *testing.T) {
	w := newWorld(t)
	api := newFakeAPIServer(t, w.ca)
	_, o := perPodNode(t, w, api, true)
	api.audienceAllowed = true
	api.annotations = map[string]string{"eks.amazonaws.com/ecr-role-arn": saRole}
	o.ServiceAccountToken = jwt(saSub, []string{"sts.amazonaws.com"}, time.Now().Add(time.Hour))
	o.Image = "ghcr.io/org/app:v1"
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	text, _ := render(t, rep, o.ServiceAccountToken)
	if c := mustCheck(t, rep, CheckWebIdentity); c.Status != StatusOK {
		t.Errorf("web identity: %s %s\n%s", c.Status, c.Summary, text)
	}
	if c := mustCheck(t, rep, CheckPodAuthToken); c.Status != StatusSkip || c.Summary != "not an ECR image" {
		t.Errorf("pod auth token: %s %s", c.Status, c.Summary)
	}
	if c := mustCheck(t, rep, CheckTokenAttributes); c.Status != StatusSkip {
		t.Errorf("tokenAttributes of a provider that does not match: %s %s", c.Status, c.Summary)
	}
}
