package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"time"
)

const (
	mediaManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaConfig   = "application/vnd.oci.image.config.v1+json"
	mediaLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
)

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    *platform         `json:"platform,omitempty"`
}

type platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

// ociImage is a one-layer image made by hand: the layer holds one static
// binary at /sleeper, which is the entrypoint. No registry client or image
// tool is needed to make or push it.
type ociImage struct {
	blobs    map[string][]byte // by digest: layer and config
	config   descriptor
	layer    descriptor
	manifest []byte
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// newImage builds an image whose entrypoint is binPath with args.
func newImage(binPath string, args []string) (*ociImage, error) {
	bin, err := os.ReadFile(binPath)
	if err != nil {
		return nil, err
	}
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	mtime := time.Unix(0, 0)
	if err := tw.WriteHeader(&tar.Header{Name: "sleeper", Mode: 0o755, Size: int64(len(bin)), ModTime: mtime, Typeflag: tar.TypeReg}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	var gzBuf bytes.Buffer
	gz := gzip.NewWriter(&gzBuf)
	if _, err := gz.Write(tarBuf.Bytes()); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	layer := gzBuf.Bytes()
	config, err := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"config": map[string]any{
			"Entrypoint": []string{"/sleeper"},
			"Cmd":        args,
		},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{digestOf(tarBuf.Bytes())}},
	})
	if err != nil {
		return nil, err
	}
	img := &ociImage{
		blobs:  map[string][]byte{digestOf(layer): layer, digestOf(config): config},
		config: descriptor{MediaType: mediaConfig, Digest: digestOf(config), Size: int64(len(config))},
		layer:  descriptor{MediaType: mediaLayer, Digest: digestOf(layer), Size: int64(len(layer))},
	}
	img.manifest, err = json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     mediaManifest,
		"config":        img.config,
		"layers":        []descriptor{img.layer},
	})
	return img, err
}

// push uploads the image to a distribution registry with the plain HTTP
// API (monolithic blob uploads, then the manifest), authenticating with
// basic auth.
func (img *ociImage) push(registry, repo, tag, user, password string) error {
	c := &http.Client{Timeout: 30 * time.Second}
	do := func(method, u string, body []byte, ctype string, want int) (*http.Response, error) {
		req, err := http.NewRequest(method, u, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.SetBasicAuth(user, password)
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := c.Do(req)
		if err != nil {
			return nil, err
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			return nil, fmt.Errorf("%s %s: %s: %s", method, u, resp.Status, msg)
		}
		return resp, nil
	}
	base := "http://" + registry + "/v2/" + repo
	for _, d := range []descriptor{img.layer, img.config} {
		resp, err := do("POST", base+"/blobs/uploads/", nil, "", http.StatusAccepted)
		if err != nil {
			return err
		}
		loc, err := resp.Location()
		if err != nil {
			return fmt.Errorf("blob upload: %v", err)
		}
		q := loc.Query()
		q.Set("digest", d.Digest)
		loc.RawQuery = q.Encode()
		if _, err := do("PUT", loc.String(), img.blobs[d.Digest], "application/octet-stream", http.StatusCreated); err != nil {
			return err
		}
	}
	_, err := do("PUT", base+"/manifests/"+url.PathEscape(tag), img.manifest, mediaManifest, http.StatusCreated)
	return err
}

// writeOCIArchive writes the image as an OCI image layout tarball that
// `ctr images import` loads under name.
func (img *ociImage) writeOCIArchive(path, name string) error {
	index, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"manifests": []descriptor{{
			MediaType:   mediaManifest,
			Digest:      digestOf(img.manifest),
			Size:        int64(len(img.manifest)),
			Annotations: map[string]string{"io.containerd.image.name": name},
			Platform:    &platform{Architecture: runtime.GOARCH, OS: "linux"},
		}},
	})
	if err != nil {
		return err
	}
	files := []struct {
		name string
		data []byte
	}{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"index.json", index},
		{blobPath(digestOf(img.manifest)), img.manifest},
		{blobPath(img.config.Digest), img.blobs[img.config.Digest]},
		{blobPath(img.layer.Digest), img.blobs[img.layer.Digest]},
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, dir := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Name: dir, Mode: 0o755, Typeflag: tar.TypeDir, ModTime: time.Unix(0, 0)}); err != nil {
			return err
		}
	}
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

func blobPath(digest string) string { return "blobs/sha256/" + digest[len("sha256:"):] }
