package doctor

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kubecred/ecr-credential-provider/internal/awsemu"
	"github.com/kubecred/ecr-credential-provider/internal/ecrhost"
	"github.com/kubecred/ecr-credential-provider/internal/plugin"
	"github.com/kubecred/ecr-credential-provider/internal/protocol"
	"github.com/kubecred/ecr-credential-provider/internal/token"
)

// pluginEnv makes the test binary act as an installed credential provider:
// the plugin check runs it the way the kubelet would.
const pluginEnv = "DOCTOR_TEST_AS_PLUGIN"

func TestMain(m *testing.M) {
	if os.Getenv(pluginEnv) == "1" {
		os.Exit(fakePlugin())
	}
	os.Exit(m.Run())
}

// fakePlugin answers one request with a real token from whatever AWS the
// environment points at (the emulator), as the real plugin does.
func fakePlugin() int {
	req, err := protocol.ReadRequest(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	reg, err := ecrhost.Parse(req.Image)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tok, err := token.New(token.Options{MaxAttempts: 1}).Fetch(ctx, reg, plugin.Identity{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake plugin:", err)
		return 1
	}
	resp := protocol.NewResponse(req)
	resp.CacheDuration = &protocol.Duration{Duration: time.Hour}
	resp.Auth = map[string]protocol.AuthConfig{reg.Host: {Username: tok.Username, Password: tok.Password}}
	if err := resp.Encode(os.Stdout); err != nil {
		return 1
	}
	return 0
}

const (
	acct      = "111122223333"
	otherAcct = "444455556666"
	region    = "us-east-1"
	regHost   = acct + ".dkr.ecr." + region + ".amazonaws.com"
	otherHost = otherAcct + ".dkr.ecr." + region + ".amazonaws.com"
	s3Host    = "prod-" + region + "-starport-layer-bucket.s3." + region + ".amazonaws.com"
	pubHost   = "public.ecr.aws"
	cdnHost   = "d2glxqk2uabbnd.cloudfront.net"
	// presignSecret stands for the credential in a presigned S3 URL.
	presignSecret = "IQoJb3JpZ2luX2VjEPRESIGNEDSECRET"
)

// fakeResolver answers only for the names a test gives it: every other
// name is NXDOMAIN, so no real name is ever looked up.
type fakeResolver struct {
	mu    sync.Mutex
	hosts map[string][]string
	asked []string
}

func (f *fakeResolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	f.mu.Lock()
	f.asked = append(f.asked, host)
	ips, ok := f.hosts[host]
	f.mu.Unlock()
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	var out []net.IPAddr
	for _, s := range ips {
		out = append(out, net.IPAddr{IP: net.ParseIP(s)})
	}
	return out, nil
}

// loopDialer maps the addresses the doctor dials (fake IPs the resolver
// handed out, port 443) onto real loopback listeners, and refuses to dial
// anything else that is not loopback.
type loopDialer struct {
	routes map[string]string
}

func (d *loopDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if to, ok := d.routes[addr]; ok {
		addr = to
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.Equal(net.IPv4(127, 0, 0, 1)) {
		return nil, fmt.Errorf("test dialer: refusing %s: tests stay on 127.0.0.1", addr)
	}
	var nd net.Dialer
	return nd.DialContext(ctx, network, addr)
}

// testCA issues server certificates for the fake AWS names.
type testCA struct {
	pool *x509.CertPool
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "doctor test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{pool: pool, cert: cert, key: key}
}

func (ca *testCA) leaf(t *testing.T, names ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: names[0]},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// fakeECR is a registry that behaves like ECR's: a Basic challenge on
// /v2/, basic auth AWS:<password> checked against the passwords the
// emulator issues, DENIED / NAME_UNKNOWN / MANIFEST_UNKNOWN errors, and
// blob downloads redirected to a presigned URL on the S3 layer bucket
// host, which the same server answers.
type fakeECR struct {
	*httptest.Server
	passwords map[string]string // password -> principal it was issued to
	// denied repositories answer 403 for every principal.
	denied map[string]bool
	mu     sync.Mutex
	seen   []string
}

const (
	configDigest = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	layerDigest  = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
	// platformDigest is the index entry for the platform the tests run on.
	platformDigest = "sha256:4444444444444444444444444444444444444444444444444444444444444444"
)

func newFakeECR(t *testing.T, ca *testCA) *fakeECR {
	f := &fakeECR{passwords: map[string]string{}, denied: map[string]bool{"denied": true}}
	f.Server = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.TLS = &tls.Config{Certificates: []tls.Certificate{ca.leaf(t, "*.dkr.ecr."+region+".amazonaws.com", s3Host, pubHost, cdnHost, "127.0.0.1")}}
	quiet(f.Server)
	f.StartTLS()
	t.Cleanup(f.Close)
	return f
}

func (f *fakeECR) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.seen = append(f.seen, r.Method+" "+r.Host+r.URL.Path)
	f.mu.Unlock()
	if r.Host == s3Host || r.Host == cdnHost {
		if r.URL.Query().Get("X-Amz-Security-Token") != presignSecret || r.Header.Get("Authorization") != "" {
			http.Error(w, "<Error><Code>AccessDenied</Code></Error>", http.StatusForbidden)
			return
		}
		w.WriteHeader(http.StatusPartialContent)
		w.Write([]byte("{"))
		return
	}
	if r.Host == pubHost {
		f.servePublic(w, r)
		return
	}
	user, pass, ok := r.BasicAuth()
	principal := f.passwords[pass]
	if !ok || user != "AWS" || principal == "" {
		w.Header().Set("WWW-Authenticate", `Basic realm="https://`+r.Host+`/",service="ecr.amazonaws.com"`)
		regError(w, http.StatusUnauthorized, "DENIED", "Not Authorized")
		return
	}
	if r.URL.Path == "/v2/" {
		w.WriteHeader(http.StatusOK)
		return
	}
	rest := strings.TrimPrefix(r.URL.Path, "/v2/")
	repo, ref, isManifest := strings.Cut(rest, "/manifests/")
	if !isManifest {
		var isBlob bool
		_, ref, isBlob = strings.Cut(rest, "/blobs/")
		if !isBlob {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Location", "https://"+s3Host+"/"+strings.TrimPrefix(ref, "sha256:")+"?X-Amz-Security-Token="+presignSecret+"&X-Amz-Signature=abc")
		w.WriteHeader(http.StatusTemporaryRedirect)
		return
	}
	acctID, _, _ := strings.Cut(r.Host, ".")
	switch {
	case f.denied[repo]:
		regError(w, http.StatusForbidden, "DENIED", fmt.Sprintf("User: %s is not authorized to perform: ecr:BatchGetImage on resource: arn:aws:ecr:%s:%s:repository/%s because no resource-based policy allows the ecr:BatchGetImage action", principal, region, acctID, repo))
	case repo == "multi" && ref == "v1":
		writeManifest(w, r, "application/vnd.oci.image.index.v1+json", map[string]any{
			"manifests": []any{
				map[string]any{"digest": "sha256:" + strings.Repeat("a", 64), "platform": map[string]string{"os": "linux", "architecture": "s390x"}},
				map[string]any{"digest": platformDigest, "platform": map[string]string{"os": runtime.GOOS, "architecture": runtime.GOARCH}},
			},
		})
	case repo == "multi" && ref == platformDigest:
		writeManifest(w, r, "application/vnd.oci.image.manifest.v1+json", imageManifest)
	case repo == "docker-hub/library/app" && ref == "v1":
		// Cached by the pull-through cache under prefix docker-hub.
		writeManifest(w, r, "application/vnd.oci.image.manifest.v1+json", imageManifest)
	case repo == "docker-hub/library/new":
		// Not cached yet, and the caller may not import it.
		regError(w, http.StatusForbidden, "DENIED", fmt.Sprintf("User: %s is not authorized to perform: ecr:BatchImportUpstreamImage on resource: arn:aws:ecr:%s:%s:repository/%s because no identity-based policy allows the ecr:BatchImportUpstreamImage action", principal, region, acctID, repo))
	case repo != "app":
		regError(w, http.StatusNotFound, "NAME_UNKNOWN", fmt.Sprintf("The repository with name '%s' does not exist in the registry with id '%s'", repo, acctID))
	case ref != "v1":
		regError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", "Requested image not found")
	default:
		writeManifest(w, r, "application/vnd.oci.image.manifest.v1+json", imageManifest)
	}
}

// imageManifest is a one-layer image.
var imageManifest = map[string]any{
	"config": map[string]any{"digest": configDigest, "size": 2},
	"layers": []any{map[string]any{"digest": layerDigest, "size": 10}},
}

// writeManifest serves a manifest of mediaType, if the client accepts it:
// ECR answers MANIFEST_UNKNOWN when the Accept header does not cover the
// stored manifest's type.
func writeManifest(w http.ResponseWriter, r *http.Request, mediaType string, body map[string]any) {
	if !strings.Contains(r.Header.Get("Accept"), mediaType) {
		regError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", "the Accept header does not cover "+mediaType)
		return
	}
	doc := map[string]any{"schemaVersion": 2, "mediaType": mediaType}
	for k, v := range body {
		doc[k] = v
	}
	w.Header().Set("Content-Type", mediaType)
	w.Header().Set("Docker-Content-Digest", "sha256:3333333333333333333333333333333333333333333333333333333333333333")
	json.NewEncoder(w).Encode(doc)
}

// anonToken is what ECR Public's token service hands anyone.
const anonToken = "anonymous-public-pull-token"

// servePublic is ECR Public: a Bearer challenge, a token service that
// takes AWS:<password> or nothing, and blobs on a CDN.
func (f *fakeECR) servePublic(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/token/" {
		tok := anonToken
		if user, pass, ok := r.BasicAuth(); ok {
			if user != "AWS" || f.passwords[pass] == "" {
				regError(w, http.StatusUnauthorized, "DENIED", "bad credentials")
				return
			}
			tok = "authenticated-" + pass
		}
		json.NewEncoder(w).Encode(map[string]string{"token": tok})
		return
	}
	bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || (bearer != anonToken && f.passwords[strings.TrimPrefix(bearer, "authenticated-")] == "") {
		w.Header().Set("WWW-Authenticate", `Bearer realm="https://public.ecr.aws/token/",service="public.ecr.aws",scope="aws"`)
		regError(w, http.StatusUnauthorized, "DENIED", "Not Authorized")
		return
	}
	switch {
	case r.URL.Path == "/v2/":
		w.WriteHeader(http.StatusOK)
	case r.URL.Path == "/v2/org/app/manifests/v1":
		writeManifest(w, r, "application/vnd.docker.distribution.manifest.v2+json", imageManifest)
	case strings.HasPrefix(r.URL.Path, "/v2/org/app/blobs/"):
		w.Header().Set("Location", "https://"+cdnHost+"/blob?X-Amz-Security-Token="+presignSecret)
		w.WriteHeader(http.StatusTemporaryRedirect)
	default:
		regError(w, http.StatusNotFound, "NAME_UNKNOWN", "no such repository")
	}
}

func regError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"errors": []any{map[string]string{"code": code, "message": msg}}})
}

