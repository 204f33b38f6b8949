package agent

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubecred/ecr-credential-provider/fleet/internal/nodestatus"
	"github.com/kubecred/ecr-credential-provider/fleet/internal/rollout"
	"github.com/kubecred/ecr-credential-provider/fleet/systemdtest"
)

// hostRoot copies the installer's kubeadm fixture node into a temp dir,
// with systemd's socket served by a stand-in that renews the node's Lease
// on each kubelet restart, as a restarted kubelet does.
func hostRoot(t *testing.T, kube *fake.Clientset) (string, *systemdtest.Server) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "host")
	src := "../../../internal/nodesetup/testdata/fixtures/kubeadm-debian"
	if err := os.MkdirAll(filepath.Join(root, "run/systemd"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", src+"/.", root+"/").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if err := os.Symlink("usr/lib", filepath.Join(root, "lib")); err != nil {
		t.Fatal(err)
	}
	sd, err := systemdtest.Start(filepath.Join(root, "run/systemd/private"), func(method, unit string) error {
		if method == "RestartUnit" {
			l, err := kube.CoordinationV1().Leases(nodestatus.LeaseNamespace).Get(context.Background(), "n1", metav1.GetOptions{})
			if err != nil {
				return err
			}
			l.Spec.RenewTime = &metav1.MicroTime{Time: time.Now().Add(time.Second)}
			_, err = kube.CoordinationV1().Leases(nodestatus.LeaseNamespace).Update(context.Background(), l, metav1.UpdateOptions{})
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sd.Close)
	return root, sd
}

// readyNode is an API server holding node n1, Ready, with a kubelet
// v1.37.2 and its Lease.
func readyNode() *fake.Clientset {
	return fake.NewClientset(
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Status: corev1.NodeStatus{
			NodeInfo:   corev1.NodeSystemInfo{KubeletVersion: "v1.37.2"},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}},
		&coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "n1", Namespace: nodestatus.LeaseNamespace}})
}

// fakePlugin is a file install copies as the plugin binary.
func fakePlugin(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ecr-credential-provider")
	if err := os.WriteFile(bin, []byte("\x7fELF fake plugin\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestRunOnAHostRoot is the container's whole run on a node tree: the
// first run installs, restarts the kubelet once and writes the ready
// file and annotations; the next changes nothing and restarts nothing; a
// configuration recorded as failed on the node is not tried again.
func TestRunOnAHostRoot(t *testing.T) {
	kube := fake.NewClientset(
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Status: corev1.NodeStatus{
			NodeInfo:   corev1.NodeSystemInfo{KubeletVersion: "v1.37.2"},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}},
		&coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "n1", Namespace: nodestatus.LeaseNamespace},
			Spec: coordinationv1.LeaseSpec{RenewTime: &metav1.MicroTime{Time: time.Now().Add(-time.Hour)}}})
	root, sd := hostRoot(t, kube)
	bin := fakePlugin(t)
	c := Config{Mode: rollout.Install, NodeName: "n1", HostRoot: root, Binary: bin, Version: "v9.9.9",
		Env: []string{"HTTPS_PROXY=http://proxy:3128"}, Timeout: 10 * time.Second, ReadyFile: filepath.Join(t.TempDir(), "ready")}
	ctx := context.Background()

	o, err := Run(ctx, c, kube, nil, t.Logf)
	if err != nil || o.Result != rollout.ResultInstalled || !o.Ready {
		t.Fatalf("first run: %+v %v", o, err)
	}
	if Ready(c.ReadyFile) != nil {
		t.Error("no ready file after the node passed")
	}
	if got := strings.Join(sd.Calls(), ","); got != "RestartUnit kubelet.service" {
		t.Errorf("systemd saw %q", got)
	}
	cfg, err := os.ReadFile(filepath.Join(root, "etc/kubernetes/image-credential-provider-config.yaml"))
	if err != nil || !strings.Contains(string(cfg), "http://proxy:3128") {
		t.Errorf("installed config (%v):\n%s", err, cfg)
	}
	node, _ := kube.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
	if node.Annotations[nodestatus.AnnotationResult] != "installed" || node.Annotations[nodestatus.AnnotationVersion] != "v9.9.9" {
		t.Errorf("annotations %v", node.Annotations)
	}

	o, err = Run(ctx, c, kube, nil, t.Logf)
	if err != nil || o.Result != rollout.ResultUnchanged || !o.Ready || len(sd.Calls()) != 1 {
		t.Fatalf("second run: %+v %v; systemd saw %q", o, err, sd.Calls())
	}

	// The same configuration, recorded as rolled back on this node.
	node, _ = kube.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
	node.Annotations[nodestatus.AnnotationResult] = rollout.ResultRolledBack
	kube.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{}) //nolint:errcheck
	o, err = Run(ctx, c, kube, nil, t.Logf)
	if err != nil || o.Ready || !strings.Contains(o.Message, "not tried again") || Ready(c.ReadyFile) == nil {
		t.Fatalf("a configuration that failed here: %+v %v", o, err)
	}
	c.Retry = true
	if o, err = Run(ctx, c, kube, nil, t.Logf); err != nil || !o.Ready {
		t.Fatalf("with retry: %+v %v", o, err)
	}
}

