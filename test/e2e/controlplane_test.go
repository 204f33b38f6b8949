package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// controlPlane is etcd and kube-apiserver as child processes on free
// loopback ports, with certificates the harness made. Nodes join it with
// a client certificate of their own. Its service account issuer is the
// API server's own https URL, so an OIDC consumer (the AWS emulator's
// STS) can fetch the discovery document and the JWKS from it.
type controlPlane struct {
	t       *testing.T
	dir     string
	pki     *pki
	url     string // https://127.0.0.1:PORT, also the service account issuer
	admin   *http.Client
	procs   []*proc
	version string
	saKey   string // the service account signing key
}

// startControlPlane starts etcd and the API server of the binaries in
// bins and waits until the API server is ready. Everything stops in
// parallel when the test ends.
func startControlPlane(t *testing.T, bins map[string]string, version string) *controlPlane {
	t.Helper()
	cp := &controlPlane{t: t, dir: shortTempDir(t, "e2e-cp-"), version: version}
	cp.pki = newPKI(t, cp.dir)
	// The API server holds its port a few seconds after it stops: fresh
	// ports each time, never fixed ones.
	etcdPort, peerPort, apiPort := freePort(t), freePort(t), freePort(t)
	cp.url = fmt.Sprintf("https://127.0.0.1:%d", apiPort)

	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	etcd := startProc(t, "etcd", filepath.Join(cp.dir, "etcd.log"), nil, bins["etcd"],
		"--name", "e2e",
		"--data-dir", filepath.Join(cp.dir, "etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "e2e="+peerURL,
		"--log-level", "warn")
	cp.procs = append(cp.procs, etcd)
	if !waitFor(60*time.Second, func() bool {
		resp, err := http.Get(etcdURL + "/health")
		if err != nil {
			return etcd.exited()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}) || etcd.exited() {
		t.Fatalf("etcd did not become healthy:\n%s", etcd.logTail(30))
	}

	serving := cp.pki.serving("apiserver", net.ParseIP("127.0.0.1"), net.ParseIP("10.0.0.1"))
	kubeletClient := cp.pki.client("apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters")
	admin := cp.pki.client("admin", "e2e-admin", "system:masters")
	saKey, saPub := cp.pki.serviceAccountKey()
	cp.saKey = saKey
	apiserver := startProc(t, "kube-apiserver", filepath.Join(cp.dir, "kube-apiserver.log"), nil, bins["kube-apiserver"],
		"--etcd-servers", etcdURL,
		"--bind-address", "127.0.0.1",
		"--advertise-address", "127.0.0.1",
		// A loopback advertise address is refused by the default
		// endpoint reconciler; nothing here needs the kubernetes Service.
		"--endpoint-reconciler-type", "none",
		"--secure-port", fmt.Sprint(apiPort),
		"--cert-dir", filepath.Join(cp.dir, "apiserver-certs"),
		"--tls-cert-file", serving.CertFile, "--tls-private-key-file", serving.KeyFile,
		"--client-ca-file", cp.pki.CAFile,
		"--service-account-issuer", cp.url,
		"--service-account-jwks-uri", cp.url+"/openid/v1/jwks",
		"--service-account-key-file", saPub,
		"--service-account-signing-key-file", saKey,
		"--service-cluster-ip-range", "10.0.0.0/24",
		"--authorization-mode", "Node,RBAC",
		"--enable-admission-plugins", "NodeRestriction",
		"--kubelet-client-certificate", kubeletClient.CertFile, "--kubelet-client-key", kubeletClient.KeyFile,
		"--allow-privileged=true",
		"--profiling=false",
		"--v", "1")
	cp.procs = append(cp.procs, apiserver)
	// Cleanups run last-registered first: this one, after the processes'
	// own, stops them all at once before their one-by-one stops run.
	t.Cleanup(cp.stop)
	cp.admin = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: cp.pki.tlsClient(admin), Proxy: nil}}
	if !waitFor(120*time.Second, func() bool {
		code, _ := cp.do("GET", "/readyz", "", nil)
		return code == http.StatusOK || apiserver.exited()
	}) || apiserver.exited() {
		t.Fatalf("kube-apiserver did not become ready:\n%s", apiserver.logTail(40))
	}
	// An IAM OIDC provider fetches discovery and keys anonymously, so a
	// cluster that serves its own issuer lets unauthenticated callers
	// read them: the same binding here, rather than a client certificate
	// no real IAM would present.
	cp.mustApply(t, "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: e2e-service-account-issuer-discovery-public}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: system:service-account-issuer-discovery}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: Group, name: system:unauthenticated}
`)
	return cp
}

// startControllers starts kube-controller-manager and kube-scheduler of
// bins as the cluster admin: DaemonSets, Jobs, the garbage collector,
// ServiceAccounts and the kube-root-ca.crt ConfigMap that pods mounting a
// service account token need, and scheduling.
func (cp *controlPlane) startControllers(t *testing.T, bins map[string]string) {
	t.Helper()
	admin := cp.kubeconfig(t, "controllers", "e2e-controllers", "system:masters")
	kcm := startProc(t, "kube-controller-manager", filepath.Join(cp.dir, "kube-controller-manager.log"), nil, bins["kube-controller-manager"],
		"--kubeconfig", admin,
		"--authentication-kubeconfig", admin, "--authorization-kubeconfig", admin,
		"--leader-elect=false",
		"--bind-address", "127.0.0.1", "--secure-port", "0",
		"--service-account-private-key-file", cp.saKey,
		"--root-ca-file", cp.pki.CAFile,
		"--use-service-account-credentials=false",
		// The DaemonSet controller's decisions, for a failing rollout test.
		"--vmodule", "daemon_controller=4,update=4",
		"--v", "1")
	sched := startProc(t, "kube-scheduler", filepath.Join(cp.dir, "kube-scheduler.log"), nil, bins["kube-scheduler"],
		"--kubeconfig", admin,
		"--authentication-kubeconfig", admin, "--authorization-kubeconfig", admin,
		"--leader-elect=false",
		"--bind-address", "127.0.0.1", "--secure-port", "0",
		"--v", "1")
	cp.procs = append(cp.procs, kcm, sched)
	// The ServiceAccount controller makes "default" in each namespace: its
	// arrival says the controllers are working.
	if !waitFor(60*time.Second, func() bool {
		code, _ := cp.do("GET", "/api/v1/namespaces/default/serviceaccounts/default", "", nil)
		return code == http.StatusOK || kcm.exited() || sched.exited()
	}) || kcm.exited() || sched.exited() {
		t.Fatalf("the controllers did not start:\n%s\n%s", kcm.logTail(30), sched.logTail(30))
	}
}

// stop ends every process of the control plane at once: one after
// another, each waiting out its grace period, took several times longer.
func (cp *controlPlane) stop() {
	if cp.t.Failed() {
		for _, p := range cp.procs {
			cp.t.Logf("---- %s log (tail) ----\n%s", p.name, clip(p.logTail(20)))
		}
	}
	var wg sync.WaitGroup
	for _, p := range cp.procs {
		wg.Add(1)
		go func() { defer wg.Done(); p.stop() }()
	}
	wg.Wait()
}

// do sends a request as the cluster admin; a body is YAML, which the API
// server accepts as readily as JSON. It decodes a JSON answer into out.
func (cp *controlPlane) do(method, path, body string, out any) (int, string) {
	return cp.send(cp.admin, "", method, path, "application/yaml", body, out)
}

// doAs sends a request with a bearer token, as a pod's service account
// would; a body is of contentType (a PATCH names its kind of patch).
func (cp *controlPlane) doAs(token, method, path, contentType, body string) (int, string) {
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: cp.pki.tlsClient(), Proxy: nil}}
	defer c.CloseIdleConnections()
	return cp.send(c, token, method, path, contentType, body, nil)
}

func (cp *controlPlane) send(c *http.Client, token, method, path, contentType, body string, out any) (int, string) {
	req, err := http.NewRequest(method, cp.url+path, strings.NewReader(body))
	if err != nil {
		return 0, err.Error()
	}
	if body != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			return 0, fmt.Sprintf("decoding the answer to %s %s: %v", method, path, err)
		}
	}
	return resp.StatusCode, string(b)
}

// mustApply creates the object in manifest at the collection path.
func (cp *controlPlane) mustApply(t *testing.T, collection, manifest string) {
	t.Helper()
	if code, body := cp.do("POST", collection, manifest, nil); code != http.StatusCreated {
		t.Fatalf("creating in %s: %d %s", collection, code, body)
	}
}

// mustDelete deletes the object at path; one that is already gone is fine.
func (cp *controlPlane) mustDelete(t *testing.T, path string) {
	t.Helper()
	if code, body := cp.do("DELETE", path, "", nil); code != http.StatusOK && code != http.StatusNotFound {
		t.Fatalf("deleting %s: %d %s", path, code, body)
	}
}

// nodeKubeconfig writes a kubeconfig for node name, with the client
// certificate the Node authorizer and NodeRestriction know it by.
func (cp *controlPlane) nodeKubeconfig(t *testing.T, name string) string {
	return cp.kubeconfig(t, name, "system:node:"+name, "system:nodes")
}

// kubeconfig writes a kubeconfig for a client certificate of user in
// groups, named name, and returns its path.
func (cp *controlPlane) kubeconfig(t *testing.T, name, user string, groups ...string) string {
	kp := cp.pki.client("client-"+name, user, groups...)
	return cp.writeKubeconfig(t, name, fmt.Sprintf("{client-certificate: %q, client-key: %q}", kp.CertFile, kp.KeyFile))
}

// writeKubeconfig writes a kubeconfig named name whose user has the given
// credentials (a YAML flow mapping) and returns its path.
func (cp *controlPlane) writeKubeconfig(t *testing.T, name, credentials string) string {
	path := filepath.Join(cp.dir, "kubeconfig-"+name)
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster: {server: %q, certificate-authority: %q}
users:
- name: %[3]s
  user: %[4]s
contexts:
- name: e2e
  context: {cluster: e2e, user: %[3]s}
current-context: e2e
`, cp.url, cp.pki.CAFile, name, credentials)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// waitNodeReady waits until node name has registered and reports Ready.
func (cp *controlPlane) waitNodeReady(t *testing.T, name string, kubelet *proc) {
	t.Helper()
	var last string
	ok := waitFor(90*time.Second, func() bool {
		var n struct {
			Status struct {
				Conditions []struct{ Type, Status, Message string }
			}
		}
		if code, _ := cp.do("GET", "/api/v1/nodes/"+name, "", &n); code != http.StatusOK {
			last = fmt.Sprintf("node not registered (GET answered %d)", code)
			return kubelet.exited()
		}
		for _, c := range n.Status.Conditions {
			if c.Type == "Ready" {
				last = fmt.Sprintf("Ready=%s: %s", c.Status, c.Message)
				return c.Status == "True"
			}
		}
		return kubelet.exited()
	})
	if !ok || kubelet.exited() {
		t.Fatalf("node %s not Ready (kubelet exited: %v): %s", name, kubelet.exited(), last)
	}
}

// podState is what the harness reads of a pod's one container.
type podState struct {
	Status struct {
		ContainerStatuses []struct {
			State struct {
				Running *struct{}
				Waiting *struct{ Reason, Message string }
			}
		}
	}
}

// waitPod waits until the pod's container runs (want "running") or its
// image pull has failed (want "pull-failed"), and returns the waiting
// message of a failed pull. A different outcome fails the test with the
// pod's state.
func (cp *controlPlane) waitPod(t *testing.T, ns, name, want string) string {
	t.Helper()
	var got, msg string
	waitFor(120*time.Second, func() bool {
		var p podState
		if code, _ := cp.do("GET", "/api/v1/namespaces/"+ns+"/pods/"+name, "", &p); code != http.StatusOK {
			return false
		}
		for _, c := range p.Status.ContainerStatuses {
			switch {
			case c.State.Running != nil:
				got = "running"
			case c.State.Waiting != nil && (c.State.Waiting.Reason == "ErrImagePull" || c.State.Waiting.Reason == "ImagePullBackOff"):
				got, msg = "pull-failed", c.State.Waiting.Message
			case c.State.Waiting != nil:
				got, msg = "waiting", c.State.Waiting.Reason+": "+c.State.Waiting.Message
			}
		}
		return got == "running" || got == "pull-failed"
	})
	if got != want {
		t.Fatalf("pod %s/%s: %s %s; want %s", ns, name, got, msg, want)
	}
	return msg
}

// fetch GETs an anonymous URL of the API server with the cluster CA, as
// an outside OIDC consumer would.
func (cp *controlPlane) fetchAnonymous(path string) (int, []byte, error) {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cp.pki.tlsClient(), Proxy: nil}}
	resp, err := c.Get(cp.url + path)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.Bytes(), err
}
