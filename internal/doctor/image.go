package doctor

import (
	"fmt"
	"strings"
)

// imageRef is an image reference split the way a registry client needs it.
type imageRef struct {
	Host string
	Repo string
	// Reference is the digest if the image names one, else the tag
	// ("latest" when none is given, as the runtime assumes).
	Reference string
	Tag       string
	Digest    string
}

// Name is the image without tag or digest, as the kubelet sends it to
// credential providers.
func (r imageRef) Name() string { return r.Host + "/" + r.Repo }

func parseRef(image, host string) (imageRef, error) {
	ref := strings.TrimSpace(image)
	if i := strings.Index(ref, "://"); i >= 0 {
		ref = ref[i+3:]
	}
	rest, ok := strings.CutPrefix(ref, host+"/")
	if !ok || rest == "" {
		return imageRef{}, fmt.Errorf("image %q names no repository after the registry host %s", image, host)
	}
	out := imageRef{Host: host}
	if name, digest, ok := strings.Cut(rest, "@"); ok {
		out.Digest, rest = digest, name
	}
	if i := strings.LastIndex(rest, ":"); i > strings.LastIndex(rest, "/") {
		out.Tag, rest = rest[i+1:], rest[:i]
	}
	out.Repo = rest
	if out.Repo == "" {
		return imageRef{}, fmt.Errorf("image %q has an empty repository name", image)
	}
	switch {
	case out.Digest != "":
		out.Reference = out.Digest
	case out.Tag != "":
		out.Reference = out.Tag
	default:
		out.Reference = "latest"
	}
	return out, nil
}
