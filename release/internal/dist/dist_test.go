package dist_test

// These tests make one real release of this checkout, as make release does,
// and check it the way an operator (or a distribution's reviewer) would.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/buildinfo"
	"debug/elf"
	"debug/pe"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
	rpmutils "github.com/sassoftware/go-rpmutils"

	"github.com/kubecred/ecr-credential-provider/internal/awsemu"
	"github.com/kubecred/ecr-credential-provider/release/internal/build"
	"github.com/kubecred/ecr-credential-provider/release/internal/checksum"
	"github.com/kubecred/ecr-credential-provider/release/internal/dist"
	"github.com/kubecred/ecr-credential-provider/release/internal/image"
	"github.com/kubecred/ecr-credential-provider/release/internal/linuxpkg"
	"github.com/kubecred/ecr-credential-provider/release/internal/testenv"
)

const (
	version = "v9.8.7-test"
	// The main module's checkout, from this package's directory.
	source = "../../.."
)

var (
	commitTime = time.Unix(1764500000, 0).UTC()
	out        string
	result     *dist.Result
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "dist-test-")
	if err != nil {
		panic(err)
	}
	out = filepath.Join(dir, "dist")
	result, err = dist.Run(context.Background(), dist.Options{Source: source, Out: out, Version: version, Time: commitTime})
	if err != nil {
		fmt.Fprintln(os.Stderr, "make the release:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func linuxBinaries() map[string]string {
	m := map[string]string{}
	for t, name := range result.Binaries {
		if t.OS == "linux" {
			m[t.Arch] = filepath.Join(out, name)
		}
	}
	return m
}

func TestLayout(t *testing.T) {
	var names []string
	entries, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{dist.SumsFile}
	for _, b := range []string{"ecr-credential-provider-linux-amd64", "ecr-credential-provider-linux-arm64", "ecr-credential-provider-windows-amd64.exe"} {
		want = append(want, b, b+".sha256", b+".sbom.cdx.json")
	}
	want = append(want, "ecr-credential-provider-9.8.7+gittest-1.aarch64.rpm", "ecr-credential-provider-9.8.7+gittest-1.x86_64.rpm",
		"ecr-credential-provider-image.oci.tar", "ecr-credential-provider_9.8.7+gittest-1_amd64.deb", "ecr-credential-provider_9.8.7+gittest-1_arm64.deb")
	for _, w := range want {
		if _, err := os.Stat(filepath.Join(out, w)); err != nil {
			t.Errorf("dist/ lacks %s (has %v)", w, names)
		}
	}
	if len(names) != len(want) {
		t.Errorf("dist/ holds %v, want exactly %v", names, want)
	}
}

func TestStatic(t *testing.T) {
	for arch, path := range linuxBinaries() {
		f, err := elf.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		wantMachine := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]
		if f.Machine != wantMachine {
			t.Errorf("%s: machine %v, want %v", arch, f.Machine, wantMachine)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("%s: has an ELF interpreter: dynamically linked", arch)
			}
		}
		libs, err := f.ImportedLibraries()
		if err != nil {
			t.Fatal(err)
		}
		if len(libs) != 0 {
			t.Errorf("%s: needs shared libraries %v", arch, libs)
		}
	}
}

