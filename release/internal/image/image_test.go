package image_test

import (
	"bytes"
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
	return image.Options{Binaries: bins, Version: "v1.2.3", Time: commitTime}
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
		want, _ := os.ReadFile(o.Binaries[arch])
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
