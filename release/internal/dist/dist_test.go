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
	"github.com/kubecred/ecr-credential-provider/internal/buildflags"
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

// linuxBinaries are the release's linux binaries of p, by architecture.
func linuxBinaries(p build.Program) map[string]string {
	m := map[string]string{}
	for _, b := range result.Binaries {
		if b.Program == p && b.Target.OS == "linux" {
			m[b.Target.Arch] = filepath.Join(out, b.File)
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
	for _, b := range []string{"ecr-credential-provider-linux-amd64", "ecr-credential-provider-linux-arm64", "ecr-credential-provider-windows-amd64.exe",
		"ecr-pull-secrets-linux-amd64", "ecr-pull-secrets-linux-arm64", "ecr-node-installer-linux-amd64", "ecr-node-installer-linux-arm64"} {
		want = append(want, b, b+".sha256", b+".sbom.cdx.json")
	}
	want = append(want, "ecr-credential-provider-9.8.7+gittest-1.aarch64.rpm", "ecr-credential-provider-9.8.7+gittest-1.x86_64.rpm",
		"ecr-credential-provider-image.oci.tar", "ecr-pull-secrets-image.oci.tar", dist.NodeInstallerImageFile, "ecr-credential-provider_9.8.7+gittest-1_amd64.deb", "ecr-credential-provider_9.8.7+gittest-1_arm64.deb")
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
	for _, b := range result.Binaries {
		if b.Target.OS != "linux" {
			continue // TestWindowsStatic reads the PE
		}
		arch, path := b.Target.Arch, filepath.Join(out, b.File)
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

// The plugin is built with the tags of internal/buildflags on every target,
// which leave net/http's HTTP/2 client out of it; the refresher and the node
// installer keep theirs, as client-go multiplexes watches over HTTP/2.
func TestPluginLeavesHTTP2Out(t *testing.T) {
	h2 := []byte("http2: client connection lost")
	for _, b := range result.Binaries {
		path := filepath.Join(out, b.File)
		info, err := buildinfo.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		tags := ""
		for _, s := range info.Settings {
			if s.Key == "-tags" {
				tags = s.Value
			}
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		hasH2 := bytes.Contains(data, h2)
		if b.Program == build.Plugin {
			if tags != buildflags.Tags || hasH2 {
				t.Errorf("%s: built with -tags=%q (want %q), HTTP/2 client linked: %v", b.File, tags, buildflags.Tags, hasH2)
			}
		} else if tags != "" || !hasH2 {
			t.Errorf("%s: built with -tags=%q (want none), HTTP/2 client linked: %v (want true)", b.File, tags, hasH2)
		}
	}
}

// The Windows binary is a console PE for x86-64 that links no C runtime:
// only the kernel32.dll entry points every Go program loads the rest with,
// as a cgo build would add msvcrt's or the MinGW runtime's.
func TestWindowsStatic(t *testing.T) {
	var name string
	for _, b := range result.Binaries {
		if b.Target == (build.Target{OS: "windows", Arch: "amd64"}) {
			if b.Program.Name != build.Plugin.Name {
				t.Errorf("%s is built for Windows; only the plugin is", b.File)
			}
			name = b.File
		}
	}
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
	for _, rb := range result.Binaries {
		// Every plugin binary (what nodes run); of the cluster-side
		// programs, which compile client-go from nothing here, the amd64
		// build: one rebuild of each costs minutes on two cores.
		if rb.Program != build.Plugin && rb.Target != (build.Target{OS: "linux", Arch: "amd64"}) {
			continue
		}
		path, err := build.Binary(context.Background(), build.Options{Source: copyDir, Out: again, Version: version, Program: rb.Program}, rb.Target)
		if err != nil {
			t.Fatal(err)
		}
		a, _ := os.ReadFile(filepath.Join(out, rb.File))
		b, _ := os.ReadFile(path)
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("%s: the build in %s differs from the release's", rb.File, copyDir)
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
	for _, b := range result.Binaries {
		name := b.File
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
	for _, b := range result.Binaries {
		name := b.File
		mainModule, want := testenv.GoVersionModules(t, filepath.Join(out, name), version)
		if len(want) < 5 {
			t.Fatalf("%s: go version -m shows only %d modules", name, len(want))
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
			t.Errorf("%s: the SBOM lists %d modules, go version -m %d", name, len(got), len(want))
		}
		for p, v := range want {
			if got[p] != v {
				t.Errorf("%s: go version -m shows %s %s, the SBOM %q", name, p, v, got[p])
			}
		}
		wantMain := map[string]string{build.Plugin.Name: "github.com/kubecred/ecr-credential-provider",
			build.Refresher.Name:     "github.com/kubecred/ecr-credential-provider/refresher",
			build.NodeInstaller.Name: "github.com/kubecred/ecr-credential-provider/fleet"}[b.Program.Name]
		if m := bom.Metadata.Component; m.Name != wantMain || m.Name != mainModule || m.Version != version {
			t.Errorf("%s: the SBOM describes %s %s, want %s %s", name, m.Name, m.Version, wantMain, version)
		}
	}
}

func TestVersionAndConfigPrint(t *testing.T) {
	bin := linuxBinaries(build.Plugin)["amd64"]
	got, err := exec.Command(bin, "--version").Output()
	if err != nil || string(got) != "ecr-credential-provider "+version+"\n" {
		t.Errorf("--version: %v %q", err, got)
	}
	got, err = exec.Command(linuxBinaries(build.NodeInstaller)["amd64"], "version").Output()
	if err != nil || string(got) != "ecr-node-installer "+version+"\n" {
		t.Errorf("ecr-node-installer version: %v %q", err, got)
	}
	got, err = exec.Command(linuxBinaries(build.Refresher)["amd64"], "--version").Output()
	if err != nil || string(got) != "ecr-pull-secrets "+version+"\n" {
		t.Errorf("ecr-pull-secrets --version: %v %q", err, got)
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
		if released, _ := os.ReadFile(linuxBinaries(build.Plugin)[arch]); !bytes.Equal(binary, released) {
			t.Errorf("%s does not ship the released %s binary", p, arch)
		}
	}
}

func TestImageHoldsTheReleasedBinaries(t *testing.T) {
	for _, tc := range []struct {
		file, name, path string
		program          build.Program
	}{
		{result.Image, image.DefaultRepository + ":" + version, image.BinaryPath, build.Plugin},
		{result.RefresherImage, dist.DefaultRefresherRepository + ":" + version, "/ecr-pull-secrets", build.Refresher},
	} {
		entry, byArch, err := image.Load(filepath.Join(out, tc.file), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if got := entry.Annotations["io.containerd.image.name"]; got != tc.name {
			t.Errorf("%s names itself %q, want %q", tc.file, got, tc.name)
		}
		bins := linuxBinaries(tc.program)
		if len(byArch) != len(bins) {
			t.Fatalf("%s: the index has %d platforms, the release %d linux binaries", tc.file, len(byArch), len(bins))
		}
		for arch, img := range byArch {
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cf.OS != "linux" || cf.Architecture != arch || fmt.Sprint(cf.Config.Entrypoint) != "["+tc.path+"]" {
				t.Fatalf("%s linux/%s's config says %s/%s, entrypoint %q", tc.file, arch, cf.OS, cf.Architecture, cf.Config.Entrypoint)
			}
			// The binary alone: nothing else in the image.
			files, err := image.Files(img)
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(bins[cf.Architecture])
			if err != nil {
				t.Fatal(err)
			}
			if len(files) != 1 || sha256.Sum256(files[tc.path]) != sha256.Sum256(want) {
				t.Errorf("%s %s: the image holds %d files, its %s is not dist/'s binary", tc.file, arch, len(files), tc.path)
			}
		}
	}
}

// The fleet installer's image holds the installer as its entrypoint and
// the released plugin binary it installs, and nothing else.
func TestNodeInstallerImage(t *testing.T) {
	entry, byArch, err := image.Load(filepath.Join(out, result.NodeInstallerImage), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := entry.Annotations["io.containerd.image.name"], dist.DefaultNodeInstallerRepository+":"+version; got != want {
		t.Errorf("the image names itself %q, want %q", got, want)
	}
	installers, plugins := linuxBinaries(build.NodeInstaller), linuxBinaries(build.Plugin)
	if len(byArch) != 2 || len(installers) != 2 {
		t.Fatalf("the index has %d platforms, the release %d installer binaries", len(byArch), len(installers))
	}
	for arch, img := range byArch {
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(cf.Config.Entrypoint) != "[/ecr-node-installer]" {
			t.Errorf("linux/%s: entrypoint %q", arch, cf.Config.Entrypoint)
		}
		files, err := image.Files(img)
		if err != nil {
			t.Fatal(err)
		}
		if len(files) != 2 {
			t.Errorf("linux/%s: the image holds %d files, want the installer and the plugin", arch, len(files))
		}
		for path, bin := range map[string]string{"/ecr-node-installer": installers[arch], image.BinaryPath: plugins[arch]} {
			want, err := os.ReadFile(bin)
			if err != nil {
				t.Fatal(err)
			}
			if sha256.Sum256(files[path]) != sha256.Sum256(want) {
				t.Errorf("linux/%s: %s is not dist/'s %s", arch, path, filepath.Base(bin))
			}
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
		cmd := exec.Command(qemu, linuxBinaries(build.Plugin)["arm64"], "get-credentials")
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

// The chart's default image is the one the release builds.
func TestChartDefaultsToTheRefresherImage(t *testing.T) {
	values, err := os.ReadFile(filepath.Join(source, "deploy", "charts", "ecr-pull-secrets", "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(values), "\n  repository: "+dist.DefaultRefresherRepository+"\n") {
		t.Errorf("the chart's values.yaml does not default image.repository to %s", dist.DefaultRefresherRepository)
	}
}

func TestChartDefaultsToTheNodeInstallerImage(t *testing.T) {
	values, err := os.ReadFile(filepath.Join(source, "deploy", "charts", "ecr-credential-provider", "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(values), "\n  repository: "+dist.DefaultNodeInstallerRepository+"\n") {
		t.Errorf("the chart's values.yaml does not default image.repository to %s", dist.DefaultNodeInstallerRepository)
	}
}
