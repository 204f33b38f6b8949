// Package imageref parses container image references the way the kubelet
// does before it asks a credential provider: github.com/distribution/reference's
// ParseNormalizedNamed (v0.6.0, which kubelets 1.26 to 1.37 use), restated
// without regular expressions so that the plugin's cache-hit path pays
// nothing at start-up and little per call.
//
// It is the one place the project splits an image into registry host,
// repository, tag and digest: the plugin keys its answer by Reference.Host,
// `match` and the provider config check match Reference.Name against
// matchImages, and the doctor fetches Reference.Identifier.
package imageref

import (
	"errors"
	"fmt"
	"strings"
)

// Reasons a reference is refused, in the kubelet's words. Errors from Parse
// are *Error values that wrap one of these, so callers test with errors.Is.
var (
	ErrInvalidFormat     = errors.New("invalid reference format")
	ErrUppercase         = errors.New("invalid reference format: repository name must be lowercase")
	ErrHexIdentifier     = errors.New("invalid repository name, cannot specify 64-byte hexadecimal strings")
	ErrNameTooLong       = errors.New("repository name must not be more than 255 characters") // maxPathLen
	ErrDigestUnsupported = errors.New("unsupported digest algorithm")
	ErrDigestLength      = errors.New("invalid checksum digest length")
	ErrDigestFormat      = errors.New("invalid checksum digest format")
)

const (
	// DefaultRegistry is where a reference without a registry host points.
	DefaultRegistry = "docker.io"
	legacyRegistry  = "index.docker.io"
	officialPrefix  = "library/"
	maxPathLen      = 255
	maxTagLen       = 128
	maxShownLen     = 256
)

// Error is a reference the kubelet would refuse to pull.
type Error struct {
	// Ref is the reference as given.
	Ref string
	// Reason is one of the Err values above.
	Reason error
}

func (e *Error) Error() string {
	ref := e.Ref
	if len(ref) > maxShownLen {
		ref = ref[:maxShownLen] + "..."
	}
	return fmt.Sprintf("image reference %q: %v", ref, e.Reason)
}

func (e *Error) Unwrap() error { return e.Reason }

// Reference is an image reference, normalized as the kubelet normalizes it.
type Reference struct {
	// Host is the registry host, port included ("docker.io",
	// "localhost:5000", "[::1]:5000"), in the case it was written in. It is
	// the host the kubelet matches matchImages against and looks
	// credentials up by.
	Host string
	// Path is the repository within the registry ("library/nginx").
	Path string
	// Tag and Digest are as written; either or both may be empty.
	Tag    string
	Digest string
}

// Name is the reference without tag or digest ("docker.io/library/nginx"):
// what the kubelet sends a credential provider and matches matchImages
// against.
func (r Reference) Name() string { return r.Host + "/" + r.Path }

// Identifier is what a registry client asks the registry for: the digest
// if there is one, else the tag, else "latest" (as the runtime assumes).
func (r Reference) Identifier() string {
	switch {
	case r.Digest != "":
		return r.Digest
	case r.Tag != "":
		return r.Tag
	}
	return "latest"
}

// String is the normalized reference, tag and digest included.
func (r Reference) String() string {
	s := r.Name()
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest
	}
	return s
}

// Hostname is Host without its port, and without brackets for IPv6.
func (r Reference) Hostname() string {
	h := r.Host
	if strings.HasPrefix(h, "[") {
		if i := strings.IndexByte(h, ']'); i > 0 {
			return h[1:i]
		}
		return h
	}
	if i := strings.IndexByte(h, ':'); i >= 0 {
		return h[:i]
	}
	return h
}

// Parse reads an image reference as written in a pod spec ("nginx:1.27",
// "123456789012.dkr.ecr.us-east-1.amazonaws.com/app@sha256:...") and
// returns it normalized, or the kubelet's reason for refusing it.
//
// As the kubelet does, it takes the first path component as the registry
// host when it holds a '.' or ':', is "localhost", or has an upper case
// letter; otherwise the image is Docker Hub's ("nginx" is
// docker.io/library/nginx). No scheme, no surrounding space.
func Parse(s string) (Reference, error) {
	if isHexIdentifier(s) {
		return Reference{}, &Error{s, ErrHexIdentifier}
	}
	host, rest := splitHost(s)
	// ParseNormalizedNamed's own check, ahead of the grammar: the
	// repository (up to the first ':', tag or not) must be lower case.
	remote := rest
	if i := strings.IndexByte(rest, ':'); i >= 0 {
		remote = rest[:i]
	}
	if hasUpper(remote) {
		return Reference{}, &Error{s, ErrUppercase}
	}
	ref, err := parseFull(host, rest)
	if err == ErrInvalidFormat && hasUpper(host+rest) {
		if _, lerr := parseFull(strings.ToLower(host), strings.ToLower(rest)); lerr != ErrInvalidFormat {
			err = ErrUppercase
		}
	}
	if err != nil {
		return Reference{}, &Error{s, err}
	}
	return ref, nil
}

