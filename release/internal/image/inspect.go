package image

import (
	"archive/tar"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// Load extracts an OCI layout tarball as WriteTarball writes it into dir
// (which must exist) and returns index.json's one entry, the multi-arch
// index, and that index's images by architecture.
func Load(tarball, dir string) (entry v1.Descriptor, byArch map[string]v1.Image, err error) {
	top, err := unpack(tarball, dir)
	if err != nil {
		return entry, nil, err
	}
	tm, err := top.IndexManifest()
	if err != nil {
		return entry, nil, err
	}
	if len(tm.Manifests) != 1 {
		return entry, nil, fmt.Errorf("index.json lists %d entries, want the one multi-arch index", len(tm.Manifests))
	}
	entry = tm.Manifests[0]
	idx, err := top.ImageIndex(entry.Digest)
	if err != nil {
		return entry, nil, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return entry, nil, err
	}
	byArch = map[string]v1.Image{}
	for _, d := range im.Manifests {
		if d.Platform == nil || d.Platform.OS != "linux" {
			return entry, nil, fmt.Errorf("manifest %s is not for a linux platform: %+v", d.Digest, d.Platform)
		}
		if _, dup := byArch[d.Platform.Architecture]; dup {
			return entry, nil, fmt.Errorf("two manifests for linux/%s", d.Platform.Architecture)
		}
		if byArch[d.Platform.Architecture], err = idx.Image(d.Digest); err != nil {
			return entry, nil, err
		}
	}
	return entry, byArch, nil
}

func unpack(tarball, dir string) (v1.ImageIndex, error) {
	f, err := os.Open(tarball)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		name := filepath.Clean(hdr.Name)
		if !filepath.IsLocal(name) {
			return nil, fmt.Errorf("%s: entry %q leaves the layout", tarball, hdr.Name)
		}
		target := filepath.Join(dir, name)
		switch hdr.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(target, 0o755)
		case tar.TypeReg:
			err = writeFrom(target, tr)
		default:
			err = fmt.Errorf("%s: entry %q is not a file or directory", tarball, hdr.Name)
		}
		if err != nil {
			return nil, err
		}
	}
	return layout.ImageIndexFromPath(dir)
}

func writeFrom(path string, r io.Reader) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Binary returns the content of the plugin image's entrypoint file, read
// from its layers, with an error if any layer holds anything else.
func Binary(img v1.Image) ([]byte, error) {
	files, err := Files(img)
	if err != nil {
		return nil, err
	}
	for name := range files {
		if name != BinaryPath {
			return nil, fmt.Errorf("layer holds %q besides the binary", name)
		}
	}
	if files[BinaryPath] == nil {
		return nil, fmt.Errorf("no %s in the image", BinaryPath)
	}
	return files[BinaryPath], nil
}

// Files returns every regular file the image's layers hold, by absolute
// path, with an error for anything that is not a regular file.
func Files(img v1.Image) (map[string][]byte, error) {
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			return nil, err
		}
		tr := tar.NewReader(rc)
		for {
			hdr, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				rc.Close()
				return nil, err
			}
			name := "/" + strings.TrimPrefix(hdr.Name, "./")
			if hdr.Typeflag != tar.TypeReg {
				rc.Close()
				return nil, fmt.Errorf("layer holds %q, not a regular file", name)
			}
			if out[name], err = io.ReadAll(tr); err != nil {
				rc.Close()
				return nil, err
			}
		}
		rc.Close()
	}
	return out, nil
}
