package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/kubecred/ecr-credential-provider/internal/awsemu"
)

// rotHost is the registry of the rotation scenario: its own host, served
// by its own local registry, whose one accepted password the test moves
// along with the emulator's rotating tokens.
const rotHost = "333333333333.dkr.ecr.us-east-1.amazonaws.com"

// TestRefresher runs the ecr-pull-secrets controller, as its binary,
// against a real API server and a kubelet without the credential provider
// flags: the pull secret it keeps is the only way the node gets the image.
// Every refresher runs as the chart's ServiceAccount, bound by the chart's
// own RBAC, so the least-privilege rules are proven enough. It covers the
// refresher issue's scenarios 1 (selected namespace pulls, unselected gets
// 401), 3 (a namespace created later is served), 5 (AWS denies the token:
// the Secret stays, an Event and a metric say why), 4 (two replicas: the
// leader is killed, the other takes over and fetches) and 2 (the token's
// password rotates: the Secret is updated in place and a new pod pulls
// with the new password; without the chart's update on secrets, the
// refresher reports the failure and the Secret stays).
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
	// The rotation scenario's registry starts with a password no token
	// carries; the test hands it the rotated one.
	rotReg := startRegistry(t, shortTempDir(t, "e2e-registry-"), "e2e-rotation-setup")
	img, err := newImage(a.sleeper, []string{demoGreeting})
	if err != nil {
		t.Fatal(err)
	}
	if err := img.push(rotReg.addr, demoRepo, demoTag, "AWS", "e2e-rotation-setup"); err != nil {
		t.Fatalf("pushing the rotation image: %v\n%s", err, rotReg.proc.logTail(20))
	}

	const nodeName = "e2e-refresher-node"
	n := startNodeWith(t, a, nodeSpec{registries: map[string]string{ecrHost: reg.addr, rotHost: rotReg.addr}, loopbackCNI: true})
	n.registries = []string{reg.proc.log, rotReg.proc.log}
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
	rbac := applyChartRBAC(t, cp)
	kubeconfig := rbac.kubeconfig
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
	pod := func(ns, name, image string) {
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
`, name, ns, nodeName, image))
		t.Cleanup(func() { cp.mustDelete(t, "/api/v1/namespaces/"+ns+"/pods/"+name+"?gracePeriodSeconds=0") })
	}

	t.Run("1-selected-namespace-pulls", func(t *testing.T) {
		waitAttached("team")
		pod("team", "team-demo", demoRef)
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
		pod("other", "other-demo", demoRef)
		if msg := cp.waitPod(t, "other", "other-demo", "pull-failed"); !strings.Contains(msg, "401") && !strings.Contains(msg, "nauthorized") {
			t.Errorf("the unselected namespace's pull failed, but not with the registry's 401: %s", msg)
		}
	})

	t.Run("3-namespace-created-later", func(t *testing.T) {
		namespace("late", true)
		waitAttached("late")
		pod("late", "late-demo", demoRef)
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
				"--metrics-addr", "", "--leader-elect-namespace", rbac.namespace, "--leader-elect-lease-name", rbac.lease,
				"--leader-elect-identity", id, "--leader-elect-lease-duration", "4s", "--leader-elect-renew-deadline", "2s",
				"--leader-elect-retry-period", "500ms")
		}
		holder := func() string {
			var l struct {
				Spec struct{ HolderIdentity string } `json:"spec"`
			}
			cp.do("GET", "/apis/coordination.k8s.io/v1/namespaces/"+rbac.namespace+"/leases/"+rbac.lease, "", &l)
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
		// The replicas stop with this subtest: the rotation scenario needs
		// the namespaces to itself.
	})

	t.Run("2-rotation-updates-in-place", func(t *testing.T) {
		// It needs the namespaces to itself: the first refresher would
		// take the Secret out of a namespace its selector leaves out (it
		// has stopped already unless this subtest runs alone).
		ctl.stop()
		// Its own emulator: a token lives a minute (the refresher fetches
		// the next after half of it) and each carries a new password.
		rotEmu, err := awsemu.Start(awsemu.Options{RotatePasswords: true, TokenTTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		defer rotEmu.Close()
		principal, region := rotEmu.InstanceARN(), "us-east-1"
		issued := func(pw string) int { // which token carried pw, 0 if none
			for i := rotEmu.TokensIssued(principal, region); i > 0; i-- {
				if rotEmu.TokenPassword(principal, region, i) == pw {
					return i
				}
			}
			return 0
		}
		rotHome := t.TempDir()
		namespace("rotate", false) // chosen by name, not by the label
		rot := startProc(t, "ecr-pull-secrets-rotating", filepath.Join(rotHome, "ecr-pull-secrets.log"),
			append(baseEnv(), pluginEnv(t, rotEmu, rotHome)...),
			bin, "--kubeconfig", kubeconfig, "--registry", rotHost, "--namespaces", "rotate", "--leader-elect=false", "--metrics-addr", "")
		read := func() pullSecret {
			t.Helper()
			var s pullSecret
			if code, body := cp.do("GET", "/api/v1/namespaces/rotate/secrets/ecr-pull-secret", "", &s); code != http.StatusOK {
				t.Fatalf("secret: %d %s\n%s", code, body, rot.logTail(30))
			}
			return s
		}
		waitAttached("rotate")
		first := read()
		firstPW := first.password(t, rotHost)
		n1 := issued(firstPW)
		if n1 == 0 {
			t.Fatalf("the Secret's password is no token's the emulator issued")
		}

		// Half the token's life later the refresher fetches the next.
		var second pullSecret
		if !waitFor(75*time.Second, func() bool {
			second = read()
			return second.Data[".dockerconfigjson"] != first.Data[".dockerconfigjson"]
		}) {
			t.Fatalf("the Secret did not change within 75s of a 60s token\n%s", rot.logTail(30))
		}
		secondPW := second.password(t, rotHost)
		if n2 := issued(secondPW); n2 <= n1 {
			t.Fatalf("the new Secret's password is token %d's, not a newer token's than %d", n2, n1)
		}
		if second.Metadata.UID != first.Metadata.UID {
			t.Errorf("the Secret was replaced, not updated in place: uid %s -> %s", first.Metadata.UID, second.Metadata.UID)
		}

		// The registry now takes the new password only, so a pull proves
		// the kubelet read the updated Secret. The next rotation is half a
		// minute away: time enough for one pull.
		rotReg.setPassword(t, secondPW)
		if registryAccepts(t, rotReg.addr, firstPW) || !registryAccepts(t, rotReg.addr, secondPW) {
			t.Fatalf("the registry does not take exactly the new password")
		}
		pod("rotate", "rotate-demo", rotHost+"/"+demoRepo+":"+demoTag)
		cp.waitPod(t, "rotate", "rotate-demo", "running")

		// Negative control: the chart's RBAC minus update on the Secret.
		// The next rotation cannot be written; the refresher says so and
		// the Secret stays as it was.
		rbac.withoutSecretUpdate(t, cp, func() {
			before := rotEmu.TokensIssued(principal, region)
			var event string
			if !waitFor(75*time.Second, func() bool {
				var evs struct {
					Items []struct{ Message string } `json:"items"`
				}
				cp.do("GET", "/api/v1/events?fieldSelector=involvedObject.kind%3DNamespace,involvedObject.name%3Drotate,reason%3DPullSecretSyncFailed", "", &evs)
				for _, e := range evs.Items {
					if strings.Contains(e.Message, "forbidden") {
						event = e.Message
					}
				}
				return event != ""
			}) {
				t.Fatalf("no PullSecretSyncFailed Event saying forbidden on namespace rotate within 75s without update on secrets\n%s", rot.logTail(30))
			}
			if !strings.Contains(event, "update") || !strings.Contains(event, "secrets") {
				t.Errorf("the Event does not say the update was forbidden: %s", event)
			}
			if rotEmu.TokensIssued(principal, region) <= before {
				t.Errorf("the failure came without a new token to write")
			}
			if now := read(); now.Data[".dockerconfigjson"] != second.Data[".dockerconfigjson"] || now.Metadata.UID != second.Metadata.UID {
				t.Errorf("without update on secrets the Secret changed anyway")
			}
		})
		// With the rule back the refresher catches up to a newer token: the
		// missing permission was what stopped it.
		if !waitFor(75*time.Second, func() bool { return issued(read().password(t, rotHost)) > issued(secondPW) }) {
			t.Errorf("with the chart's RBAC restored the Secret did not get a newer token within 75s\n%s", rot.logTail(30))
		}
	})
}

// pullSecret is what the test reads of a pull Secret.
type pullSecret struct {
	Metadata struct{ UID string } `json:"metadata"`
	Data     map[string]string    `json:"data"`
}

// password is the password the Secret holds for host, read from "auth"
// as the kubelet reads it.
func (s pullSecret) password(t *testing.T, host string) string {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(s.Data[".dockerconfigjson"])
	if err != nil {
		t.Fatalf("the Secret's .dockerconfigjson is not base64: %v", err)
	}
	var cfg struct {
		Auths map[string]struct{ Auth string } `json:"auths"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatalf("the Secret's .dockerconfigjson is not a docker config: %v", err)
	}
	auth, err := base64.StdEncoding.DecodeString(cfg.Auths[host].Auth)
	user, pw, ok := strings.Cut(string(auth), ":")
	if err != nil || !ok || user != "AWS" || pw == "" {
		t.Fatalf("the Secret has no AWS credential for %s", host)
	}
	return pw
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

