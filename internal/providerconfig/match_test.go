package providerconfig

import (
	"strings"
	"testing"
)

// kubeletURLCases are the cases of the kubelet's own TestURLsMatch
// (pkg/credentialprovider/keyring_test.go, identical from 1.26 to 1.37).
var kubeletURLCases = []struct {
	glob, target string
	want         bool
}{
	{"*.kubernetes.io", "prefix.kubernetes.io", true},
	{"prefix.*.io", "prefix.kubernetes.io", true},
	{"prefix.kubernetes.*", "prefix.kubernetes.io", true},
	{"*-good.kubernetes.io", "prefix-good.kubernetes.io", true},
	{"*.kubernetes.io/blah", "prefix.kubernetes.io/blah", true},
	{"prefix.*.io/foo", "prefix.kubernetes.io/foo/bar", true},
	{"*.kubernetes.io:1111/blah", "prefix.kubernetes.io:1111/blah", true},
	{"prefix.*.io:1111/foo", "prefix.kubernetes.io:1111/foo/bar", true},
	{"*.kubernetes.io", "kubernetes.io", false},
	{"*.*.kubernetes.io", "prefix.kubernetes.io", false},
	{"*.*.kubernetes.io", "kubernetes.io", false},
	{"*kubernetes.io", "a.kubernetes.io", false},
	{"*kubernetes.io", "kubernetes.io", true},
	{"*.*.*.kubernetes.io", "a.b.c.kubernetes.io", true},
	{"kubernetes.io", "kubernetes.com", false},
	{"k*.io", "quay.io", false},
	{"*.kubernetes.io:1234/blah", "prefix.kubernetes.io:1111/blah", false},
	{"prefix.*.io/foo", "prefix.kubernetes.io:1111/foo/bar", false},
}

func TestURLsMatchStrKubeletCases(t *testing.T) {
	for _, c := range kubeletURLCases {
		got, err := URLsMatchStr(c.glob, c.target)
		if err != nil || got != c.want {
			t.Errorf("URLsMatchStr(%q, %q) = %v, %v; the kubelet says %v", c.glob, c.target, got, err, c.want)
		}
	}
}

func TestURLsMatchStrOddInputs(t *testing.T) {
	cases := []struct {
		glob, target string
		want, err    bool
	}{
		// ECR forms against the recommended patterns.
		{"*.dkr.ecr.*.amazonaws.com", "123456789012.dkr.ecr.us-east-1.amazonaws.com/app", true, false},
		{"*.dkr.ecr.*.amazonaws.com", "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com/app", false, false},
		{"*.dkr.ecr.*.amazonaws.com", "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/app", false, false},
		{"*.amazonaws.com", "123456789012.dkr.ecr.us-east-1.amazonaws.com/app", false, false},
		// A pattern without port never matches an image with one, and back.
		{"registry.local", "registry.local:5000/app", false, false},
		{"registry.local:5000", "registry.local/app", false, false},
		{"registry.local:5000", "registry.local:5000/app", true, false},
		{"registry.local:*", "registry.local:5000/app", false, true}, // url.Parse rejects the port
		// IPv6: brackets are kept when there is no port, dropped with one.
		{"[::1]:5000", "[::1]:5000/app", true, false},
		// Without a port the brackets stay, and in a glob "[::1]" is a
		// character class matching one ':' or '1': it never matches itself.
		{"[::1]", "[::1]/app", false, false},
		{"[::1]", "1/app", true, false},
		{"[::1]", "[::1]:5000/app", false, false},
		{"::1", "[::1]:5000/app", false, true},
		// Paths are literal prefixes, not globs, and not segment-aware.
		{"registry.io/*", "registry.io/app", false, false},
		{"registry.io/team", "registry.io/teamx/app", true, false},
		{"registry.io/team/", "registry.io/team", false, false},
		// Schemes are not stripped: "https://x" parses as host "https:".
		{"https://registry.io", "registry.io/app", false, false},
		// Empty strings parse as empty hosts: one empty label each.
		{"", "", true, false},
		{"", "registry.io", false, false},
		{"*", "localhost/app", true, false},
		// url.Parse lets only IP literals have brackets, but an IPv4-mapped
		// one splits into labels, leaving "[::ffff:1" as a broken class:
		// the error comes only when that label is reached.
		{"[::ffff:1.2.3.4]", "a.b.c.d", false, true},
		{"[::ffff:1.2.3.4]", "a.b.c", false, false},
		{"[::ffff:1.2.3.4]/p", "a.b.c.d/q", false, false},
		{"x.[", "y.z", false, true},
		// url.Parse errors, on either side.
		{"%zz", "a", false, true},
		{"a", "a b", false, true},
		{"a:abc", "a", false, true},
		// Case matters.
		{"Registry.io", "registry.io/app", false, false},
		// Query and fragment are not part of host or path.
		{"registry.io?x", "registry.io/app", true, false},
	}
	for _, c := range cases {
		got, err := URLsMatchStr(c.glob, c.target)
		if got != c.want || (err != nil) != c.err {
			t.Errorf("URLsMatchStr(%q, %q) = %v, %v; want %v, error %v", c.glob, c.target, got, err, c.want, c.err)
		}
	}
}