// The Windows binary is a console PE for x86-64 that links no C runtime:
// only the kernel32.dll entry points every Go program loads the rest with,
// as a cgo build would add msvcrt's or the MinGW runtime's.
func TestWindowsStatic(t *testing.T) {
	name := result.Binaries[build.Target{OS: "windows", Arch: "amd64"}]
	if name != "ecr-credential-provider-windows-amd64.exe" {
		t.Fatalf("the release has no windows/amd64 binary (binaries: %v)", result.Binaries)
	}
	path := filepath.Join(out, name)
	f, err := pe.Open(path)
	if err != nil {
		t.Fatalf("%s is not a PE file: %v", name, err)
	}
	defer f.Close()
	if f.Machine != pe.IMAGE_FILE_MACHINE_AMD64 {
		t.Errorf("machine %#x, want AMD64 (%#x)", f.Machine, pe.IMAGE_FILE_MACHINE_AMD64)
	}
	if oh, ok := f.OptionalHeader.(*pe.OptionalHeader64); !ok || oh.Subsystem != pe.IMAGE_SUBSYSTEM_WINDOWS_CUI {
		t.Errorf("optional header %T: not a 64-bit console program", f.OptionalHeader)
	}
	syms, err := f.ImportedSymbols()
	if err != nil {
		t.Fatal(err)
	}
	dlls := map[string]bool{}
	for _, s := range syms {
		_, dll, _ := strings.Cut(s, ":")
		dlls[strings.ToLower(dll)] = true
	}
	if len(dlls) != 1 || !dlls["kernel32.dll"] {
		t.Errorf("imports from %v, want kernel32.dll alone", dlls)
	}
	info, err := buildinfo.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	for k, v := range map[string]string{"GOOS": "windows", "GOARCH": "amd64", "CGO_ENABLED": "0", "-trimpath": "true"} {
		if settings[k] != v {
			t.Errorf("build setting %s=%q, want %q", k, settings[k], v)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(version)) {
		t.Errorf("%s does not hold the version %s its 'version' would print", name, version)
	}
}

// The Windows binary is built and checked above but runs here only where
// wine is installed: Debian's wine64 is about 670 MB installed, so neither
// make e2e-deps nor CI installs it, and this says so rather than passing.
func TestWindowsRunsUnderWine(t *testing.T) {
	wine, err := exec.LookPath("wine64")
	if err != nil {
		if wine, err = exec.LookPath("wine"); err != nil {
			t.Skip("wine is not installed (apt-get install wine64): the windows/amd64 binary is built and checked " +
				"(PE, static, reproducible, checksum, SBOM) but NOT executed")
		}
	}
	cmd := exec.Command(wine, filepath.Join(out, "ecr-credential-provider-windows-amd64.exe"), "version")
	cmd.Env = append(os.Environ(), "WINEPREFIX="+t.TempDir(), "WINEDEBUG=-all")
	got, err := cmd.Output()
	if err != nil || !strings.HasPrefix(strings.ReplaceAll(string(got), "\r\n", "\n"), "ecr-credential-provider "+version+"\n") {
		t.Errorf("wine ... version: %v %q", err, got)
	}
}

// Building again from a copy of the checkout in another directory, with an
// empty build cache, gives the same bytes.
func TestReproducible(t *testing.T) {
	copyDir := filepath.Join(t.TempDir(), "elsewhere", "src")
	files, err := exec.Command("git", "-C", source, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range strings.Split(strings.TrimRight(string(files), "\x00"), "\x00") {
		data, err := os.ReadFile(filepath.Join(source, name))
		if os.IsNotExist(err) { // deleted in the work tree
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(copyDir, name)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("GOCACHE", t.TempDir())
	again := t.TempDir()
	for target, name := range result.Binaries {
		path, err := build.Binary(context.Background(), build.Options{Source: copyDir, Out: again, Version: version}, target)
		if err != nil {
			t.Fatal(err)
		}
		a, _ := os.ReadFile(filepath.Join(out, name))
		b, _ := os.ReadFile(path)
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("%s: the build in %s differs from the release's", target, copyDir)
		}
	}
}

func TestChecksums(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(out, dist.SumsFile))
	if err != nil {
		t.Fatal(err)
	}
	sums, err := checksum.Parse(string(data))
	if err != nil {
		t.Fatal(err)
	}
	if len(sums) != len(result.Artifacts) {
		t.Errorf("SHA256SUMS lists %d files, the release has %d artifacts", len(sums), len(result.Artifacts))
	}
	for _, a := range result.Artifacts {
		content, err := os.ReadFile(filepath.Join(out, a))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(content)
		if sums[a] != hex.EncodeToString(sum[:]) {
			t.Errorf("%s: SHA256SUMS says %s, the file hashes to %x", a, sums[a], sum)
		}
	}
	// What the README tells operators to run.
	for _, name := range result.Binaries {
		cmd := exec.Command("sha256sum", "-c", name+".sha256")
		cmd.Dir = out
		if b, err := cmd.CombinedOutput(); err != nil || string(b) != name+": OK\n" {
			t.Errorf("sha256sum -c %s.sha256: %v %s", name, err, b)
		}
	}
	cmd := exec.Command("sha256sum", "-c", dist.SumsFile)
	cmd.Dir = out
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("sha256sum -c SHA256SUMS: %v\n%s", err, b)
	}
}

func TestSBOMListsWhatGoVersionShows(t *testing.T) {
	for target, name := range result.Binaries {
		shown, err := exec.Command("go", "version", "-m", filepath.Join(out, name)).CombinedOutput()
		if err != nil {
			t.Fatal(err, string(shown))
		}
		want := map[string]string{}
		for _, line := range strings.Split(string(shown), "\n") {
			if f := strings.Fields(line); len(f) >= 3 && f[0] == "dep" {
				want[f[1]] = f[2]
			}
		}
		if len(want) < 5 {
			t.Fatalf("%s: go version -m shows only %d modules:\n%s", target, len(want), shown)
		}
		var bom cdx.BOM
		data, err := os.ReadFile(filepath.Join(out, dist.SBOMFile(name)))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, &bom); err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, c := range *bom.Components {
			got[c.Name] = c.Version
		}
		if len(got) != len(want) {
			t.Errorf("%s: the SBOM lists %d modules, go version -m %d", target, len(got), len(want))
		}
		for p, v := range want {
			if got[p] != v {
				t.Errorf("%s: go version -m shows %s %s, the SBOM %q", target, p, v, got[p])
			}
		}
		if m := bom.Metadata.Component; m.Name != "github.com/kubecred/ecr-credential-provider" || m.Version != version {
			t.Errorf("%s: the SBOM describes %s %s", target, m.Name, m.Version)
		}
	}
}

