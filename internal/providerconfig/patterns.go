package providerconfig

import (
	"fmt"
	"strings"

	"github.com/kubecred/ecr-credential-provider/internal/ecrhost"
)

type patternWarning struct{ msg, hint string }

// patternWarnings explains why a pattern the kubelet accepts matches fewer
// images than its author likely meant. Each rule follows from URLsMatchStr:
// labels are globbed one by one, ports and paths are compared literally.
func patternWarnings(m string) []patternWarning {
	var out []patternWarning
	add := func(hint, format string, args ...any) {
		out = append(out, patternWarning{fmt.Sprintf(format, args...), hint})
	}
	if m == "" {
		add("remove it", "an empty pattern matches no image")
		return out
	}
	if i := strings.Index(m, "://"); i >= 0 {
		add(fmt.Sprintf("write %q", m[i+3:]), "%q has a scheme: patterns are matched as host[:port][/path] and this one matches no image", m)
		return out
	}
	u, err := parseSchemeless(m)
	if err != nil {
		return out
	}
	if strings.ContainsAny(u.Path, "*?[") {
		add(fmt.Sprintf("use %q to match the whole registry", hostPart(m)),
			"%q has a glob in its path, but globs work only in the host: the path is a literal prefix, so this matches only image names whose path starts with %q", m, u.Path)
	}
	if strings.ContainsAny(u.Path, ":@") {
		add(fmt.Sprintf("use %q", strings.SplitN(strings.SplitN(m, "@", 2)[0], ":", 2)[0]),
			"%q has a tag or digest: the kubelet matches the image name without them, so this matches no image", m)
	}
	labels, port := splitHost(u)
	host := strings.Join(labels, ".")
	if strings.ToLower(host) != host {
		add(fmt.Sprintf("write %q", strings.ToLower(host)), "%q has upper-case letters: matching is case-sensitive, and registry hosts are written in lower case", host)
	}
	if port != "" && (port == "443" || port == "80" || coversECR(host)) {
		add(fmt.Sprintf("use %q", strings.Replace(m, ":"+port, "", 1)),
			"%q has port %s: ports are compared as written, so it matches only images that spell out :%s, which ECR images never do", m, port, port)
	}
	if hint, msg := ecrLabelCount(labels); msg != "" {
		add(hint, "%s", msg)
		return out
	}
	switch {
	case len(labels) == 1 && labels[0] == "*":
		add("list the registries, e.g. \"*.example.com\"", "%q matches only hosts of one label (such as localhost): each '*' matches one DNS label, and Docker Hub images are docker.io/...", m)
	case len(labels) == 2 && labels[0] == "*":
		add(fmt.Sprintf("add \"*.*.%s\" (and deeper) for hosts with more labels", labels[1]),
			"%q matches only hosts of exactly two labels such as quay.%s: each '*' matches one DNS label, so it does not match a.k8s.%s", m, labels[1], labels[1])
	}
	return out
}

func hostPart(m string) string {
	h, _, _ := strings.Cut(m, "/")
	return h
}

func coversECR(host string) bool {
	for _, f := range ecrhost.Forms {
		if ok, _ := URLsMatchStr(host, f.Host); ok {
			return true
		}
	}
	for _, h := range ecrhost.PublicHosts {
		if ok, _ := URLsMatchStr(host, h); ok {
			return true
		}
	}
	return false
}

// ecrLabelCount warns about a pattern aimed at an ECR domain (its last two
// labels are those of some ECR host) that has a label count no ECR host
// under that domain has, such as "*.amazonaws.com".
func ecrLabelCount(labels []string) (hint, msg string) {
	n := len(labels)
	if n < 2 || strings.ContainsAny(labels[n-2]+labels[n-1], "*?[\\") {
		return "", ""
	}
	suffix := "." + labels[n-2] + "." + labels[n-1]
	var example string
	var counts []int
	hosts := append([]string(nil), ecrhost.PublicHosts...)
	for _, f := range ecrhost.Forms {
		hosts = append(hosts, f.Host)
	}
	for _, h := range hosts {
		if !strings.HasSuffix("."+h, suffix) {
			continue
		}
		c := strings.Count(h, ".") + 1
		if c == n {
			return "", ""
		}
		if example == "" {
			example = h
		}
		if !containsInt(counts, c) {
			counts = append(counts, c)
		}
	}
	if example == "" {
		return "", ""
	}
	var use []string
	for _, p := range ecrhost.MatchImages(true) {
		if strings.HasSuffix("."+p, suffix) {
			use = append(use, p)
		}
	}
	return "use " + quoteAll(use),
		fmt.Sprintf("%q has %d DNS labels, but ECR hosts under %s have %s (e.g. %s): each '*' matches exactly one label, so this matches no ECR image",
			strings.Join(labels, "."), n, suffix[1:], joinInts(counts), example)
}

func containsInt(list []int, n int) bool {
	for _, x := range list {
		if x == n {
			return true
		}
	}
	return false
}

func joinInts(list []int) string {
	s := make([]string, len(list))
	for i, n := range list {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, " or ")
}
