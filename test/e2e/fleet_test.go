package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubecred/ecr-credential-provider/fleet/systemdtest"
	"github.com/kubecred/ecr-credential-provider/internal/kubeletwiring"
	"github.com/kubecred/ecr-credential-provider/internal/nodesetup"
	"sigs.k8s.io/yaml"
)

// fleetHostRoot is where each fleet node's host root sits inside its
// namespace: /var/lib is the node's own there, so one chart value mounts
// a different node tree on each node, as "/" would on real machines.
const fleetHostRoot = "/var/lib/e2e-host"

// fleetNode is one node of the fleet test: its own containerd and
// kubelet, registered to the control plane, a host root populated like a
// real node of one distribution, and a stand-in for that node's systemd on
// the host root's /run/systemd/private. Asked to restart the kubelet's
// unit, it restarts the kubelet with the provider flags the node's files
// now give it, read with the wiring model install uses, as systemd (and
// k3s) would.
type fleetNode struct {
	t    *testing.T
	name string
	kind kubeletwiring.Kind
	unit string
	n    *node
	root string // the host root, as the harness sees it
	base kubeletOptions
	sd   *systemdtest.Server

	mu       sync.Mutex
	restarts int
	flags    []string // the provider flags of the running kubelet
}

func startFleetNode(t *testing.T, a artifacts, cp *controlPlane, reg *registry, kubelet, name, fixture string, kind kubeletwiring.Kind, unit string) *fleetNode {
	t.Helper()
	n := startNodeWith(t, a, nodeSpec{registries: map[string]string{ecrHost: reg.addr}, loopbackCNI: true})
	n.registries = []string{reg.proc.log}
	f := &fleetNode{t: t, name: name, kind: kind, unit: unit, n: n, root: filepath.Join(n.dir, "ns", fleetHostRoot)}
	copyNodeFixture(t, fixture, f.root)
	if err := os.MkdirAll(filepath.Join(f.root, "run/systemd"), 0o755); err != nil {
		t.Fatal(err)
	}
	f.base = kubeletOptions{bin: kubelet, kubeconfig: cp.nodeKubeconfig(t, name), nodeName: name, clientCA: cp.pki.CAFile}
	f.startKubelet()
	sd, err := systemdtest.Start(filepath.Join(f.root, "run/systemd/private"), f.systemd)
	if err != nil {
		t.Fatalf("%s: systemd stand-in: %v", name, err)
	}
	t.Cleanup(sd.Close)
	f.sd = sd
	cp.waitNodeReady(t, name, n.kubelet)
	return f
}

// startKubelet starts the kubelet with what the node's files give it.
func (f *fleetNode) startKubelet() {
	o := f.base
	w, err := kubeletwiring.Read(kubeletwiring.DirFS(f.root), f.kind)
	if err != nil {
		f.t.Errorf("%s: reading the kubelet's wiring: %v", f.name, err)
		return
	}
	f.flags = nil
	if w.Config.Value != "" && w.BinDir.Value != "" {
		o.pluginBinDir = filepath.Join(f.root, w.BinDir.Value)
		o.providerPath = filepath.Join(f.root, w.Config.Value)
		f.flags = []string{"--image-credential-provider-config=" + w.Config.Value, "--image-credential-provider-bin-dir=" + w.BinDir.Value}
	}
	f.n.startKubelet(o)
}

