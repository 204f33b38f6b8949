package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// pauseImage is the sandbox image, imported from a local archive so
// containerd never tries to pull it.
const pauseImage = "localhost/e2e/pause:1"

// node is one throwaway Kubernetes node: containerd and a standalone
// kubelet (static pods, no API server), both inside one mount and PID
// namespace the harness made. Hiding /var/lib, /var/log, /run, the
// kernel tunables the kubelet writes and /etc/resolv.conf behind files of
// the test's own means the host is not touched, and killing the
// namespace's first process ends every process of the node.
type node struct {
	t          *testing.T
	dir        string
	ns         *proc // unshare; its child (PID 1 of the namespace) is containerd
	nsInit     int   // host PID of the namespace's PID 1
	sock       string
	kubelet    *proc
	cgroups    map[string]bool
	registries []string // logs to dump on failure
}

// nodeScript runs as PID 1's parent shell inside the new namespaces: it
// replaces the host paths the kubelet and containerd hard-code with the
// test's own, then becomes containerd.
const nodeScript = `set -eu
D=$1
for p in /var/lib /var/log /run; do
	d="$D/ns$p"; mkdir -p "$d"; mount --bind "$d" "$p"
done
mkdir -p /var/lib/kubelet/device-plugins /var/log/containers /var/log/pods
mount --bind "$D/ns/resolv.conf" /etc/resolv.conf
if [ -e "$D/ns/hosts" ]; then mount --bind "$D/ns/hosts" /etc/hosts; fi
for f in vm/overcommit_memory vm/panic_on_oom kernel/panic kernel/panic_on_oops kernel/keys/root_maxkeys kernel/keys/root_maxbytes; do
	if [ -e "/proc/sys/$f" ]; then
		s="$D/ns/sysctl-$(echo "$f" | tr / -)"
		cat "/proc/sys/$f" > "$s"
		mount --bind "$s" "/proc/sys/$f"
	fi
done
exec containerd --config "$D/containerd.toml"
`

// startNode starts containerd for registryHost served by the local
// registry at registryAddr, and imports the pause image.
func startNode(t *testing.T, a artifacts, registryHost, registryAddr string) *node {
	t.Helper()
	return startNodeWith(t, a, nodeSpec{registries: map[string]string{registryHost: registryAddr}})
}

// nodeSpec is what a node is started with.
type nodeSpec struct {
	registries map[string]string // registry host -> local registry address serving it
	// loopbackCNI gives containerd a CNI network of the loopback plugin
	// alone: a kubelet registered to an API server stays NotReady (and
	// its node tainted) without one, while host networking stays untouched.
	loopbackCNI bool
	// certsDir is containerd's registry config_path; "" is certs.d in
	// the node's directory, where registries' hosts.toml files go.
	certsDir string
	// hosts is /etc/hosts inside the node ("": the machine's), and env
	// more of containerd's environment (SSL_CERT_FILE for a test CA).
	hosts string
	env   []string
}