// chartRBAC is the chart's identity for the refresher, as applied to the
// API server.
type chartRBAC struct {
	namespace, serviceAccount, clusterRole, lease string
	kubeconfig                                    string // a token of the ServiceAccount
}

// applyChartRBAC renders the chart with Helm's engine (the refresher
// module's render-manifests, which writes the plain manifests) and creates
// every object of it but the Deployment: the refresher runs here as a
// process on the host. It returns a kubeconfig with a token of the chart's
// ServiceAccount, so the refresher has exactly the chart's permissions.
func applyChartRBAC(t *testing.T, cp *controlPlane) chartRBAC {
	t.Helper()
	out := filepath.Join(t.TempDir(), "ecr-pull-secrets.yaml")
	cmd := exec.Command("go", "run", "./cmd/render-manifests", "-chart", "../deploy/charts/ecr-pull-secrets", "-out", out)
	cmd.Dir = filepath.Join("..", "..", "refresher")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rendering the chart: %v\n%s", err, b)
	}
	rendered, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var r chartRBAC
	kinds := map[string]int{}
	for _, doc := range strings.Split(string(rendered), "\n---\n") {
		j, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			t.Fatalf("the rendered chart is not YAML: %v\n%s", err, doc)
		}
		var obj struct {
			Kind     string
			Metadata struct{ Name, Namespace string }
		}
		if err := json.Unmarshal(j, &obj); err != nil || obj.Kind == "" {
			continue // the header comment
		}
		var collection string
		switch rbacAPI, ns := "/apis/rbac.authorization.k8s.io/v1", obj.Metadata.Namespace; obj.Kind {
		case "Deployment":
			continue
		case "Namespace":
			collection = "/api/v1/namespaces"
		case "ServiceAccount":
			collection = "/api/v1/namespaces/" + ns + "/serviceaccounts"
			r.namespace, r.serviceAccount = ns, obj.Metadata.Name
		case "ClusterRole":
			collection = rbacAPI + "/clusterroles"
			r.clusterRole = obj.Metadata.Name
		case "ClusterRoleBinding":
			collection = rbacAPI + "/clusterrolebindings"
		case "Role":
			collection = rbacAPI + "/namespaces/" + ns + "/roles"
			var role struct {
				Rules []struct{ ResourceNames []string }
			}
			json.Unmarshal(j, &role)
			for _, rule := range role.Rules {
				if len(rule.ResourceNames) == 1 {
					r.lease = rule.ResourceNames[0]
				}
			}
		case "RoleBinding":
			collection = rbacAPI + "/namespaces/" + ns + "/rolebindings"
		default:
			t.Fatalf("the chart renders a %s the test does not know how to apply: teach applyChartRBAC", obj.Kind)
		}
		kinds[obj.Kind]++
		if code, body := cp.do("POST", collection, string(j), nil); code != http.StatusCreated {
			t.Fatalf("creating the chart's %s %s: %d %s", obj.Kind, obj.Metadata.Name, code, body)
		}
	}
	for _, k := range []string{"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"} {
		if kinds[k] != 1 {
			t.Fatalf("the chart rendered %d %s objects, want 1 (rendered: %v)", kinds[k], k, kinds)
		}
	}
	if r.lease == "" {
		t.Fatal("the chart's Role names no Lease")
	}

	var tr struct {
		Status struct{ Token string } `json:"status"`
	}
	if code, body := cp.do("POST", "/api/v1/namespaces/"+r.namespace+"/serviceaccounts/"+r.serviceAccount+"/token",
		`{"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","spec":{"expirationSeconds":7200}}`, &tr); code != http.StatusCreated || tr.Status.Token == "" {
		t.Fatalf("requesting a token of %s/%s: %d %s", r.namespace, r.serviceAccount, code, body)
	}
	r.kubeconfig = cp.writeKubeconfig(t, "refresher", fmt.Sprintf("{token: %q}", tr.Status.Token))
	return r
}