func TestExplain(t *testing.T) {
	cases := []struct {
		glob, target string
		want         bool
		reason       string
	}{
		{"*.dkr.ecr.*.amazonaws.com", "123456789012.dkr.ecr.us-east-1.amazonaws.com/app", true, "matches"},
		{"*.io", "a.k8s.io/app", false, `label count: pattern host "*.io" has 2 labels, image host "a.k8s.io" has 3 (each '*' matches exactly one label)`},
		{"public.ecr.aws", "docker.io/library/nginx", false, `label count: pattern host "public.ecr.aws" has 3 labels, image host "docker.io" has 2`},
		{"*.dkr.ecr.*.amazonaws.com", "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com/app", false, `label 2: "ecr" does not match "ecr-fips"`},
		{"registry.local", "registry.local:5000/app", false, "port: the image has port 5000, the pattern has none"},
		{"registry.local:5000", "registry.local/app", false, "port: pattern has port 5000, the image has none"},
		{"registry.local:5000", "registry.local:6000/app", false, "port: pattern has port 5000, the image has port 6000"},
		{"registry.io/team", "registry.io/other/app", false, `path prefix: image path "/other/app" does not start with pattern path "/team"`},
		{"[::ffff:1.2.3.4]", "a.b.c.d", false, `label 0: "[::ffff:1" is not a valid glob: syntax error in pattern`},
		{"[::1]", "[::1]/app", false, `label 0: "[::1]" does not match "[::1]" ('[...]' is a glob character class)`},
		{"%zz", "a.io", false, `pattern "%zz" is not a valid URL: invalid URL escape "%zz"`},
		{"a.io", "a b", false, `image "a b" is not a valid URL`},
	}
	for _, c := range cases {
		got, reason := Explain(c.glob, c.target)
		if got != c.want || !strings.HasPrefix(reason, c.reason) {
			t.Errorf("Explain(%q, %q) = %v, %q; want %v, %q", c.glob, c.target, got, reason, c.want, c.reason)
		}
	}
}

func FuzzURLsMatchStr(f *testing.F) {
	for _, c := range kubeletURLCases {
		f.Add(c.glob, c.target)
	}
	for _, s := range [][2]string{{"[::1]:5000", "[::1]:5000/a"}, {"[", "a"}, {"https://a", "a"}, {"", ""}, {"a:1/p", "a:1/p/q"}, {"%zz", "a"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, glob, target string) {
		ok, err := URLsMatchStr(glob, target)
		if err != nil && ok {
			t.Fatalf("URLsMatchStr(%q, %q) matched and failed at once", glob, target)
		}
		eok, reason := Explain(glob, target)
		if eok != ok {
			t.Fatalf("Explain(%q, %q) = %v (%s), URLsMatchStr = %v", glob, target, eok, reason, ok)
		}
		if reason == "" || (ok != (reason == "matches")) {
			t.Fatalf("Explain(%q, %q) reason %q does not fit %v", glob, target, reason, ok)
		}
	})
}

func TestImageName(t *testing.T) {
	cases := []struct{ image, want, err string }{
		{"nginx", "docker.io/library/nginx", ""},
		{"nginx:1.27", "docker.io/library/nginx", ""},
		{"library/nginx@sha256:" + strings.Repeat("a", 64), "docker.io/library/nginx", ""},
		{"docker.io/nginx", "docker.io/library/nginx", ""},
		{"index.docker.io/team/app", "docker.io/team/app", ""},
		{"team/app:v1", "docker.io/team/app", ""},
		{"123456789012.dkr.ecr.us-east-1.amazonaws.com/app:v1", "123456789012.dkr.ecr.us-east-1.amazonaws.com/app", ""},
		{"registry.local:5000/a/b:t@sha256:" + strings.Repeat("0", 64), "registry.local:5000/a/b", ""},
		{"localhost/app", "localhost/app", ""},
		{"[::1]:5000/app", "[::1]:5000/app", ""},
		{"Registry.IO/app", "Registry.IO/app", ""},
		{"public.ecr.aws/team/app:latest", "public.ecr.aws/team/app", ""},
		{"registry.io/App", "", "must be lowercase"},
		{strings.Repeat("a", 64), "", "64-byte hexadecimal"},
		{"", "", "invalid reference format"},
		{"registry.io/app:", "", "invalid reference format"},
		{"registry.io/app@sha256:abc", "", "invalid reference format"},
		{"registry.io/app@md5:" + strings.Repeat("a", 32), "", "unsupported digest algorithm"},
		{"registry.io/app@sha256:" + strings.Repeat("a", 63) + "A", "", "invalid checksum digest format"},
		{"registry.io/app@sha512:" + strings.Repeat("a", 64), "", "invalid checksum digest length"},
		{"registry.io/" + strings.Repeat("a", 256), "", "255 characters"},
	}
	for _, c := range cases {
		got, err := ImageName(c.image)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ImageName(%q) = %q, %v; want error containing %q", c.image, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ImageName(%q) = %q, %v; want %q", c.image, got, err, c.want)
		}
	}
}