// splitHost is the reference package's splitDockerDomain.
func splitHost(s string) (host, rest string) {
	first, after, ok := strings.Cut(s, "/")
	isHostLike := first == "localhost" || strings.IndexByte(first, '.') >= 0 || strings.IndexByte(first, ':') >= 0 || hasUpper(first)
	if !ok || !isHostLike {
		host, rest = DefaultRegistry, s
	} else {
		host, rest = first, after
	}
	if host == legacyRegistry {
		host = DefaultRegistry
	}
	if host == DefaultRegistry && !strings.Contains(rest, "/") {
		rest = officialPrefix + rest
	}
	return host, rest
}

// parseFull matches host + "/" + rest against the reference grammar,
// [HOST/]PATH[:TAG][@DIGEST], then checks the digest as go-digest does.
func parseFull(host, rest string) (Reference, error) {
	nameTag, digest, hasDigest := strings.Cut(rest, "@")
	if hasDigest && !isDigest(digest) {
		return Reference{}, ErrInvalidFormat
	}
	path, tag := nameTag, ""
	slash := strings.LastIndexByte(nameTag, '/')
	if i := strings.IndexByte(nameTag[slash+1:], ':'); i >= 0 {
		path, tag = nameTag[:slash+1+i], nameTag[slash+2+i:]
		if !isTag(tag) {
			return Reference{}, ErrInvalidFormat
		}
	}
	if !isPath(path) {
		return Reference{}, ErrInvalidFormat
	}
	ref := Reference{Host: host, Path: path, Tag: tag, Digest: digest}
	if !isHost(host) {
		// The grammar's host is optional: a first component that is no
		// valid host ("a_b.c") may still read as a path component. The
		// name is then all path, and its first component is where the
		// kubelet, matching it as a URL, finds the host.
		if !isPathComponent(host) {
			return Reference{}, ErrInvalidFormat
		}
		if len(host)+1+len(path) > maxPathLen {
			return Reference{}, ErrNameTooLong
		}
	} else if len(path) > maxPathLen {
		return Reference{}, ErrNameTooLong
	}
	if hasDigest {
		if err := validateDigest(digest); err != nil {
			return Reference{}, err
		}
	}
	return ref, nil
}

// validateDigest is go-digest's Digest.Validate for the algorithms the
// kubelet links.
func validateDigest(d string) error {
	alg, enc, _ := strings.Cut(d, ":")
	var want int
	switch alg {
	case "sha256":
		want = 64
	case "sha384":
		want = 96
	case "sha512":
		want = 128
	default:
		if !isDigestAlgorithm(alg) {
			return ErrDigestFormat
		}
		return ErrDigestUnsupported
	}
	if len(enc) != want {
		return ErrDigestLength
	}
	if !only(enc, lowerHex) {
		return ErrDigestFormat
	}
	return nil
}

// Character classes, one bit each, looked up in a table: the parser runs
// on every plugin call, and a table costs one load a byte where calls
// through func values cost a call.
const (
	lower    uint8 = 1 << iota // a-z
	upper                      // A-Z
	digit                      // 0-9
	lowerHex                   // 0-9 a-f
	anyHex                     // 0-9 a-f A-F
	word                       // a-z A-Z 0-9 _
	tagChar                    // word . -

	lowerAlnum = lower | digit
)

// classes holds each ASCII byte's classes (a byte >= 0x80 has none). It is
// a constant rather than a table computed at start-up, so that the
// cache-hit path runs no init for it; TestClassTable derives it from the
// definitions above.
const classes = "" +
	"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00" +
	"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00" +
	"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x40\x40\x00" +
	"\x7c\x7c\x7c\x7c\x7c\x7c\x7c\x7c\x7c\x7c\x00\x00\x00\x00\x00\x00" +
	"\x00\x72\x72\x72\x72\x72\x72\x62\x62\x62\x62\x62\x62\x62\x62\x62" +
	"\x62\x62\x62\x62\x62\x62\x62\x62\x62\x62\x62\x00\x00\x00\x00\x60" +
	"\x00\x79\x79\x79\x79\x79\x79\x61\x61\x61\x61\x61\x61\x61\x61\x61" +
	"\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x61\x00\x00\x00\x00\x00"

