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
// it from the k8s.io/kubernetes module the first time.
func kubeletBinary(t *testing.T, version string) string {
	t.Helper()
	return cachedBinaries(t, version, "kubelet-"+version, map[string]string{"kubelet": "k8s.io/kubernetes/cmd/kubelet"})["kubelet"]
}

// controlPlaneCommands are the programs of a control plane, by the package
// they are built from. etcd is the version the kubernetes go.mod pins, so
// it is cached under the kubernetes version too.
var controlPlaneCommands = map[string]string{
	"etcd":                    "go.etcd.io/etcd/server/v3",
	"kube-apiserver":          "k8s.io/kubernetes/cmd/kube-apiserver",
	"kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
	"kube-scheduler":          "k8s.io/kubernetes/cmd/kube-scheduler",
	"kubelet":                 "k8s.io/kubernetes/cmd/kubelet",
}

// controlPlaneBinaries returns the paths of the control plane programs
// (and the kubelet) of version, by name, building all that are missing in
// one go build the first time: they share most of their packages, so one
// build costs little more than the largest of them.
func controlPlaneBinaries(t *testing.T, version string) map[string]string {
	t.Helper()
	return cachedBinaries(t, version, "control-plane-"+version, controlPlaneCommands)
}

// cachedBinaries returns the paths of the programs of version (name ->
// package), cached as NAME-VERSION, building the missing ones in one go
// build. Concurrent test runs serialize on lockName's lock file, and each
// binary appears atomically, so a killed build never leaves a
// half-written one behind.
func cachedBinaries(t *testing.T, version, lockName string, commands map[string]string) map[string]string {
	t.Helper()
	if !kubeletVersionRE.MatchString(version) {
		t.Fatalf("kubernetes version %q: want the form v1.MINOR.PATCH", version)
	}
	dir, err := kubeletCacheDir()
	if err != nil {
		t.Fatalf("binary cache: %v", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("binary cache: %v", err)
	}
	bins := map[string]string{}
	missing := func() map[string]string {
		m := map[string]string{}
		for name, pkg := range commands {
			bins[name] = filepath.Join(dir, name+"-"+version)
			if !isExecutable(bins[name]) {
				m[pkg] = bins[name]
			}
		}
		return m
	}
	if len(missing()) == 0 {
		return bins
	}
	lock, err := os.OpenFile(filepath.Join(dir, lockName+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatalf("binary cache lock: %v", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("binary cache lock: %v", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing releases it anyway
	targets := missing()                                 // another run may have built some while we waited
	if len(targets) == 0 {
		return bins
	}
	start := time.Now()
	t.Logf("building %s %s from k8s.io/kubernetes (about 10 minutes each the first time on a quiet 2-core machine; cached in %s after)", lockName, version, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	if err := buildK8s(ctx, dir, version, targets); err != nil {
		t.Fatalf("building %s: %v", lockName, err)
	}
	t.Logf("built %d programs of %s in %s (cached in %s)", len(targets), version, time.Since(start).Round(time.Second), dir)
	return bins
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// buildK8s builds the main packages of targets (package path -> cached
// binary path) in one `go build` in a throwaway module, so they share one
// compilation of what they have in common. The kubernetes go.mod points
// its staging modules (k8s.io/api, k8s.io/client-go, ...) at ./staging,
// which a module consumer can't see, so the throwaway module replaces each
// of them with its published v0.MINOR.PATCH twin.
func buildK8s(ctx context.Context, cacheDir, version string, targets map[string]string) error {
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
	outDir := filepath.Join(work, "out")
	args := []string{"build", "-ldflags", ldflags, "-o", outDir + "/"}
	for pkg := range targets {
		args = append(args, pkg)
	}
	if err := os.Mkdir(outDir, 0o755); err != nil {
		return err
	}
	if _, err := goCmd(args...); err != nil {
		return err
	}
	for pkg, dst := range targets {
		// Same file system as dst, so each rename is atomic.
		if err := os.Rename(filepath.Join(outDir, execName(pkg)), dst); err != nil {
			return err
		}
	}
	return nil
}

// execName is the file name go build gives the binary of pkg: its last
// path element, or the one before a major version suffix (etcd's
// go.etcd.io/etcd/server/v3 builds "server").
func execName(pkg string) string {
	elems := strings.Split(pkg, "/")
	last := elems[len(elems)-1]
	if len(elems) > 1 && regexp.MustCompile(`^v[2-9][0-9]*$`).MatchString(last) {
		return elems[len(elems)-2]
	}
	return last
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
