package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubecred/ecr-credential-provider/internal/awsemu"
)

// The registry map scenarios: pods name docker.io images, the local
// registry stands in for the ECR pull-through cache that serves them under
// the docker-hub prefix, and a listener stands in for Docker Hub.
const (
	mappedRepo   = "library/e2e-mapped"
	mappedPrefix = "docker-hub"
	mappedRef    = "docker.io/" + mappedRepo + ":" + demoTag
	missingRef   = "docker.io/library/e2e-missing:" + demoTag
	mapEntry     = "docker.io=" + ecrHost + "/" + mappedPrefix
)

func mappedPod(name, image string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: default
spec:
  hostNetwork: true
  restartPolicy: Always
  containers:
  - name: %s
    image: %s
    imagePullPolicy: IfNotPresent
`, name, name, image)
}

// hubStandIn records every request that reaches "Docker Hub" and whether
// it carried credentials. Like a registry, it asks for credentials first
// (Basic, so a client that has some sends them), then answers 404 so a
// pull through it fails.
type hubStandIn struct {
	addr string
	mu   sync.Mutex
	reqs []string // method path, and "auth" when an Authorization header came
}

func startHubStandIn(t *testing.T) *hubStandIn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &hubStandIn{addr: ln.Addr().String()}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		rec := r.Method + " " + r.URL.Path
		if r.Header.Get("Authorization") != "" {
			rec += " auth"
		}
		h.reqs = append(h.reqs, rec)
		h.mu.Unlock()
		if r.Header.Get("Authorization") == "" {
			w.Header().Set("WWW-Authenticate", `Basic realm="hub"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		http.NotFound(w, r)
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return h
}

func (h *hubStandIn) requests() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.reqs...)
}