// quiet drops the handshake errors the TLS failure tests cause on purpose.
func quiet(s *httptest.Server) { s.Config.ErrorLog = log.New(io.Discard, "", 0) }

// addr returns the fake registry's loopback address.
func (f *fakeECR) addr() string { return f.Listener.Addr().String() }

// blackhole is a loopback listener whose accept queue is full, so a new
// connection never completes: what a dropping security group looks like.
func blackhole(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	// Fill the queue until a connect stalls; from then on every SYN is dropped.
	for i := 0; i < 64; i++ {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return addr
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Fatal("could not fill the accept queue of the blackhole listener")
	return ""
}

// awsEnvNames are cleared for every test so that nothing from the machine
// running the tests (a profile, real keys) takes part.
var awsEnvNames = []string{
	"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
	"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
	"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
	"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_ECR", "AWS_ENDPOINT_URL_ECR_PUBLIC", "AWS_ENDPOINT_URL_STS",
	"AWS_EC2_METADATA_SERVICE_ENDPOINT", "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "AWS_EC2_METADATA_DISABLED", "AWS_EC2_METADATA_V1_DISABLED",
	"AWS_USE_FIPS_ENDPOINT", "AWS_USE_DUALSTACK_ENDPOINT", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy",
}

// isolateEnv clears the AWS environment and sets kv ("K=V") instead; shared
// config files point nowhere.
func isolateEnv(t *testing.T, kv ...string) {
	t.Helper()
	for _, k := range awsEnvNames {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", dir+"/config")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", dir+"/credentials")
	for _, e := range kv {
		k, v, _ := strings.Cut(e, "=")
		t.Setenv(k, v)
	}
}

// world is one test's AWS and network: the emulator, the fake registry and
// the name and address maps that lead to them.
type world struct {
	emu      *awsemu.Server
	reg      *fakeECR
	ca       *testCA
	resolver *fakeResolver
	dialer   *loopDialer
}

func newWorld(t *testing.T) *world {
	t.Helper()
	emu, err := awsemu.Start(awsemu.Options{Account: acct, Region: region})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Close)
	ca := newCA(t)
	w := &world{emu: emu, ca: ca, reg: newFakeECR(t, ca)}
	// The node role's password is what the registry accepts.
	w.reg.passwords[emu.PasswordFor(emu.InstanceARN())] = emu.InstanceARN()
	w.resolver = &fakeResolver{hosts: map[string][]string{
		regHost:   {"127.0.0.2"},
		otherHost: {"127.0.0.2"},
		s3Host:    {"127.0.0.3"},
		pubHost:   {"127.0.0.2"},
		cdnHost:   {"127.0.0.3"},
	}}
	w.dialer = &loopDialer{routes: map[string]string{
		"127.0.0.2:443": w.reg.addr(),
		"127.0.0.3:443": w.reg.addr(),
	}}
	isolateEnv(t, emu.Env()...)
	return w
}

func (w *world) options(t *testing.T, image string) Options {
	return Options{
		Image:        image,
		ProcRoot:     t.TempDir(), // no kubelet unless a test makes one
		Resolver:     w.resolver,
		Dialer:       w.dialer,
		RootCAs:      w.ca.pool,
		CheckTimeout: 3 * time.Second,
	}
}

// password is the registry password the emulator issues to the node role.
func (w *world) password() string { return w.emu.PasswordFor(w.emu.InstanceARN()) }

// render returns the report as text and as JSON, checking that no secret
// appears in either.
func render(t *testing.T, rep *Report, secrets ...string) (string, string) {
	t.Helper()
	var text, js bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	for _, s := range append(secrets, presignSecret) {
		if s == "" {
			continue
		}
		if strings.Contains(text.String(), s) || strings.Contains(js.String(), s) {
			t.Errorf("a secret (%.6s...) appears in the output:\n%s", s, text.String())
		}
	}
	return text.String(), js.String()
}

func mustCheck(t *testing.T, rep *Report, id string) Check {
	t.Helper()
	c, ok := rep.Find(id)
	if !ok {
		t.Fatalf("report has no %s check", id)
	}
	return c
}
