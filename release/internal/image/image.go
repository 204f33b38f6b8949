// Package image builds the release's OCI images with go-containerregistry,
// no container engine needed: a multi-arch index of one-layer images, each
// holding only the static binaries it names (the plugin's image: the plugin
// alone, as its entrypoint), written as an OCI layout tarball that ctr
// images import (and skopeo, crane, podman) load.
package image

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// BinaryPath is where the plugin's binary sits in its image, and its
// entrypoint.
const BinaryPath = "/ecr-credential-provider"

// DefaultRepository names the plugin's image when the release names none.
const DefaultRepository = "ghcr.io/kubecred/ecr-credential-provider"

// File is one executable in the image, built per architecture.
type File struct {
	// Path is where it sits in the image, absolute.
	Path string
	// Binaries maps a linux architecture (amd64, arm64) to its binary.
	Binaries map[string]string
}

// Options describe the image.
type Options struct {
	// Files are the image's whole content, in layer order. Every file has
	// a binary for every architecture of the first.
	Files []File
	// Entrypoint defaults to the first file's path.
	Entrypoint []string
	// Repository and Version make the image's name, repository:version.
	Repository string
	Version    string
	// Time is every timestamp in the image: the config's created and the
	// layer's file times.
	Time time.Time
}

// Plugin is the plugin's image: its binary for each architecture, alone,
// at BinaryPath.
func Plugin(binaries map[string]string, repository, version string, at time.Time) Options {
	return Options{Files: []File{{Path: BinaryPath, Binaries: binaries}}, Repository: repository, Version: version, Time: at}
}

// Name is the image reference the tarball carries.
func (o Options) Name() string {
	repo := o.Repository
	if repo == "" {
		repo = DefaultRepository
	}
	return repo + ":" + o.Version
}

// Index builds the multi-arch index, one manifest per architecture in
// sorted order.
func Index(o Options) (v1.ImageIndex, error) {
	if len(o.Files) == 0 || len(o.Files[0].Binaries) == 0 || o.Version == "" || o.Time.IsZero() {
		return nil, fmt.Errorf("an image needs binaries, a version and a timestamp")
	}
	archs := make([]string, 0, len(o.Files[0].Binaries))
	for a := range o.Files[0].Binaries {
		archs = append(archs, a)
	}
	sort.Strings(archs)
	for _, f := range o.Files {
		if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path || f.Path == "/" {
			return nil, fmt.Errorf("image file path %q: want a clean absolute path", f.Path)
		}
		if len(f.Binaries) != len(archs) {
			return nil, fmt.Errorf("%s has binaries for %d architectures, %s for %d: want the same", f.Path, len(f.Binaries), o.Files[0].Path, len(archs))
		}
	}
	if len(o.Entrypoint) == 0 {
		o.Entrypoint = []string{o.Files[0].Path}
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, arch := range archs {
		img, err := archImage(arch, o)
		if err != nil {
			return nil, fmt.Errorf("linux/%s: %v", arch, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}},
		})
	}
	return idx, nil
}

func archImage(arch string, o Options) (v1.Image, error) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, f := range o.Files {
		bin, ok := f.Binaries[arch]
		if !ok {
			return nil, fmt.Errorf("no %s binary for %s", arch, f.Path)
		}
		data, err := os.ReadFile(bin)
		if err != nil {
			return nil, err
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: f.Path[1:], Mode: 0o755, Size: int64(len(data)), ModTime: o.Time, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	layerTar := b.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.AppendLayers(base, layer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Created = v1.Time{Time: o.Time}
	cf.Config.Entrypoint = o.Entrypoint
	cf.Config.Labels = map[string]string{
		"org.opencontainers.image.version":  o.Version,
		"org.opencontainers.image.source":   "https://github.com/kubecred/ecr-credential-provider",
		"org.opencontainers.image.licenses": "Apache-2.0",
		"org.opencontainers.image.created":  o.Time.UTC().Format(time.RFC3339),
	}
	return mutate.ConfigFile(img, cf)
}

// WriteTarball writes the index as an OCI layout tarball at path, the
// index.json naming it o.Name() for ctr images import.
func WriteTarball(path string, o Options) (v1.Hash, error) {
	idx, err := Index(o)
	if err != nil {
		return v1.Hash{}, err
	}
	dir, err := os.MkdirTemp("", "oci-layout-")
	if err != nil {
		return v1.Hash{}, err
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, mutate.IndexMediaType(empty.Index, types.OCIImageIndex))
	if err != nil {
		return v1.Hash{}, err
	}
	err = p.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		// containerd's import names the image from the first; the OCI
		// spec's second carries the tag for other tools.
		"io.containerd.image.name":          o.Name(),
		"org.opencontainers.image.ref.name": o.Version,
	}))
	if err != nil {
		return v1.Hash{}, err
	}
	digest, err := idx.Digest()
	if err != nil {
		return v1.Hash{}, err
	}
	return digest, tarDir(path, dir, o.Time)
}

// tarDir writes dir's tree as a tarball with sorted entries, owned by root,
// all at one time, so the same layout makes the same bytes.
func tarDir(path, dir string, at time.Time) error {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		files = append(files, p)
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(files)
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	tw := tar.NewWriter(tmp)
	for _, p := range files {
		rel, _ := filepath.Rel(dir, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		hdr := &tar.Header{Name: filepath.ToSlash(rel), ModTime: at, Format: tar.FormatUSTAR}
		if fi.IsDir() {
			hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, hdr.Name+"/", 0o755
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeReg, 0o644, int64(len(data))
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