// startNodeWith starts containerd as spec says and imports the pause image.
func startNodeWith(t *testing.T, a artifacts, spec nodeSpec) *node {
	t.Helper()
	n := &node{t: t, dir: shortTempDir(t, "e2e-node-"), cgroups: cgroupDirs(3)}
	n.sock = filepath.Join(n.dir, "containerd.sock")
	for _, d := range []string{"ns", "cni/bin", "cni/conf", "tmp"} {
		if err := os.MkdirAll(filepath.Join(n.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Any DNS lookup inside the node goes to a loopback port nobody
	// listens on, so a misconfiguration fails here instead of leaving the
	// machine.
	n.write("ns/resolv.conf", "nameserver 127.0.0.1\noptions attempts:1 timeout:1\n")
	for host, addr := range spec.registries {
		if err := os.MkdirAll(filepath.Join(n.dir, "certs.d", host), 0o755); err != nil {
			t.Fatal(err)
		}
		// containerd 1.6 rejects a hosts.toml with only "server" and then
		// falls back to the real registry host: the [host] table is required.
		n.write(filepath.Join("certs.d", host, "hosts.toml"), fmt.Sprintf(`server = "http://%[1]s"

[host."http://%[1]s"]
  capabilities = ["pull", "resolve"]
`, addr))
	}
	if spec.hosts != "" {
		n.write("ns/hosts", spec.hosts)
	}
	certsDir := spec.certsDir
	if certsDir == "" {
		certsDir = filepath.Join(n.dir, "certs.d")
	}
	if spec.loopbackCNI {
		b, err := os.ReadFile(loopbackCNIPlugin)
		if err != nil {
			t.Fatalf("the loopback CNI plugin (package containernetworking-plugins): %v", err)
		}
		if err := os.WriteFile(filepath.Join(n.dir, "cni/bin/loopback"), b, 0o755); err != nil {
			t.Fatal(err)
		}
		n.write("cni/conf/10-lo.conflist", `{"cniVersion":"1.0.0","name":"lo","plugins":[{"type":"loopback"}]}`+"\n")
	}
	n.write("containerd.toml", fmt.Sprintf(`version = 2
root = "%[1]s/root"
state = "%[1]s/state"
temp = "%[1]s/tmp"
disabled_plugins = [
  "io.containerd.internal.v1.opt",
  "io.containerd.internal.v1.tracing",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]

[grpc]
  address = "%[1]s/containerd.sock"

[ttrpc]
  address = "%[1]s/containerd.sock.ttrpc"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "%[2]s"
  restrict_oom_score_adj = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "%[1]s/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "%[1]s/cni/bin"
    conf_dir = "%[1]s/cni/conf"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "%[3]s"
`, n.dir, pauseImage, certsDir))

	env := append(append(baseEnv(), "TMPDIR="+filepath.Join(n.dir, "tmp")), spec.env...)
	n.ns = startProc(t, "containerd", filepath.Join(n.dir, "containerd.log"), env,
		"unshare", "--mount", "--propagation", "slave", "--pid", "--fork", "--mount-proc", "--kill-child",
		"--", "/bin/sh", "-c", nodeScript, "sh", n.dir)
	t.Cleanup(n.teardown)

	if !waitFor(30*time.Second, func() bool {
		if n.ns.exited() {
			return true
		}
		_, err := n.ctr("version")
		return err == nil
	}) || n.ns.exited() {
		t.Fatalf("containerd did not start:\n%s", n.ns.logTail(40))
	}
	init, err := childOf(n.ns.pid())
	if err != nil {
		t.Fatalf("finding the node namespace's PID 1: %v", err)
	}
	n.nsInit = init

	pause, err := newImage(a.sleeper, nil)
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(n.dir, "pause.tar")
	if err := pause.writeOCIArchive(archive, pauseImage); err != nil {
		t.Fatal(err)
	}
	if out, err := n.ctr("images", "import", archive); err != nil {
		t.Fatalf("importing the pause image: %v\n%s", err, out)
	}
	return n
}

func (n *node) write(rel, content string) {
	n.t.Helper()
	if err := os.WriteFile(filepath.Join(n.dir, rel), []byte(content), 0o644); err != nil {
		n.t.Fatal(err)
	}
}

// ctr runs ctr against this node's containerd in the CRI namespace.
func (n *node) ctr(args ...string) (string, error) {
	cmd := exec.Command("ctr", append([]string{"--address", n.sock, "--namespace", "k8s.io"}, args...)...)
	cmd.Env = baseEnv()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// childOf finds the single child of pid (unshare's forked child).
func childOf(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 1 {
			return strconv.Atoi(f[0])
		}
	}
	// Kernels without CONFIG_PROC_CHILDREN: scan for the parent PID.
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c))
		if err != nil {
			continue
		}
		// The command name may hold spaces: fields start after the last ')'.
		s := string(stat)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			return c, nil
		}
	}
	return 0, fmt.Errorf("no child of %d", pid)
}

