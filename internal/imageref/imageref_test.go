package imageref_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/kubecred/ecr-credential-provider/internal/imageref"
)

var (
	hex64  = strings.Repeat("0123456789abcdef", 4)
	ecr    = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
	digest = "sha256:" + hex64
)

func TestParse(t *testing.T) {
	tests := []struct {
		in                    string
		host, path, tag, dgst string
	}{
		{"nginx", "docker.io", "library/nginx", "", ""},
		{"nginx:1.27", "docker.io", "library/nginx", "1.27", ""},
		{"library/nginx@" + digest, "docker.io", "library/nginx", "", digest},
		{"docker.io/nginx", "docker.io", "library/nginx", "", ""},
		{"index.docker.io/team/app", "docker.io", "team/app", "", ""},
		{"team/app:v1", "docker.io", "team/app", "v1", ""},
		{"localhost:5000", "docker.io", "library/localhost", "5000", ""},
		{ecr + "/app:v1", ecr, "app", "v1", ""},
		{ecr + "/team/app:v1@" + digest, ecr, "team/app", "v1", digest},
		{ecr + ":443/app", ecr + ":443", "app", "", ""},
		{"registry.local:5000/a/b:t", "registry.local:5000", "a/b", "t", ""},
		{"localhost/app", "localhost", "app", "", ""},
		{"localhost:5000/app", "localhost:5000", "app", "", ""},
		{"[::1]:5000/app", "[::1]:5000", "app", "", ""},
		{"[fe80::1]/app", "[fe80::1]", "app", "", ""},
		// An upper case first component is a host, not a Docker Hub user.
		{"UPPER/x", "UPPER", "x", "", ""},
		{"Registry.IO/app", "Registry.IO", "app", "", ""},
		{"public.ecr.aws/team/app:latest", "public.ecr.aws", "team/app", "latest", ""},
		{"a.b/c__d/e---f/g.h_i:T_a-g.1", "a.b", "c__d/e---f/g.h_i", "T_a-g.1", ""},
		// Not a valid host, but a valid path component: the grammar reads
		// the whole name as a path, and the kubelet's URL host is still it.
		{"a_b.c/x", "a_b.c", "x", "", ""},
	}
	for _, tt := range tests {
		got, err := imageref.Parse(tt.in)
		want := imageref.Reference{Host: tt.host, Path: tt.path, Tag: tt.tag, Digest: tt.dgst}
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", tt.in, got, err, want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in   string
		want error
	}{
		{"", imageref.ErrInvalidFormat},
		{hex64, imageref.ErrHexIdentifier},
		{"registry.io/App", imageref.ErrUppercase},
		{"UP_PER/x", imageref.ErrUppercase},
		{"registry.io/app:", imageref.ErrInvalidFormat},
		{"registry.io/app@sha256:abc", imageref.ErrInvalidFormat},
		{"registry.io/app@md5:" + strings.Repeat("a", 32), imageref.ErrDigestUnsupported},
		{"registry.io/app@sha256:" + strings.Repeat("a", 63) + "A", imageref.ErrDigestFormat},
		{"registry.io/app@sha512:" + hex64, imageref.ErrDigestLength},
		{"registry.io/" + strings.Repeat("a", 256), imageref.ErrNameTooLong},
		{"https://" + ecr + "/app", imageref.ErrInvalidFormat},
		{" nginx", imageref.ErrInvalidFormat},
		{ecr + "./app", imageref.ErrInvalidFormat},
		{"user@host.example.com/x", imageref.ErrInvalidFormat},
		{"host:/x", imageref.ErrInvalidFormat},
		{"[]/x", imageref.ErrInvalidFormat},
		{"a-.b/x", imageref.ErrInvalidFormat},
		{"r.io/a___b", imageref.ErrInvalidFormat},
		{"r.io/a-", imageref.ErrInvalidFormat},
		{"r.io//a", imageref.ErrInvalidFormat},
		{"r.io/a:" + strings.Repeat("t", 129), imageref.ErrInvalidFormat},
	}
	for _, tt := range tests {
		_, err := imageref.Parse(tt.in)
		var ie *imageref.Error
		if !errors.Is(err, tt.want) || !errors.As(err, &ie) || ie.Ref != tt.in {
			t.Errorf("Parse(%q) = %v; want an *Error wrapping %q", tt.in, err, tt.want)
		}
	}
}

func TestReferenceMethods(t *testing.T) {
	for _, tt := range []struct{ in, name, id, str, hostname string }{
		{"nginx", "docker.io/library/nginx", "latest", "docker.io/library/nginx", "docker.io"},
		{ecr + ":443/app:v1@" + digest, ecr + ":443/app", digest, ecr + ":443/app:v1@" + digest, ecr},
		{"[::1]:5000/a:b", "[::1]:5000/a", "b", "[::1]:5000/a:b", "::1"},
	} {
		r, err := imageref.Parse(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		if r.Name() != tt.name || r.Identifier() != tt.id || r.String() != tt.str || r.Hostname() != tt.hostname {
			t.Errorf("%q: Name %q Identifier %q String %q Hostname %q", tt.in, r.Name(), r.Identifier(), r.String(), r.Hostname())
		}
		// A normalized reference parses to itself.
		if again, err := imageref.Parse(r.String()); err != nil || again != r {
			t.Errorf("%q: reparsing %q gives %+v, %v", tt.in, r.String(), again, err)
		}
	}
}

// The grammar of github.com/distribution/reference v0.6.0 as that package
// writes it, regexps and all: the oracle the hand-written parser is held to.
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
	referenceRe  = regexp.MustCompile(`^(` + refName + `)(?::(` + refTag + `))?(?:@(` + refDigest + `))?$`)
	nameRe       = regexp.MustCompile(`^(?:(` + refDomain + `)/)?(` + refRemoteName + `)$`)
	identifierRe = regexp.MustCompile(`^[a-f0-9]{64}$`)
	digestAlgRe  = regexp.MustCompile(`^[a-z0-9]+(?:[.+_-][a-z0-9]+)*$`)
	lowerHexRe   = regexp.MustCompile(`^[a-f0-9]+$`)
)

