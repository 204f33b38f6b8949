package linuxpkg_test

import (
	"bytes"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	rpmutils "github.com/sassoftware/go-rpmutils"

	"github.com/kubecred/ecr-credential-provider/release/internal/linuxpkg"
	"github.com/kubecred/ecr-credential-provider/release/internal/testenv"
)

var commitTime = time.Unix(1764500000, 0).UTC()

func TestVersion(t *testing.T) {
	tests := []struct{ describe, want string }{
		{"v1.2.3", "1.2.3"},
		{"v1.2.3-4-gabc1234", "1.2.3+git4.gabc1234"},
		{"v1.2.3-4-gabc1234-dirty", "1.2.3+git4.gabc1234.dirty"},
		{"v1.2.3-rc.1", "1.2.3+gitrc.1"},
		{"e41f6b3", "0.0.0+gite41f6b3"},
		{"e41f6b3-dirty", "0.0.0+gite41f6b3.dirty"},
		{"0089d52", "0.0.0+git0089d52"},
		{"1234567", "0.0.0+git1234567"},
		{"v2", "2"},
	}
	for _, tt := range tests {
		if got := linuxpkg.Version(tt.describe); got != tt.want {
			t.Errorf("Version(%q) = %q, want %q", tt.describe, got, tt.want)
		}
	}
}

