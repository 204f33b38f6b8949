package e2e

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/kubecred/ecr-credential-provider/internal/ecrhost"
	"github.com/kubecred/ecr-credential-provider/internal/providerconfig"
	kubeletcred "k8s.io/kubernetes/pkg/credentialprovider"
)

// Pieces the generator builds patterns and images from: ECR-shaped labels,
// every glob form filepath.Match knows (and broken ones), ports, paths,
// IPv6 literals, schemes, user info, escapes and bytes url.Parse rejects.
// The odd pieces are rarer than the plain ones so that errors stay a
// minority and most pairs get as far as the label comparison.
var (
	genLabels = []string{
		"123456789012", "210987654321", "dkr", "ecr", "ecr-fips", "dkr-ecr", "us-east-1", "us-west-2",
		"cn-north-1", "us-gov-west-1", "eu-isoe-west-1", "amazonaws", "com", "cn", "api", "aws",
		"public", "ecr-public", "registry", "k8s", "io", "gcr", "docker", "localhost", "", "0", "a", "A",
		"UPPER", "a_b", "xn--bcher-kva", "ü",
	}
	oddLabels = []string{"a b", "a%41", "%zz", "a:b", "a@b"}
	genGlobs  = []string{
		"*", "?", "??", "*-east-*", "us-*", "*1", "*.*", "**", "*?", "d?r", "ecr*", "*amazon*", `\`, `a\*`,
		"a*b?c",
	}
	bracketGlobs = []string{
		"[a-z]", "[a-z]*", "[!a-z]", "[^0-9]*", "[0-9]*", "[", "]", "[a-", "[]a]", "[z-a]", `\[`,
		"[[:alpha:]]", "[-a]", "[a-]", `[\]]`,
	}
	genPorts = []string{":5000", ":443", ":", ":0", ":99999"}
	badPorts = []string{":abc", ":*", ":5000:1"}
	genPaths = []string{
		"/", "/app", "/app/sub", "/ap", "/app*", "/*", "/a%20b", "?q=1", "#frag",
		"//double", "/app/", "/App", "/app:tag", "/app@sha256:abc",
	}
	badPaths = []string{"/%zz", "/a\x00"}
	genHosts = []string{
		"[::1]", "[fe80::1%25eth0]", "[2001:db8::1]", "::1", "[::1", "127.0.0.1", "public.ecr.aws",
		"ecr-public.aws.com", "user@host.io", "user:pw@host.io", "host.io.", ".host.io", "host..io",
		"*.dkr.ecr.*.amazonaws.com", "*.dkr.ecr.*.amazonaws.com.cn", "*.dkr-ecr.*.on.aws",
		"*.dkr.ecr-fips.*.amazonaws.com", "123456789012.dkr.ecr.us-east-1.amazonaws.com",
	}
	genPrefixes = []string{"https://", "http://", "oci://", "//", " ", "\t", "\x7f"}
)

// sometimes returns a piece of s with probability 1/every, else "".
func sometimes(r *rand.Rand, every int, s []string) string {
	if r.IntN(every) != 0 {
		return ""
	}
	return pick(r, s)
}

// genHost returns a host of n labels, each a literal label or a glob.
func genHost(r *rand.Rand, globs bool) string {
	if r.IntN(5) == 0 {
		return genHosts[r.IntN(len(genHosts))]
	}
	n := 1 + r.IntN(6)
	labels := make([]string, n)
	for i := range labels {
		switch {
		case globs && r.IntN(3) == 0:
			labels[i] = pick(r, genGlobs)
		case globs && r.IntN(25) == 0:
			labels[i] = pick(r, bracketGlobs)
		case r.IntN(40) == 0:
			labels[i] = pick(r, oddLabels)
		default:
			labels[i] = pick(r, genLabels)
		}
	}
	return strings.Join(labels, ".")
}

func pick(r *rand.Rand, s []string) string { return s[r.IntN(len(s))] }

// genPair returns a pattern and an image name. Half the images are derived
// from the pattern (globs replaced by labels, maybe one part changed), so
// that many pairs match and the rest miss by one step, which is where two
// implementations disagree if they differ at all.
func genPair(r *rand.Rand) (pattern, image string) {
	pattern = genURL(r, true)
	if r.IntN(2) == 0 {
		return pattern, genURL(r, false)
	}
	// Derive: replace each glob label with a label it may match.
	host, rest := pattern, ""
	if i := strings.IndexAny(pattern, "/?#"); i >= 0 && !strings.HasPrefix(pattern[i:], "//") {
		host, rest = pattern[:i], pattern[i:]
	}
	labels := strings.Split(host, ".")
	for i, l := range labels {
		if strings.ContainsAny(l, "*?[") {
			switch r.IntN(4) {
			case 0:
				labels[i] = pick(r, genLabels)
			case 1:
				labels[i] = strings.NewReplacer("*", "x", "?", "y", "[a-z]", "q", "[", "", "]", "").Replace(l)
			case 2:
				labels[i] = strings.ReplaceAll(l, "*", "east")
			default:
				labels[i] = l
			}
		}
	}
	switch r.IntN(6) {
	case 0:
		labels = append(labels, pick(r, genLabels))
	case 1:
		if len(labels) > 1 {
			labels = labels[1:]
		}
	}
	image = strings.Join(labels, ".")
	switch r.IntN(5) {
	case 0:
		rest += pick(r, genPaths)
	case 1:
		rest = pick(r, genPaths)
	case 2:
		image += pick(r, genPorts)
	}
	return pattern, image + rest
}

// genURL returns a host, usually plain, with now and then a scheme, port,
// path or a piece url.Parse rejects.
func genURL(r *rand.Rand, globs bool) string {
	return sometimes(r, 12, genPrefixes) + genHost(r, globs) + sometimes(r, 4, genPorts) + sometimes(r, 40, badPorts) +
		sometimes(r, 2, genPaths) + sometimes(r, 60, badPaths)
}

// TestURLsMatchStrAgreesWithKubelet compares our matcher with the
// kubelet's own on many generated pairs: the match result and whether an
// error comes back must be the same for every one.
func TestURLsMatchStrAgreesWithKubelet(t *testing.T) {
	const pairs = 50000
	r := rand.New(rand.NewPCG(20240517, 3))
	var matched, missed, errored, disagreements int
	check := func(pattern, image string) {
		wantOK, wantErr := kubeletcred.URLsMatchStr(pattern, image)
		gotOK, gotErr := providerconfig.URLsMatchStr(pattern, image)
		switch {
		case wantErr != nil:
			errored++
		case wantOK:
			matched++
		default:
			missed++
		}
		if gotOK != wantOK || (gotErr == nil) != (wantErr == nil) {
			disagreements++
			if disagreements <= 20 {
				t.Errorf("URLsMatchStr(%q, %q) = %v, %v; the kubelet says %v, %v", pattern, image, gotOK, gotErr, wantOK, wantErr)
			}
		}
	}
	// The recommended patterns against every ECR form and a few near misses.
	for _, p := range providerconfigPatterns() {
		for _, img := range []string{
			"123456789012.dkr.ecr.us-east-1.amazonaws.com/app", "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/app",
			"123456789012.dkr-ecr.us-east-1.on.aws/app", "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com/app",
			"public.ecr.aws/team/app", "ecr-public.aws.com/team/app", "123456789012.dkr.ecr.us-east-1.amazonaws.com:443/app",
			"dkr.ecr.us-east-1.amazonaws.com/app", "registry.k8s.io/pause", "nginx",
		} {
			check(p, img)
		}
	}
	for i := 0; i < pairs; i++ {
		check(genPair(r))
	}
	if disagreements > 0 {
		t.Errorf("%d of %d pairs disagree", disagreements, pairs)
	}
	t.Logf("%d pairs: %d match, %d no match, %d error", pairs, matched, missed, errored)
	// A generator that stopped producing one of the outcomes would make
	// this test pass without comparing anything interesting.
	for name, n := range map[string]int{"match": matched, "no match": missed, "error": errored} {
		if n < pairs/100 {
			t.Errorf("only %d pairs with outcome %q: the generator no longer covers it", n, name)
		}
	}
}

func providerconfigPatterns() []string {
	return append([]string{"*.dkr.ecr.*.amazonaws.com", "public.ecr.aws"}, ecrhost.MatchImages(true)...)
}
