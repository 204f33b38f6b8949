package providerconfig

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
)

// The kubelet decides whether to call a provider by matching each of its
// matchImages against the image name (pkg/credentialprovider/keyring.go,
// URLsMatchStr, unchanged from 1.26 to 1.37). The functions here follow it
// step for step, in the same order, so that they agree on every input,
// including patterns the kubelet accepts but that can never match.

// parseSchemeless parses s as the kubelet does: as the rest of an https URL.
func parseSchemeless(s string) (*url.URL, error) {
	u, err := url.Parse("https://" + s)
	if err != nil {
		return nil, err
	}
	u.Scheme = ""
	return u, nil
}

// splitHost returns the host's dot-separated labels and its port. A host
// without a parsable port (including a bracketed IPv6 address without
// one) is taken whole, as the kubelet does.
func splitHost(u *url.URL) (labels []string, port string) {
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		host, port = u.Host, ""
	}
	return strings.Split(host, "."), port
}

// URLsMatchStr reports whether the kubelet would consider target (an image
// name without tag or digest, such as "123456789012.dkr.ecr.us-east-1.amazonaws.com/app")
// matched by glob (one matchImages entry). Its results, errors included, are
// the kubelet's.
func URLsMatchStr(glob, target string) (bool, error) {
	ok, _, err := match(glob, target)
	return ok, err
}

// Explain is URLsMatchStr with the reason: which check decided, in the
// kubelet's order (port, label count, path prefix, then each label's glob).
func Explain(glob, target string) (matched bool, reason string) {
	ok, reason, _ := match(glob, target)
	return ok, reason
}

func match(glob, target string) (bool, string, error) {
	g, err := parseSchemeless(glob)
	if err != nil {
		return false, fmt.Sprintf("pattern %q is not a valid URL: %v", glob, unwrapURLError(err)), err
	}
	t, err := parseSchemeless(target)
	if err != nil {
		return false, fmt.Sprintf("image %q is not a valid URL: %v", target, unwrapURLError(err)), err
	}
	gl, gport := splitHost(g)
	tl, tport := splitHost(t)
	if gport != tport {
		switch {
		case tport == "":
			return false, fmt.Sprintf("port: pattern has port %s, the image has none (ports are compared as written)", gport), nil
		case gport == "":
			return false, fmt.Sprintf("port: the image has port %s, the pattern has none (a pattern without port matches only images without port)", tport), nil
		}
		return false, fmt.Sprintf("port: pattern has port %s, the image has port %s", gport, tport), nil
	}
	if len(gl) != len(tl) {
		why := ""
		if strings.Contains(g.Host, "*") {
			why = " (each '*' matches exactly one label)"
		}
		return false, fmt.Sprintf("label count: pattern host %q has %d labels, image host %q has %d%s",
			hostOnly(g), len(gl), hostOnly(t), len(tl), why), nil
	}
	if !strings.HasPrefix(t.Path, g.Path) {
		return false, fmt.Sprintf("path prefix: image path %q does not start with pattern path %q (paths are literal prefixes, not globs)", t.Path, g.Path), nil
	}
	for i, p := range gl {
		ok, err := filepath.Match(p, tl[i])
		if err != nil {
			return false, fmt.Sprintf("label %d: %q is not a valid glob: %v", i, p, err), err
		}
		if !ok {
			why := ""
			if strings.Contains(p, "[") {
				why = " ('[...]' is a glob character class)"
			}
			return false, fmt.Sprintf("label %d: %q does not match %q%s", i, p, tl[i], why), nil
		}
	}
	return true, "matches", nil
}

func hostOnly(u *url.URL) string {
	h, _ := splitHost(u)
	return strings.Join(h, ".")
}

func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

// ProviderMatch is one provider's verdict for one image.
type ProviderMatch struct {
	Provider CredentialProvider
	// Called is true when some pattern matches: the kubelet runs the plugin.
	Called bool
	// Matched are the patterns that match; Missed the others, with why.
	Matched []string
	Missed  []PatternMiss
}

// PatternMiss is a pattern that does not match, and the reason.
type PatternMiss struct {
	Pattern string
	Reason  string
	// Check is the kubelet's check that decided, the part of Reason
	// before its first colon: "port", "label count", "path prefix" or
	// "label N" (for an unparsable pattern or image, the whole sentence).
	Check string
}

// MatchImage normalizes image as the kubelet does and returns that name
// and every provider's verdict, in the order kubelet ver calls providers
// (all matching providers are called and their credentials merged).
func MatchImage(providers []CredentialProvider, image string, ver Version) (string, []ProviderMatch, error) {
	name, err := ImageName(image)
	if err != nil {
		return "", nil, err
	}
	ps := append([]CredentialProvider(nil), providers...)
	if !ver.orNewest().callsInConfigOrder() {
		sort.SliceStable(ps, func(i, j int) bool { return ps[i].Name < ps[j].Name })
	}
	out := make([]ProviderMatch, len(ps))
	for i, p := range ps {
		out[i].Provider = p
		for _, m := range p.MatchImages {
			if ok, reason := Explain(m, name); ok {
				out[i].Called = true
				out[i].Matched = append(out[i].Matched, m)
			} else {
				check, _, _ := strings.Cut(reason, ":")
				out[i].Missed = append(out[i].Missed, PatternMiss{m, reason, check})
			}
		}
	}
	return name, out, nil
}
