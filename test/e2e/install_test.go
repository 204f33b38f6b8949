package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubecred/ecr-credential-provider/internal/awsemu"
	"github.com/kubecred/ecr-credential-provider/internal/kubeletwiring"
)

// TestInstallOnNode installs into a kubeadm node tree with the real
// binary's install --root, reads the kubelet's flags from the resulting
// files with the wiring model install and doctor use, starts a real
// kubelet with exactly those flags, and sees it pull the private image
// through the plugin. After uninstall the files give the kubelet no
// provider flags: it starts again, and pulls nothing through ECR (the
// registry refuses it, and the emulator sees no request).
func TestInstallOnNode(t *testing.T) {
	requireNode(t)
	a := sharedArtifacts(t)
	reg := demoRegistry(t, a)
	kubelet := kubeletBinary(t, kubeletVersions()[0])
	emu := startEmulator(t)
	root := kubeadmNodeTree(t)

	cli := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(a.plugin, append(args, "--root", root)...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	cli("install", "--binary", a.plugin)
	w := readWiring(t, root)
	if w.Config.Value == "" || w.BinDir.Value == "" {
		t.Fatalf("after install the kubelet gets no provider flags: %+v", w)
	}
	// The operator gives the plugin its environment (here: the
	// emulator's endpoints) in the installed config, as on a node off
	// EC2; a second install must keep it.
	addPluginEnv(t, filepath.Join(root, w.Config.Value), pluginEnv(t, emu, shortTempDir(t, "e2e-plugin-")))
	if out := cli("install", "--binary", a.plugin); !strings.Contains(out, "nothing changed") {
		t.Errorf("second install changed something:\n%s", out)
	}

	t.Run("installed", func(t *testing.T) {
		n := startNode(t, a, ecrHost, reg.addr)
		n.registries = []string{reg.proc.log}
		n.startKubelet(kubeletOptions{bin: kubelet, pods: map[string]string{"demo": demoPod},
			pluginBinDir: filepath.Join(root, w.BinDir.Value), providerPath: filepath.Join(root, w.Config.Value)})
		waitRunning(t, n)
		if st := emu.Stats().Op(awsemu.TargetECR, "GetAuthorizationToken"); st.Status[200] != 1 || st.SignatureFailures != 0 {
			t.Errorf("emulator saw GetAuthorizationToken %+v; want one signed call answered 200", st)
		}
		assertNoSecrets(t, n)
	})

	cli("uninstall")
	after := readWiring(t, root)
	if after.Config.Value != "" || after.BinDir.Value != "" {
		t.Fatalf("after uninstall the kubelet still gets provider flags: %+v", after)
	}
	for _, p := range []string{w.Config.Value, filepath.Join(w.BinDir.Value, "ecr-credential-provider")} {
		if _, err := os.Stat(filepath.Join(root, p)); !os.IsNotExist(err) {
			t.Errorf("uninstall left %s (%v)", p, err)
		}
	}

	t.Run("uninstalled", func(t *testing.T) {
		before := emu.Stats().Requests
		n := startNode(t, a, ecrHost, reg.addr)
		n.registries = []string{reg.proc.log}
		n.startKubelet(kubeletOptions{bin: kubelet, pods: map[string]string{"demo": demoPod}})
		line := waitPullFailure(t, n)
		if !strings.Contains(line, "401 Unauthorized") {
			t.Errorf("pull failure is not the registry's 401:\n%s", line)
		}
		if n.kubelet.exited() {
			t.Errorf("the kubelet did not keep running after uninstall:\n%s", n.kubelet.logTail(20))
		}
		if st := emu.Stats(); st.Requests != before {
			t.Errorf("emulator saw %d requests after uninstall; want none", st.Requests-before)
		}
	})
}

// kubeadmNodeTree copies the kubeadm (Debian) node the installer's unit
// tests use into a directory of its own.
func kubeadmNodeTree(t *testing.T) string {
	t.Helper()
	root := filepath.Join(shortTempDir(t, "e2e-root-"), "node")
	copyNodeFixture(t, "kubeadm-debian", root)
	return root
}

// readWiring is what kubelet.service below root starts the kubelet with.
func readWiring(t *testing.T, root string) *kubeletwiring.Wiring {
	t.Helper()
	w, err := kubeletwiring.Read(kubeletwiring.DirFS(root), kubeletwiring.Kubelet)
	if err != nil {
		t.Fatalf("reading the kubelet's wiring below %s: %v", root, err)
	}
	return w
}

// addPluginEnv adds env to our provider in an installed config, by hand
// as an operator would: the installed config has our provider last.
func addPluginEnv(t *testing.T, path string, env []string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.Write(data)
	b.WriteString("    env:\n")
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		fmt.Fprintf(&b, "      - name: %s\n        value: %q\n", k, v)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}
