package image_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kubecred/ecr-credential-provider/release/internal/image"
)

var commitTime = time.Unix(1764500000, 0).UTC()

func options(t *testing.T) image.Options {
	t.Helper()
	dir := t.TempDir()
	bins := map[string]string{}
	for _, arch := range []string{"arm64", "amd64"} {
		bins[arch] = filepath.Join(dir, arch)
		if err := os.WriteFile(bins[arch], []byte("binary for "+arch), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return image.Plugin(bins, "", "v1.2.3", commitTime)
}

func TestTarballStructure(t *testing.T) {
	o := options(t)
	tarball := filepath.Join(t.TempDir(), "image.tar")
	digest, err := image.WriteTarball(tarball, o)
	if err != nil {
		t.Fatal(err)
	}
	entry, byArch, err := image.Load(tarball, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if entry.MediaType != types.OCIImageIndex || entry.Digest != digest ||
		entry.Annotations["io.containerd.image.name"] != "ghcr.io/kubecred/ecr-credential-provider:v1.2.3" ||
		entry.Annotations["org.opencontainers.image.ref.name"] != "v1.2.3" {
		t.Fatalf("index.json entry %+v", entry)
	}
	if len(byArch) != 2 || byArch["amd64"] == nil || byArch["arm64"] == nil {
		t.Fatalf("index has %v, want amd64 and arm64", byArch)
	}
	for arch, img := range byArch {
		if mt, _ := img.MediaType(); mt != types.OCIManifestSchema1 {
			t.Errorf("%s: manifest media type %s", arch, mt)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.OS != "linux" || cf.Architecture != arch || len(cf.Config.Entrypoint) != 1 || cf.Config.Entrypoint[0] != image.BinaryPath ||
			!cf.Created.Time.Equal(commitTime) || cf.Config.Labels["org.opencontainers.image.version"] != "v1.2.3" {
			t.Errorf("%s: config %+v", arch, cf)
		}
		layers, err := img.Layers()
		if err != nil || len(layers) != 1 {
			t.Fatalf("%s: %d layers (%v), want one", arch, len(layers), err)
		}
		got, err := image.Binary(img)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := os.ReadFile(o.Files[0].Binaries[arch])
		if !bytes.Equal(got, want) {
			t.Errorf("%s: the layer holds %q, want that architecture's binary", arch, got)
		}
	}
}

func TestReproducible(t *testing.T) {
	o := options(t)
	a, b := filepath.Join(t.TempDir(), "a.tar"), filepath.Join(t.TempDir(), "b.tar")
	var digests [2]v1.Hash
	for i, p := range []string{a, b} {
		d, err := image.WriteTarball(p, o)
		if err != nil {
			t.Fatal(err)
		}
		digests[i] = d
		time.Sleep(1100 * time.Millisecond)
	}
	x, _ := os.ReadFile(a)
	y, _ := os.ReadFile(b)
	if digests[0] != digests[1] || len(x) == 0 || !bytes.Equal(x, y) {
		t.Fatalf("two builds of one input differ: %s %s", digests[0], digests[1])
	}
}

func TestRefusesIncompleteOptions(t *testing.T) {
	o := options(t)
	o.Time = time.Time{}
	if _, err := image.Index(o); err == nil {
		t.Fatal("built an image with no timestamp to make it reproducible")
	}
}

// The plugin's image is byte for byte what it was before images could hold
// several files: this digest is the fixture's as the one-file builder made
// it. A change here changes every released plugin image's digest.
func TestPluginImageUnchanged(t *testing.T) {
	d, err := image.WriteTarball(filepath.Join(t.TempDir(), "image.tar"), options(t))
	if err != nil {
		t.Fatal(err)
	}
	if want := "sha256:e9d5c6a82f2dfa04c55fafd1507e4f229072ef2231bc9ec25a88b4431e2e543e"; d.String() != want {
		t.Errorf("the plugin image's digest is %s, was %s", d, want)
	}
}

func TestSeveralFilesAndEntrypoint(t *testing.T) {
	dir := t.TempDir()
	bin := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(name), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	o := image.Options{
		Files: []image.File{
			{Path: "/ecr-pull-secrets", Binaries: map[string]string{"amd64": bin("a-amd64"), "arm64": bin("a-arm64")}},
			{Path: "/usr/bin/helper", Binaries: map[string]string{"amd64": bin("b-amd64"), "arm64": bin("b-arm64")}},
		},
		Entrypoint: []string{"/ecr-pull-secrets", "--leader-elect"},
		Repository: "ghcr.io/kubecred/ecr-pull-secrets", Version: "v1.2.3", Time: commitTime,
	}
	tarball := filepath.Join(t.TempDir(), "image.tar")
	if _, err := image.WriteTarball(tarball, o); err != nil {
		t.Fatal(err)
	}
	entry, byArch, err := image.Load(tarball, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if got := entry.Annotations["io.containerd.image.name"]; got != "ghcr.io/kubecred/ecr-pull-secrets:v1.2.3" {
		t.Errorf("image name %q", got)
	}
	for arch, img := range byArch {
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(cf.Config.Entrypoint) != "[/ecr-pull-secrets --leader-elect]" {
			t.Errorf("%s: entrypoint %q", arch, cf.Config.Entrypoint)
		}
		files, err := image.Files(img)
		if err != nil {
			t.Fatal(err)
		}
		if len(files) != 2 || string(files["/ecr-pull-secrets"]) != "a-"+arch || string(files["/usr/bin/helper"]) != "b-"+arch {
			t.Errorf("%s: files %q", arch, files)
		}
		if _, err := image.Binary(img); err == nil {
			t.Errorf("%s: Binary took an image with more than the plugin for the plugin's", arch)
		}
	}
}

func TestRefusesBadFiles(t *testing.T) {
	for name, mutate := range map[string]func(*image.Options){
		"relative path": func(o *image.Options) { o.Files[0].Path = "ecr-credential-provider" },
		"unclean path":  func(o *image.Options) { o.Files[0].Path = "/bin/../x" },
		"missing arch": func(o *image.Options) {
			o.Files = append(o.Files, image.File{Path: "/x", Binaries: map[string]string{"amd64": o.Files[0].Binaries["amd64"]}})
		},
		"no files": func(o *image.Options) { o.Files = nil },
		"an arch it lacks": func(o *image.Options) {
			o.Files = append(o.Files, image.File{Path: "/x", Binaries: map[string]string{"amd64": "a", "riscv64": "b"}})
		},
	} {
		o := options(t)
		mutate(&o)
		if _, err := image.Index(o); err == nil {
			t.Errorf("%s: built an image", name)
		}
	}
}