func TestVersionAndConfigPrint(t *testing.T) {
	bin := linuxBinaries()["amd64"]
	got, err := exec.Command(bin, "--version").Output()
	if err != nil || string(got) != "ecr-credential-provider "+version+"\n" {
		t.Errorf("--version: %v %q", err, got)
	}
	// The packages ship what the binary prints as its recommended config.
	want, err := exec.Command(bin, "config", "print").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range result.Packages {
		if !strings.HasSuffix(p, ".rpm") {
			continue
		}
		f, err := os.Open(filepath.Join(out, p))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		rpm, err := rpmutils.ReadRpm(f)
		if err != nil {
			t.Fatal(err)
		}
		pr, err := rpm.PayloadReaderExtended()
		if err != nil {
			t.Fatal(err)
		}
		var config, binary []byte
		for {
			fi, err := pr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(pr)
			if err != nil {
				t.Fatal(err)
			}
			switch fi.Name() {
			case linuxpkg.ConfigPath:
				config = b
			case linuxpkg.BinaryPath:
				binary = b
			}
		}
		if !bytes.Equal(config, want) {
			t.Errorf("%s ships config\n%s\nwant what config print prints\n%s", p, config, want)
		}
		arch := map[bool]string{true: "arm64", false: "amd64"}[strings.Contains(p, "aarch64")]
		if released, _ := os.ReadFile(linuxBinaries()[arch]); !bytes.Equal(binary, released) {
			t.Errorf("%s does not ship the released %s binary", p, arch)
		}
	}
}

func TestImageHoldsTheReleasedBinaries(t *testing.T) {
	_, byArch, err := image.Load(filepath.Join(out, result.Image), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	bins := linuxBinaries()
	if len(byArch) != len(bins) {
		t.Fatalf("the index has %d platforms, the release %d linux binaries", len(byArch), len(bins))
	}
	for arch, img := range byArch {
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.OS != "linux" || cf.Architecture != arch {
			t.Fatalf("linux/%s's config says %s/%s", arch, cf.OS, cf.Architecture)
		}
		got, err := image.Binary(img)
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(bins[cf.Architecture])
		if err != nil {
			t.Fatal(err)
		}
		if sha256.Sum256(got) != sha256.Sum256(want) {
			t.Errorf("%s: the image's binary is not dist/'s", cf.Architecture)
		}
	}
}

// The arm64 binary, under user-mode qemu, fetches a token through the AWS
// SDK from the emulator and then answers the next call from its cache.
func TestArm64RunsUnderQemu(t *testing.T) {
	qemu := testenv.Need(t, "qemu-aarch64-static", "qemu-user-static", "the arm64 binary running a plugin call and a cache hit")
	emu, err := awsemu.Start(awsemu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Close)
	home := t.TempDir()
	env, err := emu.IsolatedEnv(home)
	if err != nil {
		t.Fatal(err)
	}
	env = append(env, "ECR_CREDENTIAL_PROVIDER_CACHE_DIR="+filepath.Join(home, "cache"))
	const host = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
	req := `{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":"` + host + `/team/app:1"}`
	call := func() {
		t.Helper()
		cmd := exec.Command(qemu, linuxBinaries()["arm64"], "get-credentials")
		cmd.Env = env
		cmd.Stdin = strings.NewReader(req)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("%v: %s", err, stderr.String())
		}
		var resp struct {
			Auth map[string]struct{ Username, Password string } `json:"auth"`
		}
		if err := json.Unmarshal(stdout.Bytes(), &resp); err != nil {
			t.Fatalf("stdout %q: %v", stdout.String(), err)
		}
		if a := resp.Auth[host]; a.Username != "AWS" || a.Password != emu.PasswordFor(emu.InstanceARN()) {
			t.Fatalf("auth for %v, want the node role's token for %s", mapKeys(resp.Auth), host)
		}
	}
	call()
	if n := emu.Stats().Op(awsemu.TargetECR, "GetAuthorizationToken").Requests; n != 1 {
		t.Fatalf("first call made %d GetAuthorizationToken calls, want 1", n)
	}
	call()
	if n := emu.Stats().Op(awsemu.TargetECR, "GetAuthorizationToken").Requests; n != 1 {
		t.Fatalf("the second call made a new GetAuthorizationToken call (%d in all): no cache hit", n)
	}
}

func mapKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
