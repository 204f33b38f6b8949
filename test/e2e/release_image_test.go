package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// releaseVersion is linked into the release this test makes, so the
// container's output can only come from that build.
const releaseVersion = "v0.0.0-e2e-release"

// releaseDist is the release directory make release writes, with its
// version: $E2E_RELEASE_DIR (and $E2E_RELEASE_VERSION), or one made here by
// the release tooling once per test run.
func releaseDist(t *testing.T) (dir, version string) {
	t.Helper()
	if d := os.Getenv("E2E_RELEASE_DIR"); d != "" {
		return d, os.Getenv("E2E_RELEASE_VERSION")
	}
	relOnce.Do(func() {
		tmp, err := ownedTempDir("e2e-release-")
		if err != nil {
			relErr = err
			return
		}
		relDir = filepath.Join(tmp, "dist")
		cmd := exec.Command("go", "run", "./cmd/mkrelease", "-source", "..", "-out", relDir, "-version", releaseVersion)
		cmd.Dir = "../../release"
		cmd.Env = append(os.Environ(), "GOWORK=off")
		if b, err := cmd.CombinedOutput(); err != nil {
			relErr = fmt.Errorf("making the release: %v\n%s", err, b)
		}
	})
	if relErr != nil {
		t.Fatal(relErr)
	}
	return relDir, releaseVersion
}

var (
	relOnce sync.Once
	relDir  string
	relErr  error
)

// TestReleaseImageRunsInContainerd imports each of the release's OCI image
// tarballs into the node's containerd, as an operator's ctr would, and
// runs the version of each binary in it: the plugin's image, the
// refresher's, and the fleet installer's (whose plugin must be the same
// release).
func TestReleaseImageRunsInContainerd(t *testing.T) {
	requireNode(t)
	dir, version := releaseDist(t)
	n := startNode(t, sharedArtifacts(t), "release.invalid", "127.0.0.1:1")
	imported := map[string]bool{}
	for _, img := range []struct{ file, ref, binary, arg, want string }{
		{"ecr-credential-provider-image.oci.tar", "ghcr.io/kubecred/ecr-credential-provider:" + version, "/ecr-credential-provider", "version", "ecr-credential-provider " + version},
		{"ecr-pull-secrets-image.oci.tar", "ghcr.io/kubecred/ecr-pull-secrets:" + version, "/ecr-pull-secrets", "--version", "ecr-pull-secrets " + version},
		{"ecr-node-installer-image.oci.tar", "ghcr.io/kubecred/ecr-node-installer:" + version, "/ecr-node-installer", "version", "ecr-node-installer " + version},
		{"ecr-node-installer-image.oci.tar", "ghcr.io/kubecred/ecr-node-installer:" + version, "/ecr-credential-provider", "version", "ecr-credential-provider " + version},
	} {
		if !imported[img.file] {
			out, err := n.ctr("images", "import", filepath.Join(dir, img.file))
			if err != nil {
				t.Fatalf("ctr images import %s: %v\n%s", img.file, err, out)
			}
			if !n.hasImage(img.ref) {
				list, _ := n.ctr("images", "ls", "-q")
				t.Fatalf("containerd has no %s after the import; it has:\n%s", img.ref, list)
			}
			imported[img.file] = true
		}
		// ctr makes the container's stdio FIFOs; the default
		// /run/containerd/fifo is another directory inside the node's
		// namespace than out here.
		got, err := n.ctr("run", "--rm", "--fifo-dir", filepath.Join(n.dir, "tmp"), img.ref, "release-version", img.binary, img.arg)
		if err != nil || got != img.want+"\n" {
			t.Errorf("ctr run %s %s %s: %v, printed %q", img.ref, img.binary, img.arg, err, got)
		}
	}
}
