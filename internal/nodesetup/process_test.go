//go:build unix

package nodesetup

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/kubecred/ecr-credential-provider/internal/buildflags"
)

// buildCLI builds the real ecr-credential-provider binary, which the
// process tests run as an operator (or a fleet installer) would.
func buildCLI(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ecr-credential-provider")
	cmd := exec.Command("go", append(append([]string{"build"}, buildflags.Plugin()...), "-o", bin, "github.com/kubecred/ecr-credential-provider/cmd/ecr-credential-provider")...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// Installs and uninstalls started at once against one node, as separate
// processes, take turns on the lock: whatever order they run in, the node
// can boot after all of them, the record is readable, nothing temporary is
// left, and a final uninstall gives back the node as it was.
func TestConcurrentProcesses(t *testing.T) {
	bin := buildCLI(t)
	for _, fixture := range []string{"kubeadm-debian", "k3s", "systemd"} {
		t.Run(fixture, func(t *testing.T) {
			root := nodeRoot(t, fixture)
			before := snapshot(t, root)
			n, _ := openNodeFS(root)
			d, _, err := detect(n)
			n.Close()
			if err != nil {
				t.Fatal(err)
			}
			runs := [][]string{
				{"install"}, {"install", "--public"}, {"install", "--config", "/etc/ecr/provider.yaml"},
				{"install", "--bin-dir", "/opt/ecr/bin"}, {"uninstall"}, {"install"}, {"uninstall"}, {"install", "--public"},
			}
			for round := range 3 {
				var wg sync.WaitGroup
				outs := make([]string, len(runs))
				for i, args := range runs {
					wg.Add(1)
					go func() {
						defer wg.Done()
						cmd := exec.Command(bin, append(args, "--root", root, "--binary", bin)...)
						if args[0] == "uninstall" {
							cmd = exec.Command(bin, "uninstall", "--root", root)
						}
						out, err := cmd.CombinedOutput()
						outs[i] = fmt.Sprintf("%v: %v\n%s", args, err, out)
						if err != nil {
							t.Errorf("round %d: %s", round, outs[i])
						}
					}()
				}
				wg.Wait()
				n, err := openNodeFS(root)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := loadManifest(n); err != nil {
					t.Errorf("round %d: record: %v", round, err)
				}
				ps, _, err := bootProblems(n, d)
				n.Close()
				if err != nil || len(ps) > 0 {
					t.Fatalf("round %d: the kubelet could not start: %v %s\n%s", round, err, problemList(ps), strings.Join(outs, "\n"))
				}
				for p := range snapshot(t, root) {
					if strings.Contains(p, ".tmp-") || strings.HasSuffix(p, "/journal") {
						t.Errorf("round %d: %s left behind", round, p)
					}
				}
			}
			if out, err := exec.Command(bin, "uninstall", "--root", root).CombinedOutput(); err != nil {
				t.Fatalf("final uninstall: %v\n%s", err, out)
			}
			assertTree(t, "after the final uninstall (want the original tree and the lock file)", withLock(before), snapshot(t, root))
		})
	}
}

// A user who is not root is told to run as root, and nothing is touched.
func TestNotRootIsToldToRunAsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("NOT RUN: needs root, to run the binary as another user against a root-owned node")
	}
	bin := buildCLI(t)
	root := nodeRoot(t, "kubeadm-debian")
	// Let the other user reach the node and the binary, as on a real host.
	for d := root; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	for d := filepath.Dir(bin); d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	before := snapshot(t, root)
	for _, args := range [][]string{{"install", "--binary", bin}, {"uninstall"}} {
		cmd := exec.Command(bin, append(args, "--root", root)...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		if args[0] == "uninstall" {
			// Nothing installed: nothing to do, whoever asks.
			if err != nil {
				t.Errorf("uninstall of nothing as nobody: %v: %s", err, stderr.String())
			}
			continue
		}
		if err == nil || !strings.Contains(stderr.String(), "run as root") {
			t.Errorf("%v as nobody: %v, stderr %q; want a failure saying to run as root", args, err, stderr.String())
		}
	}
	assertTree(t, "after runs as nobody", before, snapshot(t, root))

	// Installed by root: uninstall as nobody must also stop before anything.
	if _, err := Install(context.Background(), Options{Root: root, Binary: bin}); err != nil {
		t.Fatal(err)
	}
	installed := snapshot(t, root)
	cmd := exec.Command(bin, "uninstall", "--root", root)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "run as root") {
		t.Errorf("uninstall as nobody: %v: %s", err, out)
	}
	assertTree(t, "after uninstall as nobody", installed, snapshot(t, root))
}