// registryFront stands in for the internet a node reaches registries
// on: HTTPS on 127.0.0.1:443 (the port install's hosts.toml implies), with
// a certificate for every host in routes from a test CA the node's
// containerd trusts, passing each request on to the local server that
// plays that host.
func registryFront(t *testing.T, dir string, routes map[string]string) (caFile string) {
	t.Helper()
	p := newPKI(t, dir)
	var names []string
	proxies := map[string]http.Handler{}
	for host, backend := range routes {
		names = append(names, host)
		proxies[host] = httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: backend})
	}
	kp := p.issue("registry-front", &x509.Certificate{
		Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	ln, err := tls.Listen("tcp", "127.0.0.1:443", &tls.Config{Certificates: []tls.Certificate{kp.TLS}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("the registry front needs 127.0.0.1:443 (the port ECR and Docker Hub are reached on): %v", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, ok := proxies[r.Host]
		if !ok {
			http.Error(w, "no such host here: "+r.Host, http.StatusBadGateway)
			return
		}
		h.ServeHTTP(w, r)
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return p.CAFile
}

// unmappedProviderConfig is our provider for ECR and docker.io without a
// map: the kubelet asks for docker.io, and the plugin must refuse.
func unmappedProviderConfig(env []string) string {
	var b strings.Builder
	b.WriteString("apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nproviders:\n")
	b.WriteString("- name: ecr-credential-provider\n  matchImages: [\"*.dkr.ecr.*.amazonaws.com\", \"docker.io\"]\n")
	b.WriteString("  defaultCacheDuration: 12h\n  apiVersion: credentialprovider.kubelet.k8s.io/v1\n")
	b.WriteString("  env:\n")
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		fmt.Fprintf(&b, "  - name: %s\n    value: %q\n", k, v)
	}
	return b.String()
}

// TestRegistryMap proves the registry map on a real kubelet and containerd,
// on the newest kubelet only: the map is the plugin's own logic, and the
// kubelet's side (matchImages, the auth key) is the same in every minor
// TestKubelet covers.
func TestRegistryMap(t *testing.T) {
	requireNode(t)
	a := sharedArtifacts(t)
	reg := startRegistry(t, shortTempDir(t, "e2e-registry-"), registryPassword)
	img, err := newImage(a.sleeper, []string{demoGreeting})
	if err != nil {
		t.Fatal(err)
	}
	if err := img.push(reg.addr, mappedPrefix+"/"+mappedRepo, demoTag, "AWS", registryPassword); err != nil {
		t.Fatalf("pushing the mapped image: %v\n%s", err, reg.proc.logTail(20))
	}
	kubelet := kubeletBinary(t, newestVersion(kubeletVersions()))

	// Each node gets its mirror from 'install --pull-through-cache' on a
	// kubeadm node tree whose containerd config names the node's
	// config_path; containerd reaches the ECR registry and Docker Hub by
	// their real names, at the registry front.
	start := func(t *testing.T, emu *awsemu.Server, hub *hubStandIn, withMap, fallback bool, pods map[string]string) *node {
		root := kubeadmNodeTree(t)
		if err := os.MkdirAll(filepath.Join(root, "etc/containerd"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "etc/containerd/config.toml"), []byte("version = 2\n\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		env := pluginEnv(t, emu, shortTempDir(t, "e2e-plugin-"))
		args := []string{"install", "--root", root, "--binary", a.plugin, "--pull-through-cache", mapEntry}
		if fallback {
			args = append(args, "--pull-through-cache-fallback")
		}
		for _, kv := range env {
			args = append(args, "--env", kv)
		}
		out, err := exec.Command(a.plugin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("install --pull-through-cache: %v\n%s", err, out)
		}
		if got := strings.Contains(string(out), "WARNING"); got != fallback {
			t.Errorf("install warned of the fallback: %v, want %v:\n%s", got, fallback, out)
		}
		hostsToml, err := os.ReadFile(filepath.Join(root, "etc/containerd/certs.d/docker.io/hosts.toml"))
		if err != nil {
			t.Fatalf("install wrote no hosts.toml for docker.io: %v\n%s", err, out)
		}
		t.Logf("install's hosts.toml:\n%s", hostsToml)
		w := readWiring(t, root)
		ca := registryFront(t, shortTempDir(t, "e2e-front-"), map[string]string{ecrHost: reg.addr, "registry-1.docker.io": hub.addr})
		n := startNodeWith(t, a, nodeSpec{
			certsDir: filepath.Join(root, "etc/containerd/certs.d"),
			hosts:    "127.0.0.1 localhost " + ecrHost + " registry-1.docker.io\n",
			env:      []string{"SSL_CERT_FILE=" + ca},
		})
		n.registries = []string{reg.proc.log}
		o := kubeletOptions{bin: kubelet, pods: pods, pluginBinDir: filepath.Join(root, w.BinDir.Value)}
		if withMap {
			o.providerPath = filepath.Join(root, w.Config.Value)
		} else {
			o.providerConfig = unmappedProviderConfig(env)
		}
		n.startKubelet(o)
		return n
	}
	pullFailed := func(n *node, ref string) func() bool {
		return func() bool {
			return len(klogEntries(n.kubelet.logText(), "ErrImagePull", ref)) > 0 || n.kubelet.exited()
		}
	}

	t.Run("mapped-pull", func(t *testing.T) {
		emu, hub := startEmulator(t), startHubStandIn(t)
		n := start(t, emu, hub, true, false, map[string]string{"mapped": mappedPod("mapped", mappedRef)})
		ok := waitFor(90*time.Second, func() bool {
			return pullFailed(n, mappedRef)() || strings.Contains(n.containerLog("mapped"), demoGreeting)
		})
		if e := klogEntries(n.kubelet.logText(), "ErrImagePull", mappedRef); !ok || len(e) > 0 {
			t.Fatalf("the docker.io image did not run through the map (pull errors: %q)", e)
		}
		st := emu.Stats().Op(awsemu.TargetECR, "GetAuthorizationToken")
		if st.Status[200] != 1 {
			t.Errorf("GetAuthorizationToken %+v; want one call answered 200", st)
		}
		for _, r := range emu.Requests() {
			if r.Target == awsemu.TargetECR && r.Region != "us-east-1" {
				t.Errorf("GetAuthorizationToken in %s; want the mapped registry's us-east-1", r.Region)
			}
		}
		if got := hub.requests(); len(got) != 0 {
			t.Errorf("Docker Hub's stand-in saw %q; want nothing", got)
		}
		assertNoSecrets(t, n)
	})

	t.Run("no-map-no-token", func(t *testing.T) {
		// matchImages still names docker.io, so the kubelet asks; without a
		// map the plugin must not hand the node's token to Docker Hub.
		emu, hub := startEmulator(t), startHubStandIn(t)
		n := start(t, emu, hub, false, false, map[string]string{"mapped": mappedPod("mapped", mappedRef)})
		if !waitFor(90*time.Second, pullFailed(n, mappedRef)) || n.kubelet.exited() {
			t.Fatalf("no failed pull of %s reported (kubelet exited: %v)", mappedRef, n.kubelet.exited())
		}
		if e := klogEntries(n.kubelet.logText(), "ErrImagePull", mappedRef); !strings.Contains(e[0], "401 Unauthorized") {
			t.Errorf("pull failure is not the registry's 401:\n%s", clip(e[0]))
		}
		if st := emu.Stats().Op(awsemu.TargetECR, "GetAuthorizationToken"); st.Requests != 0 {
			t.Errorf("GetAuthorizationToken %+v without a map; want none", st)
		}
		if e := klogEntries(n.kubelet.logText(), "matchImages"); len(e) == 0 {
			t.Errorf("the kubelet log does not carry the plugin's refusal naming matchImages")
		}
	})

	// A pull the cache cannot serve must not fall back to Docker Hub with
	// the token; the fallback form shows the leak this test would catch.
	for _, fallback := range []bool{false, true} {
		t.Run(fmt.Sprintf("missing-image-fallback-%v", fallback), func(t *testing.T) {
			emu, hub := startEmulator(t), startHubStandIn(t)
			n := start(t, emu, hub, true, fallback, map[string]string{"missing": mappedPod("missing", missingRef)})
			if !waitFor(90*time.Second, pullFailed(n, missingRef)) || n.kubelet.exited() {
				t.Fatalf("no failed pull of %s reported (kubelet exited: %v)", missingRef, n.kubelet.exited())
			}
			var withAuth []string
			for _, r := range hub.requests() {
				if strings.HasSuffix(r, " auth") {
					withAuth = append(withAuth, r)
				}
			}
			switch {
			case !fallback && len(hub.requests()) != 0:
				t.Errorf("Docker Hub's stand-in saw %q without a fallback configured", hub.requests())
			case fallback && len(withAuth) == 0:
				t.Errorf("with a fallback the stand-in saw %q, none with credentials: this test could not catch a leak", hub.requests())
			}
		})
	}
}