// systemd does what the node's systemd would for the installer.
func (f *fleetNode) systemd(method, unit string) error {
	if method == "Reload" {
		return nil
	}
	if unit != f.unit {
		return fmt.Errorf("unit %s not found", unit)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n.kubelet.stop()
	f.restarts++
	f.startKubelet()
	return nil
}

func (f *fleetNode) state() (restarts int, flags []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.restarts, slices.Clone(f.flags)
}

// tree is every file below the host root but the systemd socket: path ->
// mode and content hash (a symlink's target).
func (f *fleetNode) tree() map[string]string {
	f.t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(f.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(f.root, p)
		if rel == "run" {
			return filepath.SkipDir
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		v := fi.Mode().String()
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			v += " -> " + target
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			v += " " + hex.EncodeToString(sum[:8])
		}
		out["/"+rel] = v
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return out
}

func treeChanges(before, after map[string]string) []string {
	var out []string
	for p, v := range before {
		if w, ok := after[p]; !ok {
			out = append(out, "removed "+p)
		} else if w != v {
			out = append(out, fmt.Sprintf("changed %s: %s -> %s", p, v, w))
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			out = append(out, "added "+p)
		}
	}
	slices.Sort(out)
	return out
}

// copyNodeFixture copies one of the installer's fixture nodes (and its
// symlinks) to root.
func copyNodeFixture(t *testing.T, fixture, root string) {
	t.Helper()
	src := "../../internal/nodesetup/testdata/fixtures/" + fixture
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", src+"/.", root+"/").CombinedOutput(); err != nil {
		t.Fatalf("copying %s: %v\n%s", src, err, out)
	}
	if b, err := os.ReadFile(src + ".symlinks"); err == nil {
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			link, target, _ := strings.Cut(line, " ")
			if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// nodeAnnotations reads the installer's annotations of a node.
func nodeAnnotations(t *testing.T, cp *controlPlane, name string) map[string]string {
	t.Helper()
	var n struct {
		Metadata struct{ Annotations map[string]string }
	}
	if code, body := cp.do("GET", "/api/v1/nodes/"+name, "", &n); code != http.StatusOK {
		t.Fatalf("GET node %s: %d %s", name, code, body)
	}
	out := map[string]string{}
	for k, v := range n.Metadata.Annotations {
		if k, ok := strings.CutPrefix(k, "ecr-credential-provider.kubecred.io/installer-"); ok {
			out[k] = v
		}
	}
	return out
}

// nodeReady reports whether the node's Ready condition is True.
func nodeReady(cp *controlPlane, name string) bool {
	var n struct {
		Status struct {
			Conditions []struct{ Type, Status string }
		}
	}
	if code, _ := cp.do("GET", "/api/v1/nodes/"+name, "", &n); code != http.StatusOK {
		return false
	}
	for _, c := range n.Status.Conditions {
		if c.Type == "Ready" {
			return c.Status == "True"
		}
	}
	return false
}

// fleetPod starts a pod pulling the private ECR image on node and
// returns its name; it is deleted when the test ends.
func fleetPod(t *testing.T, cp *controlPlane, node, name string) string {
	t.Helper()
	cp.mustApply(t, "/api/v1/namespaces/default/pods", fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %[1]s}
spec:
  nodeName: %[2]s
  hostNetwork: true
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 0
  tolerations: [{operator: Exists}]
  containers:
  - {name: demo, image: %[3]q, imagePullPolicy: Always}
`, name, node, demoRef))
	t.Cleanup(func() { cp.mustDelete(t, "/api/v1/namespaces/default/pods/"+name+"?gracePeriodSeconds=0") })
	return name
}

// events lists the Events about a node as "Type Reason: message".
func nodeEvents(t *testing.T, cp *controlPlane, node string) []string {
	t.Helper()
	var list struct {
		Items []struct {
			Type, Reason, Message string
			InvolvedObject        struct{ Kind, Name string } `json:"involvedObject"`
		}
	}
	if code, body := cp.do("GET", "/api/v1/events", "", &list); code != http.StatusOK {
		t.Fatalf("listing events: %d %s", code, body)
	}
	var out []string
	for _, e := range list.Items {
		if e.InvolvedObject.Kind == "Node" && e.InvolvedObject.Name == node {
			out = append(out, e.Type+" "+e.Reason+": "+e.Message)
		}
	}
	return out
}

// TestFleet installs the provider on two nodes of different
// distributions (kubeadm and k3s, each its own kubelet and containerd)
// with the chart, rendered and applied by the real helm, on a control
// plane with kube-controller-manager and kube-scheduler. Each node gets
// the provider, its kubelet is restarted by its systemd (the harness
// playing it) with the flags the node's files now give, and a pod pulls
// the private ECR image, which it could not before. Then an upgrade to a
// configuration that breaks the plugin: the first node rolls back and
// stays Ready, and the second is never touched. Then helm uninstall: both
// nodes return to their original files and their kubelets run.
func TestFleet(t *testing.T) {
	requireNode(t)
	if _, err := os.Stat(loopbackCNIPlugin); err != nil {
		t.Fatalf("%s is missing (the nodes need it to become Ready)\ninstall it with:\n  apt-get update && apt-get install -y containernetworking-plugins", loopbackCNIPlugin)
	}
	versions := kubeletVersions()
	version := newestVersion(versions)
	a := sharedArtifacts(t)
	bins := controlPlaneBinaries(t, version)
	helm := newHelm(t, "") // built before anything starts
	cp := startControlPlane(t, bins, version)
	cp.startControllers(t, bins)
	helm.kubeconfig = cp.kubeconfig(t, "helm", "e2e-helm", "system:masters")
	emu := startEmulator(t)
	reg := demoRegistry(t, a)
	imageTar, imageRepo, imageTag := fleetImage(t)

	// The second node runs the other kubelet version when there is one:
	// each node's files are checked with its own kubelet's rules.
	secondKubelet := bins["kubelet"]
	for _, v := range versions {
		if v != version {
			secondKubelet = kubeletBinary(t, v)
			break
		}
	}
	nodes := []*fleetNode{
		startFleetNode(t, a, cp, reg, bins["kubelet"], "e2e-fleet-kubeadm", "kubeadm-debian", kubeletwiring.Kubelet, "kubelet.service"),
		startFleetNode(t, a, cp, reg, secondKubelet, "e2e-fleet-k3s", "k3s", kubeletwiring.K3s, "k3s.service"),
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, f := range nodes {
				t.Logf("---- %s installer logs ----\n%s", f.name, clip(f.n.containerLog("installer")))
				t.Logf("---- %s removal logs ----\n%s", f.name, clip(f.n.containerLog("removal")))
			}
		}
	})
	original := map[string]map[string]string{}
	for _, f := range nodes {
		original[f.name] = f.tree()
		if out, err := f.n.ctr("images", "import", imageTar); err != nil {
			t.Fatalf("%s: ctr images import: %v\n%s", f.name, err, out)
		}
	}

	// The negative control: without the provider the registry refuses
	// the pull.
	if msg := cp.waitPod(t, "default", fleetPod(t, cp, nodes[0].name, "before-install"), "pull-failed"); !strings.Contains(msg, "401") && !strings.Contains(msg, "nauthorized") {
		t.Fatalf("before install the pull failed, but not with the registry's 401: %s", msg)
	}

	env := map[string]string{}
	for _, kv := range pluginEnv(t, emu, shortTempDir(t, "e2e-fleet-env-")) {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	values := map[string]any{
		"image":                 map[string]any{"repository": imageRepo, "tag": imageTag, "pullPolicy": "Never"},
		"hostRoot":              fleetHostRoot,
		"kubernetesServiceHost": "127.0.0.1",
		"kubernetesServicePort": strings.TrimPrefix(cp.url, "https://127.0.0.1:"),
		"env":                   env,
		"checkImage":            demoRef,
		"kubeletTimeout":        "90s",
		// The test's nodes have none of the usual labels.
		"nodeSelector": map[string]any{},
	}
	valuesFile := filepath.Join(t.TempDir(), "values.yaml")
	b, _ := yaml.Marshal(values)
	if err := os.WriteFile(valuesFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	const chart = "../../deploy/charts/ecr-credential-provider"
	const release, ns = "ecp", "kube-system"
	dsPath := "/apis/apps/v1/namespaces/" + ns + "/daemonsets/ecp-ecr-credential-provider"

	t.Run("install", func(t *testing.T) {
		if out, err := helm.run("install", release, chart, "--namespace", ns, "--values", valuesFile, "--wait", "--timeout", "5m"); err != nil {
			t.Fatalf("helm install: %v\n%s", err, out)
		}
		// helm --wait lets a DaemonSet be maxUnavailable short of Ready:
		// wait for every node.
		waitDaemonSet(t, cp, dsPath, nodes, func(s dsStatus) bool {
			return s.DesiredNumberScheduled == 2 && s.NumberAvailable == 2 && s.UpdatedNumberScheduled == 2
		})
		for _, f := range nodes {
			ann := nodeAnnotations(t, cp, f.name)
			if ann["result"] != "installed" || !strings.Contains(ann["message"], "plugin answered") {
				t.Errorf("%s: installer annotations %v", f.name, ann)
			}
			restarts, flags := f.state()
			if restarts != 1 || len(flags) != 2 {
				t.Errorf("%s: %d kubelet restarts, now with provider flags %q; want one restart, with the flags", f.name, restarts, flags)
			}
			cp.waitPod(t, "default", fleetPod(t, cp, f.name, "after-install-"+f.name[len("e2e-fleet-"):]), "running")
		}
	})
	if t.Failed() {
		return
	}

	t.Run("installer-stays-on-its-own-node", func(t *testing.T) {
		installerStaysOnItsOwnNode(t, cp, ns, "ecp-ecr-credential-provider", nodes[0].name, nodes[1].name)
	})

	installed := map[string]map[string]string{}
	restartsBefore := map[string]int{}
	for _, f := range nodes {
		installed[f.name] = f.tree()
		restartsBefore[f.name], _ = f.state()
	}

	var bad, untouched *fleetNode
	t.Run("broken-upgrade-stops-at-the-first-node", func(t *testing.T) {
		stop := watchPodReadiness(t, cp, ns)
		defer stop()
		// A configuration the kubelet accepts but that breaks the plugin:
		// its ECR endpoint is a port nobody listens on.
		if out, err := helm.run("upgrade", release, chart, "--namespace", ns, "--values", valuesFile, "--set", "env.AWS_ENDPOINT_URL_ECR=http://127.0.0.1:9"); err != nil {
			t.Fatalf("helm upgrade: %v\n%s", err, out)
		}
		if !waitFor(4*time.Minute, func() bool {
			for _, f := range nodes {
				if nodeAnnotations(t, cp, f.name)["result"] == "rolled-back" {
					bad = f
					return true
				}
			}
			return false
		}) {
			t.Fatalf("no node rolled back; annotations: %v / %v", nodeAnnotations(t, cp, nodes[0].name), nodeAnnotations(t, cp, nodes[1].name))
		}
		untouched = nodes[0]
		if bad == nodes[0] {
			untouched = nodes[1]
		}
		// Give the DaemonSet controller the time it would need to move on:
		// more than the chart's minReadySeconds.
		time.Sleep(40 * time.Second)

		if d := treeChanges(installed[bad.name], bad.tree()); len(d) > 0 {
			t.Errorf("%s rolled back, but its files differ from before the upgrade:\n  %s", bad.name, strings.Join(d, "\n  "))
		}
		if r, _ := bad.state(); r != restartsBefore[bad.name]+2 {
			t.Errorf("%s: %d kubelet restarts during the upgrade; want 2 (the change, the rollback)", bad.name, r-restartsBefore[bad.name])
		}
		if bad.n.kubelet.exited() || !nodeReady(cp, bad.name) {
			t.Errorf("%s is not running Ready after the rollback", bad.name)
		}
		ann := nodeAnnotations(t, cp, bad.name)
		if !strings.Contains(ann["message"], "did not answer a credential request") {
			t.Errorf("%s: rollback message %q does not say why", bad.name, ann["message"])
		}
		if ev := strings.Join(nodeEvents(t, cp, bad.name), "\n"); !strings.Contains(ev, "Warning ProviderRolledBack") {
			t.Errorf("%s: no Warning event ProviderRolledBack; events:\n%s", bad.name, ev)
		}
		if d := treeChanges(installed[untouched.name], untouched.tree()); len(d) > 0 {
			t.Errorf("%s was touched by the broken upgrade:\n  %s", untouched.name, strings.Join(d, "\n  "))
		}
		if r, _ := untouched.state(); r != restartsBefore[untouched.name] {
			t.Errorf("%s: its kubelet was restarted %d times by the broken upgrade", untouched.name, r-restartsBefore[untouched.name])
		}
		if ann := nodeAnnotations(t, cp, untouched.name); ann["result"] != "installed" {
			t.Errorf("%s: annotations %v; want the first install's", untouched.name, ann)
		}
		if t.Failed() {
			for _, f := range nodes {
				t.Logf("%s annotations %v\n%s kubelet log (probes):\n%s", f.name, nodeAnnotations(t, cp, f.name), f.name, grepLines(f.n.kubelet.logText(), "robe"))
			}
		}
		var ds struct{ Status dsStatus }
		cp.do("GET", dsPath, "", &ds)
		if ds.Status.UpdatedNumberScheduled != 1 || ds.Status.NumberUnavailable != 1 {
			t.Errorf("DaemonSet status %+v; want one node updated, one unavailable", ds.Status)
		}
	})

	t.Run("uninstall-restores-every-node", func(t *testing.T) {
		if out, err := helm.run("uninstall", release, "--namespace", ns, "--wait", "--timeout", "5m"); err != nil {
			t.Fatalf("helm uninstall: %v\n%s", err, out)
		}
		for _, f := range nodes {
			if d := treeChanges(withLockFile(t, original[f.name], f.tree()), f.tree()); len(d) > 0 {
				t.Errorf("%s after uninstall differs from before install:\n  %s", f.name, strings.Join(d, "\n  "))
			}
			if _, flags := f.state(); len(flags) != 0 || f.n.kubelet.exited() {
				t.Errorf("%s: the kubelet runs %v with provider flags %q after uninstall", f.name, !f.n.kubelet.exited(), flags)
			}
			if !waitFor(60*time.Second, func() bool { return nodeReady(cp, f.name) }) {
				t.Errorf("%s is not Ready after uninstall", f.name)
			}
		}
		if code, _ := cp.do("GET", dsPath, "", nil); code != http.StatusNotFound {
			t.Errorf("the DaemonSet is still there (GET answered %d)", code)
		}
	})
}

// withLockFile is the tree before plus install's lock file, which
// uninstall leaves (0600, empty), and the directories it needed.
func withLockFile(t *testing.T, before, after map[string]string) map[string]string {
	t.Helper()
	out := maps.Clone(before)
	lock := nodesetup.LockFile
	if got := after[lock]; !strings.HasPrefix(got, "-rw------- ") {
		t.Errorf("the lock file %s is %q; want an empty 0600 file", lock, got)
	}
	out[lock] = after[lock]
	for d := path.Dir(lock); d != "/"; d = path.Dir(d) {
		if _, ok := out[d]; !ok {
			out[d] = after[d]
		}
	}
	return out
}

// dsStatus is what the harness reads of a DaemonSet's status.
type dsStatus struct {
	DesiredNumberScheduled int `json:"desiredNumberScheduled"`
	UpdatedNumberScheduled int `json:"updatedNumberScheduled"`
	NumberReady            int `json:"numberReady"`
	NumberAvailable        int `json:"numberAvailable"`
	NumberUnavailable      int `json:"numberUnavailable"`
}

// waitDaemonSet waits until the DaemonSet's status satisfies ok, and
// fails with the installers' logs if it does not in time.
func waitDaemonSet(t *testing.T, cp *controlPlane, path string, nodes []*fleetNode, ok func(dsStatus) bool) {
	t.Helper()
	var last dsStatus
	if waitFor(4*time.Minute, func() bool {
		var ds struct{ Status dsStatus }
		if code, _ := cp.do("GET", path, "", &ds); code != http.StatusOK {
			return false
		}
		last = ds.Status
		return ok(last)
	}) {
		return
	}
	for _, f := range nodes {
		t.Logf("---- %s installer log ----\n%s", f.name, clip(f.n.containerLog("installer")))
		t.Logf("%s annotations: %v", f.name, nodeAnnotations(t, cp, f.name))
	}
	t.Fatalf("DaemonSet status %+v", last)
}

// fleetImage is the release's node installer image (the installer and the
// plugin), as the OCI tarball ctr imports, and the repository and tag it
// carries.
func fleetImage(t *testing.T) (tarball, repo, tag string) {
	t.Helper()
	dir, version := releaseDist(t)
	return filepath.Join(dir, "ecr-node-installer-image.oci.tar"), "ghcr.io/kubecred/ecr-node-installer", version
}

// grepLines returns the lines of s holding sub, at most the last 20.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	if len(out) > 20 {
		out = out[len(out)-20:]
	}
	return strings.Join(out, "\n")
}

// watchPodReadiness logs, until stop, each change of the Ready condition
// of the namespace's pods as the API server has it: what the DaemonSet
// controller decides by.
func watchPodReadiness(t *testing.T, cp *controlPlane, ns string) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		seen := map[string]string{}
		var lines []string
		for {
			var list struct {
				Items []struct {
					Metadata struct{ Name string }
					Spec     struct {
						NodeName string `json:"nodeName"`
					}
					Status struct {
						Conditions []struct{ Type, Status string }
					}
				}
			}
			if code, _ := cp.do("GET", "/api/v1/namespaces/"+ns+"/pods", "", &list); code == http.StatusOK {
				for _, p := range list.Items {
					ready := "none"
					for _, c := range p.Status.Conditions {
						if c.Type == "Ready" {
							ready = c.Status
						}
					}
					key := p.Metadata.Name + " on " + p.Spec.NodeName
					if seen[key] != ready {
						seen[key] = ready
						lines = append(lines, time.Now().Format("15:04:05.000")+" "+key+" Ready="+ready)
					}
				}
			}
			select {
			case <-done:
				if t.Failed() {
					t.Logf("pod readiness as the API server had it:\n%s", strings.Join(lines, "\n"))
				}
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// installerStaysOnItsOwnNode checks the chart's node policies with a
// token of the installer's service account bound to its pod on node own,
// as the pod's projected token is: the installer may set its annotations
// there and record Events about it, and the API server refuses the rest.
// Then, as the negative control, the same token annotates the other node
// and records an Event about it once the policies' bindings are gone (RBAC
// alone allows both), and the bindings are put back.
func installerStaysOnItsOwnNode(t *testing.T, cp *controlPlane, ns, name, own, other string) {
	var pods struct {
		Items []struct {
			Metadata struct{ Name, UID string } `json:"metadata"`
		} `json:"items"`
	}
	q := url.Values{"labelSelector": {"app.kubernetes.io/name=ecr-credential-provider"}, "fieldSelector": {"spec.nodeName=" + own}}
	if code, body := cp.do("GET", "/api/v1/namespaces/"+ns+"/pods?"+q.Encode(), "", &pods); code != http.StatusOK || len(pods.Items) != 1 {
		t.Fatalf("the installer's pod on %s: %d %s", own, code, body)
	}
	pod := pods.Items[0].Metadata
	var tr struct {
		Status struct{ Token string } `json:"status"`
	}
	req := fmt.Sprintf(`{"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","spec":{"expirationSeconds":600,`+
		`"boundObjectRef":{"apiVersion":"v1","kind":"Pod","name":%q,"uid":%q}}}`, pod.Name, pod.UID)
	if code, body := cp.do("POST", "/api/v1/namespaces/"+ns+"/serviceaccounts/"+name+"/token", req, &tr); code != http.StatusCreated || tr.Status.Token == "" {
		t.Fatalf("a token of %s bound to pod %s: %d %s", name, pod.Name, code, body)
	}
	patch := func(node, body string) (int, string) {
		return cp.doAs(tr.Status.Token, "PATCH", "/api/v1/nodes/"+node, "application/merge-patch+json", body)
	}
	annotate := func(k, v string) string { return fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, k, v) }
	const probe = "ecr-credential-provider.kubecred.io/e2e-probe"
	defer func() {
		// Undo whatever got through, so the later subtests run on
		// schedulable nodes as they were.
		undo := `{"metadata":{"labels":{"e2e-probe":null},"annotations":{"` + probe + `":null,"e2e.example/probe":null}},"spec":{"unschedulable":null}}`
		for _, n := range []string{own, other} {
			if code, body := cp.send(cp.admin, "", "PATCH", "/api/v1/nodes/"+n, "application/merge-patch+json", undo, nil); code != http.StatusOK {
				t.Errorf("undoing the probes on %s: %d %s", n, code, clip(body))
			}
		}
	}()

	if code, body := patch(own, annotate(probe, "own")); code != http.StatusOK {
		t.Fatalf("the installer may not set its annotation on its own node %s: %d %s", own, code, clip(body))
	}
	for _, c := range []struct{ what, node, body, want string }{
		{"its annotation on another node", other, annotate(probe, "other"), "may not change node " + other},
		{"a label on its node", own, `{"metadata":{"labels":{"e2e-probe":"1"}}}`, "not the node's spec, labels"},
		{"cordoning its node", own, `{"spec":{"unschedulable":true}}`, "not the node's spec, labels"},
		{"another annotation on its node", own, annotate("e2e.example/probe", "1"), "on its node, not others"},
	} {
		code, body := patch(c.node, c.body)
		if code != http.StatusForbidden || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %s\nwant 403 saying %q", c.what, code, clip(body), c.want)
			continue
		}
		var status struct{ Message string }
		json.Unmarshal([]byte(body), &status)
		t.Logf("%s: refused: %s", c.what, status.Message)
	}

	event := func(node string) (int, string) {
		return cp.doAs(tr.Status.Token, "POST", "/api/v1/namespaces/default/events", "application/json", fmt.Sprintf(
			`{"apiVersion":"v1","kind":"Event","metadata":{"generateName":"e2e-probe-"},"involvedObject":{"apiVersion":"v1","kind":"Node","name":%q},`+
				`"reason":"E2EProbe","message":"probe","type":"Normal","source":{"component":"e2e"}}`, node))
	}
	if code, body := event(own); code != http.StatusCreated {
		t.Errorf("the installer may not record an Event about its own node %s: %d %s", own, code, clip(body))
	}
	if code, body := event(other); code != http.StatusForbidden || !strings.Contains(body, "may record Events only about its own Node, not Node "+other) {
		t.Errorf("an Event about another node: %d %s\nwant 403 naming the node", code, clip(body))
	}

	// The control: without the bindings, RBAC lets the same token
	// annotate the other node and record Events about it.
	const bindings = "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings"
	for _, policy := range []string{name + "-own-node", name + "-own-events"} {
		var binding map[string]any
		if code, body := cp.do("GET", bindings+"/"+policy, "", &binding); code != http.StatusOK {
			t.Fatalf("reading the policy binding %s: %d %s", policy, code, body)
		}
		cp.mustDelete(t, bindings+"/"+policy)
		meta := binding["metadata"].(map[string]any)
		for _, k := range []string{"resourceVersion", "uid", "creationTimestamp", "managedFields", "generation"} {
			delete(meta, k)
		}
		restore, _ := json.Marshal(binding)
		defer cp.mustApply(t, bindings, string(restore))
	}
	for _, c := range []struct {
		what string
		do   func() (int, string)
		want int
	}{
		{"annotate " + other, func() (int, string) { return patch(other, annotate(probe, "control")) }, http.StatusOK},
		{"record an Event about " + other, func() (int, string) { return event(other) }, http.StatusCreated},
	} {
		var code int
		var body string
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
			if code, body = c.do(); code == c.want {
				break
			}
		}
		if code != c.want {
			t.Errorf("without the policy bindings the installer still may not %s: %d %s; so the policies are not what refused it above", c.what, code, clip(body))
		}
	}
}