// build packages a stand-in binary whose content names the version, so an
// upgrade can be seen to replace it.
func build(t *testing.T, out, arch, version string) (deb, rpm string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ecr-credential-provider")
	if err := os.WriteFile(bin, []byte("binary of "+version+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	paths, err := linuxpkg.Build(linuxpkg.Options{Binary: bin, Arch: arch, Version: version,
		Config: []byte("# recommended config of " + version + "\n"), Time: commitTime, Out: out})
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 2 || !strings.HasSuffix(paths[0], ".deb") || !strings.HasSuffix(paths[1], ".rpm") {
		t.Fatalf("wrote %v, want a deb and an rpm", paths)
	}
	return paths[0], paths[1]
}

func TestRPMMetadata(t *testing.T) {
	for arch, rpmArch := range map[string]string{"amd64": "x86_64", "arm64": "aarch64"} {
		t.Run(arch, func(t *testing.T) {
			_, path := build(t, t.TempDir(), arch, "v1.2.3-4-gabc1234")
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			hdr, err := rpmutils.ReadHeader(f)
			if err != nil {
				t.Fatal(err)
			}
			nevra, err := hdr.GetNEVRA()
			if err != nil {
				t.Fatal(err)
			}
			if nevra.Name != "ecr-credential-provider" || nevra.Version != "1.2.3+git4.gabc1234" || nevra.Arch != rpmArch {
				t.Errorf("NEVRA %+v", nevra)
			}
			if filepath.Base(path) != "ecr-credential-provider-1.2.3+git4.gabc1234-1."+rpmArch+".rpm" {
				t.Errorf("file name %s", filepath.Base(path))
			}
			if lic, _ := hdr.GetString(rpmutils.LICENSE); lic != "Apache-2.0" {
				t.Errorf("license %q", lic)
			}
			if bt, _ := hdr.GetInt(rpmutils.BUILDTIME); int64(bt) != commitTime.Unix() {
				t.Errorf("build time %d, want the commit time %d", bt, commitTime.Unix())
			}
			fis, err := hdr.GetFiles()
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]rpmutils.FileInfo{}
			for _, fi := range fis {
				got[fi.Name()] = fi
			}
			bin, cfg := got[linuxpkg.BinaryPath], got[linuxpkg.ConfigPath]
			if bin == nil || cfg == nil {
				t.Fatalf("files %v, want the binary and the config", slices.Sorted(maps.Keys(got)))
			}
			if bin.Mode()&0o777 != 0o755 || bin.Flags()&rpmutils.RPMFILE_CONFIG != 0 || bin.UserName() != "root" {
				t.Errorf("binary: mode %o flags %b owner %s", bin.Mode(), bin.Flags(), bin.UserName())
			}
			const noreplace = rpmutils.RPMFILE_CONFIG | rpmutils.RPMFILE_NOREPLACE
			if cfg.Flags()&noreplace != noreplace || cfg.Mode()&0o777 != 0o644 {
				t.Errorf("config: flags %b, want %%config(noreplace); mode %o", cfg.Flags(), cfg.Mode())
			}
			if int64(bin.Mtime()) != commitTime.Unix() || int64(cfg.Mtime()) != commitTime.Unix() {
				t.Errorf("mtimes %d %d, want the commit time", bin.Mtime(), cfg.Mtime())
			}
		})
	}
}

func TestReproducible(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	debA, rpmA := build(t, a, "arm64", "v1.2.3")
	// Let the clock move: nothing of the build time may get in.
	time.Sleep(1100 * time.Millisecond)
	debB, rpmB := build(t, b, "arm64", "v1.2.3")
	for _, pair := range [][2]string{{debA, debB}, {rpmA, rpmB}} {
		x, _ := os.ReadFile(pair[0])
		y, _ := os.ReadFile(pair[1])
		if len(x) == 0 || !bytes.Equal(x, y) {
			t.Errorf("%s differs between two builds of the same input", filepath.Base(pair[0]))
		}
	}
}

// The deb installs into a fresh dpkg root, lists its files, and an upgrade
// replaces the binary but keeps the operator's edit of the config.
func TestDebInstallAndUpgradeKeepsConfigEdit(t *testing.T) {
	dpkg := testenv.Need(t, "dpkg", "dpkg", "deb install, dpkg -L and the upgrade keeping an edited config")
	out := t.TempDir()
	v1, _ := build(t, out, "amd64", "v1.0.0")
	v2, _ := build(t, out, "amd64", "v1.1.0")
	root := t.TempDir()
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"var/lib/dpkg/status", "var/lib/dpkg/available"} {
		if err := os.WriteFile(filepath.Join(root, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(dpkg, append([]string{"--root=" + root, "--force-not-root", "--force-script-chrootless"}, args...)...)
		// dpkg looks for its helpers (ldconfig, start-stop-daemon) on PATH.
		cmd.Env = append(os.Environ(), "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("dpkg %v: %v\n%s", args, err, b)
		}
		return string(b)
	}
	run("-i", v1)
	listed := strings.Fields(run("-L", linuxpkg.Name))
	for _, want := range []string{linuxpkg.BinaryPath, linuxpkg.ConfigPath} {
		if !slices.Contains(listed, want) {
			t.Errorf("dpkg -L lists %v, missing %s", listed, want)
		}
	}
	if conf := run("-s", linuxpkg.Name); !strings.Contains(conf, "Conffiles:\n "+linuxpkg.ConfigPath) || !strings.Contains(conf, "Version: 1.0.0-1") {
		t.Errorf("dpkg -s:\n%s\nwant version 1.0.0-1 and the config as a conffile", conf)
	}
	binPath, cfgPath := filepath.Join(root, linuxpkg.BinaryPath), filepath.Join(root, linuxpkg.ConfigPath)
	if b, _ := os.ReadFile(binPath); string(b) != "binary of v1.0.0\n" {
		t.Fatalf("installed binary %q", b)
	}
	if fi, err := os.Stat(binPath); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("binary %v %v, want mode 0755", fi, err)
	}
	const edited = "# the operator's config\n"
	if err := os.WriteFile(cfgPath, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	run("--force-confold", "-i", v2)
	if b, _ := os.ReadFile(cfgPath); string(b) != edited {
		t.Errorf("after the upgrade the config is %q, want the operator's edit", b)
	}
	if b, _ := os.ReadFile(binPath); string(b) != "binary of v1.1.0\n" {
		t.Errorf("after the upgrade the binary is %q, want v1.1.0's", b)
	}
	if st := run("-s", linuxpkg.Name); !strings.Contains(st, "Version: 1.1.0-1") {
		t.Errorf("dpkg -s after the upgrade:\n%s", st)
	}
}
