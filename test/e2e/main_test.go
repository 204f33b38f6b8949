package e2e

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/kubecred/ecr-credential-provider/internal/buildflags"
)

// defaultKubeletVersions are the newest kubelet on the module proxy and an
// older supported minor: the plugin must work with both.
const defaultKubeletVersions = "v1.37.2,v1.34.4"

var kubeletVersionsFlag = flag.String("kubelet-versions", "",
	"comma-separated kubelet versions to run the node scenarios against (default $E2E_KUBELET_VERSIONS or "+defaultKubeletVersions+")")

// kubeletVersions is the list the node scenarios run on: the flag, else
// E2E_KUBELET_VERSIONS, else both defaults.
func kubeletVersions() []string {
	s := *kubeletVersionsFlag
	if s == "" {
		s = os.Getenv("E2E_KUBELET_VERSIONS")
	}
	if s == "" {
		s = defaultKubeletVersions
	}
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			if !strings.HasPrefix(v, "v") {
				v = "v" + v
			}
			out = append(out, v)
		}
	}
	return out
}

// aptPackages are the Debian packages the node scenarios run; .ci/run
// installs them.
const aptPackages = "containerd runc docker-registry apache2-utils containernetworking-plugins"

// loopbackCNIPlugin is where Debian's containernetworking-plugins puts the
// loopback plugin the control plane scenarios' nodes use.
const loopbackCNIPlugin = "/usr/lib/cni/loopback"

// nodeTools are the programs the node scenarios exec, with the package
// each comes from.
var nodeTools = []struct{ name, pkg string }{
	{"containerd", "containerd"},
	{"containerd-shim-runc-v2", "containerd"},
	{"ctr", "containerd"},
	{"runc", "runc"},
	{"docker-registry", "docker-registry"},
	{"htpasswd", "apache2-utils"},
	{"unshare", "util-linux"},
	{"nsenter", "util-linux"},
	{"mount", "mount"},
}

// requireNode skips when the scenarios are disabled on purpose, skips and
// fails the run at its end (see TestMain) when not root, and fails when
// they should run but a prerequisite is missing, in CI and out of it: a
// missing package or a missing root must never pass as a skip.
func requireNode(t *testing.T) {
	t.Helper()
	if os.Getenv("E2E_DISABLE") == "1" {
		t.Skip("E2E_DISABLE=1: node scenarios disabled")
	}
	if os.Geteuid() != 0 {
		notRun.add(t.Name())
		t.Skip("not root: the node scenarios need root to run containerd and the kubelet")
	}
	var missing []string
	for _, tool := range nodeTools {
		if _, err := exec.LookPath(tool.name); err != nil {
			missing = append(missing, fmt.Sprintf("%s (package %s)", tool.name, tool.pkg))
		}
	}
	if len(missing) > 0 {
		t.Fatalf("missing programs: %s\ninstall them with:\n  apt-get update && apt-get install -y %s",
			strings.Join(missing, ", "), aptPackages)
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatalf("the go command is needed to build the kubelet and the plugin: %v", err)
	}
}

// artifacts are the binaries every scenario shares, built once per test
// process into one temporary directory.
type artifacts struct {
	dir     string
	plugin  string // ecr-credential-provider built from this checkout
	sleeper string // static binary the test images run
}

var (
	artOnce sync.Once
	art     artifacts
	artErr  error
	artDir  string
)

// sharedArtifacts builds the plugin and the image program from the
// checkout (../.. is the main module) the first time it is called.
func sharedArtifacts(t *testing.T) artifacts {
	t.Helper()
	artOnce.Do(func() {
		artDir, artErr = ownedTempDir("e2e-bin-")
		if artErr != nil {
			return
		}
		art.dir = artDir
		art.plugin = filepath.Join(artDir, "ecr-credential-provider")
		art.sleeper = filepath.Join(artDir, "sleeper")
		if artErr = goBuild("../..", art.plugin, "./cmd/ecr-credential-provider", buildflags.Plugin()...); artErr != nil {
			return
		}
		artErr = goBuild(".", art.sleeper, "./testdata/sleeper", "-trimpath")
	})
	if artErr != nil {
		t.Fatalf("building test binaries: %v", artErr)
	}
	return art
}

// goBuild builds a static binary: the images have no libc, and the plugin
// ships static (and is built as shipped).
func goBuild(dir, out, pkg string, flags ...string) error {
	cmd := exec.Command("go", append(append([]string{"build"}, flags...), "-o", out, pkg)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// notRun lists the node scenarios that skipped for want of root: a run
// that proves nothing on a real kubelet must not read "ok".
var notRun skipped

type skipped struct {
	mu    sync.Mutex
	names []string
}

func (s *skipped) add(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.names = append(s.names, name)
}

func TestMain(m *testing.M) {
	flag.Parse()
	sweepStale()
	code := m.Run()
	if artDir != "" {
		os.RemoveAll(artDir)
	}
	if len(notRun.names) > 0 {
		fmt.Fprintf(os.Stderr, "e2e: FAIL: %d real-kubelet scenarios did not run (not root): %s\n"+
			"e2e: run as root (sudo make e2e), or set E2E_DISABLE=1 to skip them on purpose\n",
			len(notRun.names), strings.Join(notRun.names, ", "))
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}