// TestPullThroughCacheValue: the chart's pullThroughCache reaches install.
// On a node whose containerd names no config_path, install refuses and
// says what to add: the node fails, its files unchanged, and the kubelet is
// not restarted. A malformed entry is refused before anything runs. With a
// config_path, the node gets the map and containerd's mirror.
func TestPullThroughCacheValue(t *testing.T) {
	kube := readyNode()
	root, sd := hostRoot(t, kube)
	bin := fakePlugin(t)
	before, err := os.ReadFile(filepath.Join(root, "etc/default/kubelet"))
	if err != nil {
		t.Fatal(err)
	}
	c := Config{Mode: rollout.Install, NodeName: "n1", HostRoot: root, Binary: bin, Timeout: 10 * time.Second,
		ReadyFile:        filepath.Join(t.TempDir(), "ready"),
		PullThroughCache: []string{"docker.io=123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub"}}
	o, err := Run(context.Background(), c, kube, nil, t.Logf)
	if err != nil || o.Ready || o.Result != rollout.ResultFailed || !strings.Contains(o.Message, "config_path") {
		t.Fatalf("no config_path: %+v %v", o, err)
	}
	if after, _ := os.ReadFile(filepath.Join(root, "etc/default/kubelet")); string(after) != string(before) || len(sd.Calls()) != 0 {
		t.Errorf("a refused install changed the kubelet's env file or restarted it (%q)", sd.Calls())
	}
	c.PullThroughCache = []string{"docker.io"}
	if _, err := Run(context.Background(), c, kube, nil, t.Logf); err == nil || !strings.Contains(err.Error(), "pullThroughCache") {
		t.Errorf("a malformed entry: %v", err)
	}

	// Once containerd names a config_path, the same value installs: the
	// provider maps docker.io to the cache, and containerd pulls docker.io
	// from the ECR registry alone.
	if err := os.MkdirAll(filepath.Join(root, "etc/containerd"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/containerd/config.toml"),
		[]byte("version = 2\n\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const cacheHost = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
	c.PullThroughCache = []string{"docker.io=" + cacheHost + "/docker-hub"}
	// The same values failed here before: an operator who fixed the node
	// sets retry, as the failure's message says.
	if o, err = Run(context.Background(), c, kube, nil, t.Logf); err != nil || o.Ready || !strings.Contains(o.Message, "set retry") {
		t.Fatalf("the same values again, without retry: %+v %v", o, err)
	}
	c.Retry = true
	o, err = Run(context.Background(), c, kube, nil, t.Logf)
	if err != nil || !o.Ready || o.Result != rollout.ResultInstalled {
		t.Fatalf("with config_path: %+v %v", o, err)
	}
	cfg, err := os.ReadFile(filepath.Join(root, "etc/kubernetes/image-credential-provider-config.yaml"))
	if err != nil || !strings.Contains(string(cfg), "--registry-map=docker.io="+cacheHost+"/docker-hub") || !strings.Contains(string(cfg), "docker.io") {
		t.Errorf("the provider config does not map docker.io to the cache (%v):\n%s", err, cfg)
	}
	hosts, err := os.ReadFile(filepath.Join(root, "etc/containerd/certs.d/docker.io/hosts.toml"))
	if err != nil || !strings.Contains(string(hosts), `server = "https://`+cacheHost+`/v2/docker-hub"`) {
		t.Errorf("containerd's hosts.toml for docker.io does not send it to the cache alone (%v):\n%s", err, hosts)
	}
	if got := strings.Join(sd.Calls(), ","); got != "RestartUnit kubelet.service" {
		t.Errorf("systemd saw %q; want one kubelet restart", got)
	}
}

// TestNodeWithoutSystemd: on a node whose systemd does not answer (Talos
// and Bottlerocket have none), install changes nothing rather than write
// files it cannot restart the kubelet into, and says what to do instead.
func TestNodeWithoutSystemd(t *testing.T) {
	kube := readyNode()
	root, sd := hostRoot(t, kube)
	sd.Close()
	os.Remove(filepath.Join(root, "run/systemd/private"))
	bin := fakePlugin(t)
	before, err := os.ReadFile(filepath.Join(root, "etc/default/kubelet"))
	if err != nil {
		t.Fatal(err)
	}
	c := Config{Mode: rollout.Install, NodeName: "n1", HostRoot: root, Binary: bin, Timeout: 10 * time.Second,
		ReadyFile: filepath.Join(t.TempDir(), "ready")}
	o, err := Run(context.Background(), c, kube, nil, t.Logf)
	if err != nil || o.Ready || o.Result != rollout.ResultFailed || !strings.Contains(o.Message, "nothing changed") ||
		!strings.Contains(o.Message, "run/systemd/private") || !strings.Contains(o.Message, "Talos") {
		t.Fatalf("no systemd: %+v %v", o, err)
	}
	if after, _ := os.ReadFile(filepath.Join(root, "etc/default/kubelet")); string(after) != string(before) {
		t.Error("the kubelet's env file changed on a node whose kubelet could not be restarted")
	}
	if _, err := os.Stat(filepath.Join(root, "etc/kubernetes/image-credential-provider-config.yaml")); err == nil {
		t.Error("a provider config was written on a node whose kubelet could not be restarted")
	}
	if Ready(c.ReadyFile) == nil {
		t.Error("the pod reads Ready on a node that was not set up")
	}
}