// withoutSecretUpdate runs f while the chart's ClusterRole lacks update on
// Secrets, and puts the rule back after.
func (r chartRBAC) withoutSecretUpdate(t *testing.T, cp *controlPlane, f func()) {
	t.Helper()
	path := "/apis/rbac.authorization.k8s.io/v1/clusterroles/" + r.clusterRole
	var orig map[string]any
	if code, body := cp.do("GET", path, "", &orig); code != http.StatusOK {
		t.Fatalf("reading the ClusterRole: %d %s", code, body)
	}
	put := func(role map[string]any) {
		t.Helper()
		b, _ := json.Marshal(role)
		if code, body := cp.do("PUT", path, string(b), nil); code != http.StatusOK {
			t.Fatalf("updating the ClusterRole: %d %s", code, body)
		}
	}
	var cut map[string]any
	b, _ := json.Marshal(orig)
	json.Unmarshal(b, &cut)
	removed := false
	for _, rule := range cut["rules"].([]any) {
		rule := rule.(map[string]any)
		if fmt.Sprint(rule["resources"]) != "[secrets]" {
			continue
		}
		var verbs []any
		for _, v := range rule["verbs"].([]any) {
			if v == "update" {
				removed = true
				continue
			}
			verbs = append(verbs, v)
		}
		rule["verbs"] = verbs
	}
	if !removed {
		t.Fatalf("the chart's ClusterRole grants no update on secrets: %v", orig["rules"])
	}
	put(cut)
	defer func() {
		var now map[string]any
		cp.do("GET", path, "", &now)
		orig["metadata"].(map[string]any)["resourceVersion"] = now["metadata"].(map[string]any)["resourceVersion"]
		put(orig)
	}()
	f()
}
