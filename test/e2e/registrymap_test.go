package e2e

import (
	"fmt"
	"net"
	"net/http"
	"os"
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

// mapHostsToml is what the README tells operators to write for a pull-through
// cache: the ECR registry as both server and host, so that containerd has
// no fallback to Docker Hub. With fallback, Docker Hub is the server.
func mapHostsToml(ecr, hub string, fallback bool) string {
	server := ecr
	if fallback {
		server = hub
	}
	return fmt.Sprintf(`server = %q
override_path = %v

[host.%q]
  capabilities = ["pull", "resolve"]
  override_path = true
`, server, !fallback, ecr)
}

// mapProviderConfig is our provider for ECR and docker.io, with the map in
// its args when withMap is set.
func mapProviderConfig(env []string, withMap bool) string {
	var b strings.Builder
	b.WriteString("apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nproviders:\n")
	b.WriteString("- name: ecr-credential-provider\n  matchImages: [\"*.dkr.ecr.*.amazonaws.com\", \"docker.io\"]\n")
	b.WriteString("  defaultCacheDuration: 12h\n  apiVersion: credentialprovider.kubelet.k8s.io/v1\n")
	if withMap {
		fmt.Fprintf(&b, "  args: [%q]\n", "--registry-map="+mapEntry)
	}
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
	binDir := pluginBinDir(t, a)
	kubelet := kubeletBinary(t, newestVersion(kubeletVersions()))
	ecrURL := "http://" + reg.addr + "/v2/" + mappedPrefix

	start := func(t *testing.T, emu *awsemu.Server, hub *hubStandIn, withMap, fallback bool, pods map[string]string) *node {
		n := startNode(t, a, ecrHost, reg.addr)
		n.registries = []string{reg.proc.log}
		if err := os.MkdirAll(filepath.Join(n.dir, "certs.d", "docker.io"), 0o755); err != nil {
			t.Fatal(err)
		}
		n.write(filepath.Join("certs.d", "docker.io", "hosts.toml"), mapHostsToml(ecrURL, "http://"+hub.addr, fallback))
		n.startKubelet(kubeletOptions{bin: kubelet, pods: pods, pluginBinDir: binDir,
			providerConfig: mapProviderConfig(pluginEnv(t, emu, n.dir), withMap)})
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