// oracle is ParseNormalizedNamed followed by Name(), tag and digest, with
// the error it would return.
func oracle(s string) (name, tag, digest string, err error) {
	if identifierRe.MatchString(s) {
		return "", "", "", imageref.ErrHexIdentifier
	}
	domain, remainder := "docker.io", s
	if i := strings.IndexByte(s, '/'); i >= 0 && (strings.ContainsAny(s[:i], ".:") || s[:i] == "localhost" || strings.ToLower(s[:i]) != s[:i]) {
		domain, remainder = s[:i], s[i+1:]
	}
	if domain == "index.docker.io" {
		domain = "docker.io"
	}
	if domain == "docker.io" && !strings.Contains(remainder, "/") {
		remainder = "library/" + remainder
	}
	remote, _, _ := strings.Cut(remainder, ":")
	if strings.ToLower(remote) != remote {
		return "", "", "", imageref.ErrUppercase
	}
	full := domain + "/" + remainder
	m := referenceRe.FindStringSubmatch(full)
	if m == nil {
		if referenceRe.MatchString(strings.ToLower(full)) {
			return "", "", "", imageref.ErrUppercase
		}
		return "", "", "", imageref.ErrInvalidFormat
	}
	if n := nameRe.FindStringSubmatch(m[1]); len(n[2]) > 255 {
		return "", "", "", imageref.ErrNameTooLong
	}
	if d := m[3]; d != "" {
		alg, enc, _ := strings.Cut(d, ":")
		want, ok := map[string]int{"sha256": 64, "sha384": 96, "sha512": 128}[alg]
		switch {
		case !ok && !digestAlgRe.MatchString(alg):
			return "", "", "", imageref.ErrDigestFormat
		case !ok:
			return "", "", "", imageref.ErrDigestUnsupported
		case len(enc) != want:
			return "", "", "", imageref.ErrDigestLength
		case !lowerHexRe.MatchString(enc):
			return "", "", "", imageref.ErrDigestFormat
		}
	}
	return m[1], m[2], m[3], nil
}

func checkAgainstOracle(t *testing.T, s string) {
	t.Helper()
	name, tag, dgst, oerr := oracle(s)
	r, err := imageref.Parse(s)
	switch {
	case oerr != nil && !errors.Is(err, oerr):
		t.Fatalf("Parse(%q) = %+v, %v; the grammar says %v", s, r, err, oerr)
	case oerr == nil && err != nil:
		t.Fatalf("Parse(%q): %v; the grammar accepts it as %q", s, err, name)
	case oerr == nil && (r.Name() != name || r.Tag != tag || r.Digest != dgst):
		t.Fatalf("Parse(%q) = %+v; the grammar says name %q tag %q digest %q", s, r, name, tag, dgst)
	case oerr == nil && !strings.HasPrefix(name, r.Host+"/"):
		t.Fatalf("Parse(%q): host %q does not begin the name %q", s, r.Host, name)
	}
}

var oracleSeeds = []string{
	"nginx", "nginx:1.27", "library/nginx@" + digest, "docker.io/nginx", "index.docker.io/a/b", "localhost:5000",
	ecr + "/app:v1", ecr + ":443/team/app@" + digest, "[::1]:5000/app", "[fe80::1]/app", "[::1]/a", "UPPER/x", "Registry.IO/app",
	"a_b.c/x", "a__b.c/x", "UP_PER/x", "registry.io/App", "registry.io/app:", "registry.io/app@sha256:abc", "x:tag@SHA256:" + hex64,
	"r.io/a@md5:" + strings.Repeat("a", 32), "r.io/a@sha256:" + strings.Repeat("A", 64), "r.io/a@sha512:" + hex64,
	"r.io/a@Sha-2+x.y:" + strings.Repeat("f", 32), "r.io/" + strings.Repeat("a", 255), "r.io/" + strings.Repeat("a", 256),
	"a_b.c/" + strings.Repeat("a", 250), "https://x.io/a", " nginx", "x.io./a", "u@x.io/a", "x.io:/a", "[]/a", "[::1]x/a", "[::1]:/a",
	"a-.b/x", "-a.b/x", "r.io/a___b", "r.io/a-", "r.io/a--b", "r.io//a", "r.io/a/", "/a", "a/", ":a", "@", "r.io/a:t@", "a:b/c",
	"r.io/a:" + strings.Repeat("t", 128), "r.io/a:" + strings.Repeat("t", 129), "r.io/a:-t", "r.io/a:_t", hex64, hex64 + "/x",
	"localhost", "LOCALHOST/x", "localhost:5000/x", "\xeb", "É.io/a", "r.io/é", "x.io/a:É", "a.b:0123/c", "a.b:x/c", "0.0.0.0/a", "a:1:2/b", "[::1]:5000", "a.b/c@d@e",
}

func TestParseMatchesGrammar(t *testing.T) {
	for _, s := range oracleSeeds {
		checkAgainstOracle(t, s)
	}
}

// FuzzParse holds the parser to the reference grammar on any input.
func FuzzParse(f *testing.F) {
	for _, s := range oracleSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkAgainstOracle(t, s)
		if r, err := imageref.Parse(s); err == nil {
			if again, err := imageref.Parse(r.String()); err != nil || again != r {
				t.Fatalf("Parse(%q) = %+v, but its String %q reparses to %+v, %v", s, r, r.String(), again, err)
			}
		}
	})
}
