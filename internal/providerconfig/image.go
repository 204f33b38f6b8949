package providerconfig

import (
	"errors"
	"fmt"
	"strings"

	"github.com/kubecred/ecr-credential-provider/internal/lazyregexp"
)

// The kubelet does not match the image as written in the pod spec: it
// normalizes it with github.com/distribution/reference ParseNormalizedNamed
// and matches the repository name, without tag or digest ("nginx:1" becomes
// "docker.io/library/nginx"). The grammar below is that package's (v0.6.0,
// which kubelets 1.26 to 1.37 use); it is restated here so that the shipped
// binary does not depend on it.
const (
	refAlnum      = `[a-z0-9]+`
	refSeparator  = `(?:[._]|__|[-]+)`
	refDomainComp = `(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])`
	refPort       = `(?::[0-9]+)?`
	refTag        = `[\w][\w.-]{0,127}`
	refDigest     = `[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][[:xdigit:]]{32,}`
	refIPv6       = `\[(?:[a-fA-F0-9:]+)\]`

	refDomain     = `(?:` + refDomainComp + `(?:\.` + refDomainComp + `)*|` + refIPv6 + `)` + refPort
	refPathComp   = refAlnum + `(?:` + refSeparator + refAlnum + `)*`
	refRemoteName = refPathComp + `(?:/` + refPathComp + `)*`
	refName       = `(?:` + refDomain + `/)?` + refRemoteName
)

var (
	referenceRe  = lazyregexp.New(`^(` + refName + `)(?::(` + refTag + `))?(?:@(` + refDigest + `))?$`)
	nameRe       = lazyregexp.New(`^(?:(` + refDomain + `)/)?(` + refRemoteName + `)$`)
	identifierRe = lazyregexp.New(`^[a-f0-9]{64}$`)
	digestHexLen = map[string]int{"sha256": 64, "sha384": 96, "sha512": 128}
	hexRe        = lazyregexp.New(`^[a-f0-9]+$`)
)

// ImageName returns the name the kubelet matches matchImages against for an
// image reference as written in a pod spec, or the kubelet's reason for
// refusing the reference.
func ImageName(image string) (string, error) {
	if identifierRe.MatchString(image) {
		return "", fmt.Errorf("invalid repository name (%s), cannot specify 64-byte hexadecimal strings", image)
	}
	domain, remainder := splitDockerDomain(image)
	remote, _, _ := strings.Cut(remainder, ":")
	if strings.ToLower(remote) != remote {
		return "", fmt.Errorf("invalid reference format: repository name (%s) must be lowercase", remote)
	}
	s := domain + "/" + remainder
	m := referenceRe.FindStringSubmatch(s)
	if m == nil {
		if referenceRe.MatchString(strings.ToLower(s)) {
			return "", errors.New("invalid reference format: repository name must be lowercase")
		}
		return "", errors.New("invalid reference format")
	}
	if n := nameRe.FindStringSubmatch(m[1]); n != nil && len(n[2]) > 255 {
		return "", errors.New("repository name must not be more than 255 characters")
	}
	if d := m[3]; d != "" {
		alg, hex, _ := strings.Cut(d, ":")
		want, ok := digestHexLen[alg]
		switch {
		case !ok:
			return "", errors.New("unsupported digest algorithm")
		case len(hex) != want:
			return "", errors.New("invalid checksum digest length")
		case !hexRe.MatchString(hex):
			return "", errors.New("invalid checksum digest format")
		}
	}
	return m[1], nil
}

// splitDockerDomain is the reference package's rule for where the registry
// host ends: a first component with '.' or ':', "localhost", or an upper
// case letter is a host; anything else is a Docker Hub repository.
func splitDockerDomain(name string) (domain, remainder string) {
	first, rest, ok := strings.Cut(name, "/")
	switch {
	case !ok:
		return "docker.io", "library/" + name
	case first == "localhost":
		domain, remainder = first, rest
	case first == "index.docker.io":
		domain, remainder = "docker.io", rest
	case strings.ContainsAny(first, ".:"), strings.ToLower(first) != first:
		domain, remainder = first, rest
	default:
		domain, remainder = "docker.io", name
	}
	if domain == "docker.io" && !strings.Contains(remainder, "/") {
		remainder = "library/" + remainder
	}
	return domain, remainder
}