// kubeletOptions configure one kubelet start.
type kubeletOptions struct {
	name           string // names its files in the node dir; "" = "kubelet"
	bin            string
	pluginBinDir   string // "" = start without the credential provider flags
	providerConfig string // CredentialProviderConfig YAML, or:
	providerPath   string // a config file or directory the caller wrote
	pods           map[string]string
	// kubeconfig registers the kubelet to an API server as nodeName
	// (default e2e-node); clientCA is the CA it checks the API server's
	// client certificate with.
	kubeconfig, nodeName, clientCA string
}

// startKubelet starts a standalone kubelet in the node's namespaces with
// the given static pods. It returns the kubelet's healthz URL.
func (n *node) startKubelet(o kubeletOptions) string {
	t := n.t
	t.Helper()
	if o.name == "" {
		o.name = "kubelet"
	}
	path := func(s string) string { return filepath.Join(n.dir, o.name+"-"+s) }
	for _, d := range []string{path("manifests"), path("root"), path("pki"), filepath.Join(n.dir, "pod-logs"), filepath.Join(n.dir, "volume-plugins")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, pod := range o.pods {
		n.write(filepath.Join(o.name+"-manifests", name+".yaml"), pod)
	}
	if o.nodeName == "" {
		o.nodeName = "e2e-node"
	}
	authn := "authentication: {anonymous: {enabled: false}, webhook: {enabled: false}}"
	if o.clientCA != "" {
		authn = fmt.Sprintf("authentication: {anonymous: {enabled: false}, webhook: {enabled: false}, x509: {clientCAFile: %q}}\nnodeStatusReportFrequency: 10s", o.clientCA)
	}
	healthz := freePort(t)
	n.write(o.name+"-config.yaml", fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
staticPodPath: %[4]s
fileCheckFrequency: 2s
containerRuntimeEndpoint: unix://%[1]s/containerd.sock
podLogsDir: %[1]s/pod-logs
volumePluginDir: %[1]s/volume-plugins
resolvConf: %[1]s/ns/resolv.conf
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
failCgroupV1: false
makeIPTablesUtilChains: false
protectKernelDefaults: false
address: 127.0.0.1
port: %[2]d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %[3]d
%[5]s
authorization: {mode: AlwaysAllow}
evictionHard: {memory.available: "1Mi"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
`, n.dir, freePort(t), healthz, path("manifests"), authn))
	args := []string{
		"nsenter", "--target", strconv.Itoa(n.nsInit), "--mount", "--pid", "--",
		o.bin,
		"--config", path("config.yaml"),
		"--root-dir", path("root"),
		"--cert-dir", path("pki"),
		"--hostname-override", o.nodeName,
		// An explicit node IP spares the kubelet a DNS lookup of the
		// machine's hostname.
		"--node-ip", "127.0.0.1",
		"--v", "2",
	}
	if o.kubeconfig != "" {
		args = append(args, "--kubeconfig", o.kubeconfig)
	}
	if o.pluginBinDir != "" {
		cfg := o.providerPath
		if cfg == "" {
			cfg = path("credential-provider.yaml")
			n.write(o.name+"-credential-provider.yaml", o.providerConfig)
		}
		args = append(args,
			"--image-credential-provider-config", cfg,
			"--image-credential-provider-bin-dir", o.pluginBinDir)
	}
	env := append(baseEnv(), "TMPDIR="+filepath.Join(n.dir, "tmp"))
	n.kubelet = startProc(t, o.name, filepath.Join(n.dir, o.name+".log"), env, args...)
	return fmt.Sprintf("http://127.0.0.1:%d/healthz", healthz)
}

// teardown stops the kubelet, deletes the containers (so runc removes
// their cgroups), ends the namespace, removes leftover empty cgroups and
// on failure prints the logs a reader needs.
func (n *node) teardown() {
	t := n.t
	if t.Failed() {
		n.dumpLogs()
	}
	if n.kubelet != nil {
		n.kubelet.stop()
	}
	ids := map[string]bool{}
	if n.ns != nil && !n.ns.exited() {
		if out, err := n.ctr("containers", "ls", "-q"); err == nil {
			for _, id := range strings.Fields(out) {
				ids[id] = true
			}
		}
		if out, err := n.ctr("tasks", "ls", "-q"); err == nil {
			for _, id := range strings.Fields(out) {
				n.ctr("tasks", "rm", "-f", id) //nolint:errcheck // best effort: the namespace dies next
			}
		}
		n.ns.stop()
	}
	if n.nsInit != 0 {
		waitFor(10*time.Second, func() bool {
			_, err := os.Stat(fmt.Sprintf("/proc/%d", n.nsInit))
			return os.IsNotExist(err)
		})
	}
	// With cgroupfs and no QoS cgroups, runc puts containers in /k8s.io/<id>.
	if failed := removeNewCgroups(n.cgroups, 3, ids, "k8s.io"); len(failed) > 0 {
		t.Errorf("cgroups left behind: %s", strings.Join(failed, "; "))
	}
}

func (n *node) dumpLogs() {
	if n.kubelet != nil {
		n.t.Logf("---- kubelet log: warnings, errors and image/credential lines (last 40) ----\n%s", clip(kubeletDigest(n.kubelet.logText(), 40)))
	}
	if n.ns != nil {
		n.t.Logf("---- containerd log (tail) ----\n%s", clip(n.ns.logTail(25)))
	}
	for _, p := range n.registries {
		b, _ := os.ReadFile(p)
		n.t.Logf("---- %s (tail) ----\n%s", p, clip(tail(string(b), 12)))
	}
}

// kubeletNoise are log entries a standalone kubelet on loopback repeats
// every few seconds that say nothing about pulls.
var kubeletNoise = []string{"nodeIP can't be loopback", "Recording event message for node", "Setting node annotation"}

// kubeletDigest keeps the kubelet log entries a reader of a failed pull
// needs: warnings, errors and anything about images or credentials.
func kubeletDigest(log string, n int) string {
	var keep []string
	for _, e := range klogEntries(log) {
		noisy := false
		for _, s := range kubeletNoise {
			noisy = noisy || strings.Contains(e, s)
		}
		if !noisy && (e[0] == 'E' || e[0] == 'W' || strings.Contains(e, "mage") || strings.Contains(e, "redential")) {
			// Multi-line values (the effective config) get their head only.
			lines := strings.Split(strings.TrimRight(e, "\n"), "\n")
			if len(lines) > 4 {
				lines = append(lines[:4], "\t[...]")
			}
			keep = append(keep, strings.Join(lines, "\n"))
		}
	}
	if len(keep) > n {
		keep = keep[len(keep)-n:]
	}
	return strings.Join(keep, "\n")
}

// clip shortens each line to what a reader scans: containerd prints its
// whole config on one line.
func clip(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if len(l) > 1200 {
			lines[i] = l[:1200] + " [...]"
		}
	}
	return strings.Join(lines, "\n")
}

// hasImage reports whether containerd holds the image ref.
func (n *node) hasImage(ref string) bool {
	out, err := n.ctr("images", "ls", "-q")
	if err != nil {
		return false
	}
	for _, l := range strings.Fields(out) {
		if l == ref {
			return true
		}
	}
	return false
}

// containerState returns the task status ("RUNNING", ...) of the CRI
// container named name, or "" if there is none.
func (n *node) containerState(name string) string {
	ids, err := n.ctr("containers", "ls", "-q", fmt.Sprintf(`labels."io.kubernetes.container.name"==%s`, name))
	if err != nil {
		return ""
	}
	tasks, err := n.ctr("tasks", "ls")
	if err != nil {
		return ""
	}
	for _, id := range strings.Fields(ids) {
		for _, l := range strings.Split(tasks, "\n") {
			if f := strings.Fields(l); len(f) == 3 && f[0] == id {
				return f[2]
			}
		}
	}
	return ""
}

// containerLog returns what the container named name wrote, as the
// kubelet stored it.
func (n *node) containerLog(name string) string {
	matches, _ := filepath.Glob(filepath.Join(n.dir, "pod-logs", "*", name, "*.log"))
	var all strings.Builder
	for _, m := range matches {
		b, _ := os.ReadFile(m)
		all.Write(b)
	}
	return all.String()
}