func class(c byte) uint8 {
	if c >= 0x80 {
		return 0
	}
	return classes[c]
}

func is(c byte, k uint8) bool { return class(c)&k != 0 }

// only reports whether every byte of s is in class.
func only(s string, k uint8) bool {
	for i := 0; i < len(s); i++ {
		if class(s[i])&k == 0 {
			return false
		}
	}
	return true
}

// isHost: (DOMAIN | '[' IPV6 ']') [':' PORT], DOMAIN being dot-separated
// components of letters, digits and inner dashes.
func isHost(h string) bool {
	name, port, hasPort := h, "", false
	if strings.HasPrefix(h, "[") {
		end := strings.IndexByte(h, ']')
		if end < 2 {
			return false
		}
		for i := 1; i < end; i++ {
			if !is(h[i], anyHex) && h[i] != ':' {
				return false
			}
		}
		name, port = "", h[end+1:]
		if port != "" {
			if port[0] != ':' {
				return false
			}
			port, hasPort = port[1:], true
		}
	} else if i := strings.IndexByte(h, ':'); i >= 0 {
		name, port, hasPort = h[:i], h[i+1:], true
	}
	if hasPort && (port == "" || !only(port, digit)) {
		return false
	}
	if name == "" {
		return strings.HasPrefix(h, "[")
	}
	// Each dot-separated component starts and ends with a letter or digit.
	prev := byte('.')
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case is(c, lower|upper|digit):
		case c == '.':
			if prev == '.' || prev == '-' {
				return false
			}
		case c == '-':
			if prev == '.' {
				return false
			}
		default:
			return false
		}
		prev = c
	}
	return prev != '.' && prev != '-'
}

// isPath: path components separated by '/'.
func isPath(p string) bool {
	for {
		c, rest, more := strings.Cut(p, "/")
		if !isPathComponent(c) {
			return false
		}
		if !more {
			return true
		}
		p = rest
	}
}

// isPathComponent: runs of [a-z0-9] joined by one '.', '_' or "__", or
// a run of dashes.
func isPathComponent(c string) bool {
	prevAlnum := false
	for i := 0; i < len(c); i++ {
		b := c[i]
		if is(b, lowerAlnum) {
			prevAlnum = true
			continue
		}
		if !prevAlnum {
			return false
		}
		prevAlnum = false
		switch b {
		case '.':
		case '_':
			if i+1 < len(c) && c[i+1] == '_' {
				i++
			}
		case '-':
			for i+1 < len(c) && c[i+1] == '-' {
				i++
			}
		default:
			return false
		}
	}
	return prevAlnum
}

// isTag: a word character, then up to 127 word characters, dots or dashes.
func isTag(t string) bool {
	return t != "" && len(t) <= maxTagLen && is(t[0], word) && only(t, tagChar)
}

// isDigest: ALGORITHM ':' 32 or more hex digits.
func isDigest(d string) bool {
	alg, enc, ok := strings.Cut(d, ":")
	return ok && isReferenceAlgorithm(alg) && len(enc) >= 32 && only(enc, anyHex)
}

// isReferenceAlgorithm: letter-led alphanumeric runs joined by one of -_+.
func isReferenceAlgorithm(a string) bool {
	start := true
	for i := 0; i < len(a); i++ {
		switch c := a[i]; {
		case start:
			if !is(c, lower|upper) {
				return false
			}
			start = false
		case is(c, lower|upper|digit):
		case c == '-' || c == '_' || c == '+' || c == '.':
			start = true
		default:
			return false
		}
	}
	return a != "" && !start
}

// isDigestAlgorithm is go-digest's algorithm grammar: lower-case
// alphanumeric runs joined by one of .+_-.
func isDigestAlgorithm(a string) bool {
	start := true
	for i := 0; i < len(a); i++ {
		switch c := a[i]; {
		case is(c, lowerAlnum):
			start = false
		case !start && (c == '.' || c == '+' || c == '_' || c == '-'):
			start = true
		default:
			return false
		}
	}
	return a != "" && !start
}

func isHexIdentifier(s string) bool { return len(s) == 64 && only(s, lowerHex) }

// hasUpper is the reference package's strings.ToLower(s) != s, which is
// also true for non-ASCII upper case and for invalid UTF-8 (ToLower
// replaces it); ASCII, the usual case, is checked without allocating.
func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return strings.ToLower(s) != s
		}
		if is(s[i], upper) {
			return true
		}
	}
	return false
}
