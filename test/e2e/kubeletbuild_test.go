package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// kubeletCacheDir holds built kubelets by version, outside the checkout so
// a fresh clone reuses them: ${XDG_CACHE_HOME:-$HOME/.cache}/ecr-credential-provider-e2e.
func kubeletCacheDir() (string, error) {
	if d := os.Getenv("E2E_CACHE_DIR"); d != "" {
		return d, nil
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(base, "ecr-credential-provider-e2e"), nil
}

var kubeletVersionRE = regexp.MustCompile(`^v1\.(\d+)\.(\d+)$`)

// kubeletBinary returns the path of a kubelet of the given version, building
// it from the k8s.io/kubernetes module the first time. Concurrent test runs
// serialize on a lock file, and the binary appears atomically, so a killed
// build never leaves a half-written kubelet behind.
func kubeletBinary(t *testing.T, version string) string {
	t.Helper()
	if !kubeletVersionRE.MatchString(version) {
		t.Fatalf("kubelet version %q: want the form v1.MINOR.PATCH", version)
	}
	dir, err := kubeletCacheDir()
	if err != nil {
		t.Fatalf("kubelet cache: %v", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("kubelet cache: %v", err)
	}
	bin := filepath.Join(dir, "kubelet-"+version)
	if isExecutable(bin) {
		return bin
	}
	lock, err := os.OpenFile(bin+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatalf("kubelet cache lock: %v", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("kubelet cache lock: %v", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing releases it anyway
	if isExecutable(bin) {                               // another run built it while we waited
		return bin
	}
	start := time.Now()
	t.Logf("building kubelet %s from k8s.io/kubernetes (about 10 minutes the first time; cached at %s after)", version, bin)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	if err := buildKubelet(ctx, dir, version, bin); err != nil {
		t.Fatalf("building kubelet %s: %v", version, err)
	}
	t.Logf("built kubelet %s in %s (cached at %s)", version, time.Since(start).Round(time.Second), bin)
	return bin
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// buildKubelet builds cmd/kubelet in a throwaway module. The kubernetes
// go.mod points its staging modules (k8s.io/api, k8s.io/client-go, ...) at
// ./staging, which a module consumer can't see, so the throwaway module
// replaces each of them with its published v0.MINOR.PATCH twin.
func buildKubelet(ctx context.Context, cacheDir, version, dst string) error {
	work, err := os.MkdirTemp(cacheDir, "build-"+version+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	env := append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=-mod=mod -buildvcs=false")
	goCmd := func(args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = work
		cmd.Env = env
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, tail(stderr.String(), 40))
		}
		return out, nil
	}
	if err := os.WriteFile(filepath.Join(work, "go.mod"), []byte("module kubeletbuild\n"), 0o644); err != nil {
		return err
	}
	out, err := goCmd("mod", "download", "-json", "k8s.io/kubernetes@"+version)
	if err != nil {
		return err
	}
	var dl struct{ GoMod, Error string }
	if err := json.Unmarshal(out, &dl); err != nil {
		return fmt.Errorf("go mod download: %v", err)
	}
	if dl.Error != "" {
		return fmt.Errorf("go mod download k8s.io/kubernetes@%s: %s", version, dl.Error)
	}
	staging, goVersion, err := stagingModules(dl.GoMod)
	if err != nil {
		return err
	}
	m := kubeletVersionRE.FindStringSubmatch(version)
	stagingVersion := "v0." + m[1] + "." + m[2]
	var mod strings.Builder
	fmt.Fprintf(&mod, "module kubeletbuild\n\ngo %s\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n", goVersion, version)
	for _, p := range staging {
		fmt.Fprintf(&mod, "\t%s => %s %s\n", p, p, stagingVersion)
	}
	mod.WriteString(")\n")
	if err := os.WriteFile(filepath.Join(work, "go.mod"), []byte(mod.String()), 0o644); err != nil {
		return err
	}
	// The version stamps make `kubelet --version` and the kubelet's own
	// logs tell which build ran.
	pkg := "k8s.io/component-base/version"
	ldflags := fmt.Sprintf("-s -w -X %[1]s.gitVersion=%[2]s -X %[1]s.gitMajor=1 -X %[1]s.gitMinor=%[3]s -X %[1]s.gitTreeState=clean",
		pkg, version, m[1])
	tmp := filepath.Join(work, "kubelet")
	if _, err := goCmd("build", "-ldflags", ldflags, "-o", tmp, "k8s.io/kubernetes/cmd/kubelet"); err != nil {
		return err
	}
	// Same directory as dst, so the rename is atomic.
	return os.Rename(tmp, dst)
}

// stagingModules lists the modules the kubernetes go.mod replaces with
// ./staging paths, and its go directive.
func stagingModules(goModPath string) (mods []string, goVersion string, err error) {
	f, err := os.Open(goModPath)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	stagingRE := regexp.MustCompile(`^\s*(?:replace\s+)?(k8s\.io/\S+)\s+=>\s+\./staging/`)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "go ") {
			goVersion = strings.TrimSpace(strings.TrimPrefix(line, "go "))
		}
		if m := stagingRE.FindStringSubmatch(line); m != nil {
			mods = append(mods, m[1])
		}
	}
	if err := sc.Err(); err != nil {
		return nil, "", err
	}
	if len(mods) == 0 || goVersion == "" {
		return nil, "", fmt.Errorf("%s: found no staging replaces or go directive", goModPath)
	}
	return mods, goVersion, nil
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
