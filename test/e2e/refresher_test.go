package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRefresher runs the ecr-pull-secrets controller, as its binary,
// against a real API server and a kubelet without the credential provider
// flags: the pull secret it keeps is the only way the node gets the image.
// It covers the refresher issue's scenarios 1 (selected namespace pulls,
// unselected gets 401), 3 (a namespace created later is served), 5 (AWS
// denies the token: the Secret stays, an Event and a metric say why) and 4
// (two replicas: the leader is killed, the other takes over and fetches).
func TestRefresher(t *testing.T) {
	requireNode(t)
	if _, err := os.Stat(loopbackCNIPlugin); err != nil {
		t.Fatalf("%s is missing (the nodes need it to become Ready)\ninstall it with:\n  apt-get update && apt-get install -y containernetworking-plugins", loopbackCNIPlugin)
	}
	version := newestVersion(kubeletVersions())
	a := sharedArtifacts(t)
	bins := controlPlaneBinaries(t, version)
	cp := startControlPlane(t, bins, version)
	emu := startEmulator(t)

	reg := demoRegistry(t, a)

	const nodeName = "e2e-refresher-node"
	n := startNodeWith(t, a, nodeSpec{registries: map[string]string{ecrHost: reg.addr}, loopbackCNI: true})
	n.registries = []string{reg.proc.log}
	n.startKubelet(kubeletOptions{bin: bins["kubelet"], kubeconfig: cp.nodeKubeconfig(t, nodeName), nodeName: nodeName, clientCA: cp.pki.CAFile})
	cp.waitNodeReady(t, nodeName, n.kubelet)

	// Without kube-controller-manager no ServiceAccount appears by itself:
	// each namespace gets its "default" here, as the controller would.
	namespace := func(name string, selected bool) {
		labels := ""
		if selected {
			labels = "\n  labels: {ecr-pull: enabled}"
		}
		cp.mustApply(t, "/api/v1/namespaces", fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s%s\n", name, labels))
		cp.mustApply(t, "/api/v1/namespaces/"+name+"/serviceaccounts", "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: default}\n")
	}
	namespace("team", true)
	namespace("other", false)

	bin := buildRefresher(t, a.dir)
	kubeconfig := refresherKubeconfig(t, cp)
	home := t.TempDir()
	env := append(baseEnv(), pluginEnv(t, emu, home)...)
	args := []string{"--kubeconfig", kubeconfig, "--registry", ecrHost, "--namespace-selector", "ecr-pull=enabled", "--leader-elect=false"}
	ctl := startProc(t, "ecr-pull-secrets", filepath.Join(home, "ecr-pull-secrets.log"), env, append([]string{bin, "--metrics-addr", ""}, args...)...)

	waitAttached := func(ns string) {
		t.Helper()
		ok := waitFor(60*time.Second, func() bool {
			var sa struct {
				ImagePullSecrets []struct{ Name string } `json:"imagePullSecrets"`
			}
			if code, _ := cp.do("GET", "/api/v1/namespaces/"+ns+"/serviceaccounts/default", "", &sa); code != http.StatusOK {
				return false
			}
			for _, s := range sa.ImagePullSecrets {
				if s.Name == "ecr-pull-secret" {
					return true
				}
			}
			return false
		})
		if !ok {
			t.Fatalf("namespace %s: no ecr-pull-secret on ServiceAccount default within 60s\n%s", ns, ctl.logTail(40))
		}
		var sec struct {
			Type string            `json:"type"`
			Data map[string]string `json:"data"`
		}
		if code, body := cp.do("GET", "/api/v1/namespaces/"+ns+"/secrets/ecr-pull-secret", "", &sec); code != http.StatusOK || sec.Type != "kubernetes.io/dockerconfigjson" {
			t.Fatalf("namespace %s: secret: %d %s", ns, code, body)
		}
	}
	pod := func(ns, name string) {
		cp.mustApply(t, "/api/v1/namespaces/"+ns+"/pods", fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %[1]s, namespace: %[2]s}
spec:
  nodeName: %[3]s
  hostNetwork: true
  automountServiceAccountToken: false
  restartPolicy: Always
  terminationGracePeriodSeconds: 0
  tolerations: [{operator: Exists}]
  containers:
  - {name: %[1]s, image: %[4]q, imagePullPolicy: Always}
`, name, ns, nodeName, demoRef))
		t.Cleanup(func() { cp.mustDelete(t, "/api/v1/namespaces/"+ns+"/pods/"+name+"?gracePeriodSeconds=0") })
	}

	t.Run("1-selected-namespace-pulls", func(t *testing.T) {
		waitAttached("team")
		pod("team", "team-demo")
		cp.waitPod(t, "team", "team-demo", "running")
		if !waitFor(30*time.Second, func() bool { return strings.Contains(n.containerLog("team-demo"), demoGreeting) }) {
			t.Errorf("the pulled image did not run: %q", n.containerLog("team-demo"))
		}
		// The negative control: the same image in a namespace the selector
		// leaves out has no pull secret, and the registry refuses it.
		var sec struct{}
		if code, _ := cp.do("GET", "/api/v1/namespaces/other/secrets/ecr-pull-secret", "", &sec); code != http.StatusNotFound {
			t.Errorf("the unselected namespace has the pull secret (GET answered %d)", code)
		}
		pod("other", "other-demo")
		if msg := cp.waitPod(t, "other", "other-demo", "pull-failed"); !strings.Contains(msg, "401") && !strings.Contains(msg, "nauthorized") {
			t.Errorf("the unselected namespace's pull failed, but not with the registry's 401: %s", msg)
		}
	})

	t.Run("3-namespace-created-later", func(t *testing.T) {
		namespace("late", true)
		waitAttached("late")
		pod("late", "late-demo")
		cp.waitPod(t, "late", "late-demo", "running")
	})

	if st := emu.Stats().Op("ecr", "GetAuthorizationToken"); st.Status[200] == 0 {
		t.Errorf("the refresher made no successful GetAuthorizationToken: %+v", st)
	}

	t.Run("5-denied-keeps-the-secret", func(t *testing.T) {
		type secret struct {
			Metadata struct{ UID, ResourceVersion string } `json:"metadata"`
			Data     map[string]string                     `json:"data"`
		}
		var before, after secret
		if code, body := cp.do("GET", "/api/v1/namespaces/team/secrets/ecr-pull-secret", "", &before); code != http.StatusOK {
			t.Fatalf("secret: %d %s", code, body)
		}
		// A replica that starts while AWS denies the node: it has no token
		// of its own, and must leave the Secret as it is and say why.
		ctl.stop()
		emu.Deny("ecr:GetAuthorizationToken", "")
		metrics := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		denied := startProc(t, "ecr-pull-secrets-denied", filepath.Join(home, "ecr-pull-secrets-denied.log"), env,
			append([]string{bin, "--metrics-addr", metrics, "--min-retry", "1s"}, args...)...)
		var event string
		if !waitFor(60*time.Second, func() bool {
			var evs struct {
				Items []struct{ Reason, Message string } `json:"items"`
			}
			cp.do("GET", "/api/v1/namespaces/team/events?fieldSelector=involvedObject.name%3Decr-pull-secret", "", &evs)
			for _, e := range evs.Items {
				if e.Reason == "TokenRefreshFailed" {
					event = e.Message
					return true
				}
			}
			return false
		}) {
			t.Fatalf("no TokenRefreshFailed Event on team/ecr-pull-secret within 60s\n%s", denied.logTail(40))
		}
		if !strings.Contains(event, "ecr:GetAuthorizationToken") {
			t.Errorf("the Event does not name the denied permission: %s", event)
		}
		if code, body := cp.do("GET", "/api/v1/namespaces/team/secrets/ecr-pull-secret", "", &after); code != http.StatusOK {
			t.Fatalf("secret: %d %s", code, body)
		}
		if after.Metadata.UID != before.Metadata.UID || after.Data[".dockerconfigjson"] != before.Data[".dockerconfigjson"] {
			t.Errorf("the denied refresh changed the Secret (uid %s -> %s, data changed: %v)", before.Metadata.UID, after.Metadata.UID,
				after.Data[".dockerconfigjson"] != before.Data[".dockerconfigjson"])
		}
		resp, err := http.Get("http://" + metrics + "/metrics")
		if err != nil {
			t.Fatalf("metrics: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), `ecr_pull_secrets_refresh_failures_total{reason="access_denied"`) {
			t.Errorf("no refresh failure with reason access_denied in /metrics:\n%s", body)
		}
		denied.stop()
		emu.Allow("ecr:GetAuthorizationToken", "")
	})

	t.Run("4-leader-killed-other-takes-over", func(t *testing.T) {
		replicas := map[string]*proc{}
		for _, id := range []string{"replica-a", "replica-b"} {
			replicas[id] = startProc(t, "ecr-pull-secrets-"+id, filepath.Join(home, id+".log"), env,
				bin, "--kubeconfig", kubeconfig, "--registry", ecrHost, "--namespace-selector", "ecr-pull=enabled",
				"--metrics-addr", "", "--leader-elect-namespace", "kube-system", "--leader-elect-lease-name", "e2e-refresher",
				"--leader-elect-identity", id, "--leader-elect-lease-duration", "4s", "--leader-elect-renew-deadline", "2s",
				"--leader-elect-retry-period", "500ms")
		}
		holder := func() string {
			var l struct {
				Spec struct{ HolderIdentity string } `json:"spec"`
			}
			cp.do("GET", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/e2e-refresher", "", &l)
			return l.Spec.HolderIdentity
		}
		var first string
		if !waitFor(30*time.Second, func() bool { first = holder(); return replicas[first] != nil }) {
			t.Fatalf("no replica took the Lease (holder %q)", first)
		}
		before := emu.Stats().Op("ecr", "GetAuthorizationToken").Status[200]
		// SIGKILL: the leader cannot release the Lease, so the other must
		// wait it out and take over.
		if err := replicas[first].cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		var next string
		if !waitFor(30*time.Second, func() bool { next = holder(); return next != first && replicas[next] != nil }) {
			t.Fatalf("the Lease stayed with the killed %s (holder %q)", first, next)
		}
		if !waitFor(30*time.Second, func() bool { return emu.Stats().Op("ecr", "GetAuthorizationToken").Status[200] > before }) {
			t.Errorf("the new leader %s fetched no token", next)
		}
	})
}

// buildRefresher builds ecr-pull-secrets from the checkout's refresher
// module (its own module, so the plugin never links client-go).
func buildRefresher(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "ecr-pull-secrets")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/ecr-pull-secrets")
	cmd.Dir = filepath.Join("..", "..", "refresher")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building ecr-pull-secrets: %v\n%s", err, out)
	}
	return bin
}

// refresherKubeconfig is a kubeconfig of a cluster admin for the
// refresher. The chart's least-privilege RBAC is checked by the
// refresher's own tests; here the API server side is what is proven.
func refresherKubeconfig(t *testing.T, cp *controlPlane) string {
	t.Helper()
	return cp.kubeconfig(t, "refresher", "e2e-refresher", "system:masters")
}
