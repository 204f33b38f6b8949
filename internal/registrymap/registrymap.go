// Package registrymap holds the operator's map from the registries that pod
// specs name (docker.io, ghcr.io, a custom domain) to the private ECR
// registries that serve them: an ECR pull-through cache under a repository
// prefix, or ECR behind a CNAME. The plugin fetches the token for the mapped
// ECR registry and answers for the host the kubelet asked about.
//
// It is on the plugin's cache-hit path (package fastpath), so it imports only
// what that path already has.
package registrymap

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/kubecred/ecr-credential-provider/internal/ecrhost"
)

// Env is the environment variable that holds comma-separated rules.
const Env = "ECR_CREDENTIAL_PROVIDER_REGISTRY_MAP"

// maxFileSize bounds a map file: a map is a few lines, and a file that
// is not one must not be read whole into a plugin call.
const maxFileSize = 1 << 20

// Rule maps one source registry to an ECR registry.
type Rule struct {
	// Source is the registry host as images name it (port included), in
	// lower case; Docker Hub's aliases are folded into docker.io.
	Source string
	// Target is the private ECR registry whose token serves Source.
	Target ecrhost.Registry
	// Prefix is the repository path under Target that mirrors Source (a
	// pull-through cache's prefix), empty for a custom domain.
	Prefix string
}

// String gives the rule in the form Parse reads.
func (r Rule) String() string {
	if r.Prefix == "" {
		return r.Source + "=" + r.Target.Host
	}
	return r.Source + "=" + r.Target.Host + "/" + r.Prefix
}

// Repository is the repository on Target that serves repo on Source.
func (r Rule) Repository(repo string) string {
	if r.Prefix == "" {
		return repo
	}
	return r.Prefix + "/" + repo
}

// Map is a set of rules, at most one per source.
type Map struct {
	rules []Rule
}

// Rules returns the rules in the order they were given.
func (m Map) Rules() []Rule { return append([]Rule(nil), m.rules...) }

// Len is the number of rules.
func (m Map) Len() int { return len(m.rules) }

// Lookup returns the rule for a registry host (port included), matched
// case-insensitively and with Docker Hub's aliases folded together.
func (m Map) Lookup(host string) (Rule, bool) {
	h := canonicalHost(host)
	for _, r := range m.rules {
		if r.Source == h {
			return r, true
		}
	}
	return Rule{}, false
}

// dockerHubAliases are the names Docker Hub's registry answers to; images
// normalized by the kubelet say docker.io.
var dockerHubAliases = []string{"index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}

func canonicalHost(host string) string {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	for _, a := range dockerHubAliases {
		if h == a {
			return "docker.io"
		}
	}
	return h
}

// Error is a rule that cannot be used, with the entry it came from.
type Error struct {
	Entry  string
	Reason string
}

func (e *Error) Error() string {
	return fmt.Sprintf("registry map entry %s: %s", quote(e.Entry), e.Reason)
}

// quote quotes an echoed value and keeps it to a readable length: entries
// come from config files and env that may hold anything.
func quote(s string) string {
	if q := strconv.Quote(s); len(q) <= 120 {
		return q
	}
	return strconv.Quote(s[:min(len(s), 100)])[:100] + `..."`
}

// ParseRule reads one SOURCE=TARGET entry, where TARGET is a private ECR
// registry host optionally followed by a repository prefix.
func ParseRule(entry string) (Rule, error) {
	bad := func(format string, a ...any) (Rule, error) {
		return Rule{}, &Error{Entry: entry, Reason: fmt.Sprintf(format, a...)}
	}
	src, dst, ok := strings.Cut(strings.TrimSpace(entry), "=")
	src, dst = strings.TrimSpace(src), strings.TrimSpace(dst)
	if !ok || src == "" || dst == "" {
		return bad("want SOURCE=TARGET, e.g. docker.io=123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub")
	}
	if err := checkHost(src); err != nil {
		return bad("source %v; give a registry host such as docker.io or registry.example.com:5000", err)
	}
	src = canonicalHost(src)
	if strings.Contains(dst, "://") {
		return bad("target is a registry host and optional prefix, without a scheme")
	}
	host, prefix, _ := strings.Cut(dst, "/")
	if err := checkHost(host); err != nil {
		return bad("target %v", err)
	}
	reg, err := ecrhost.Parse(host + "/x")
	if err != nil || !reg.ECR || reg.Public {
		return bad("target %s is not a private ECR registry (want <account>.dkr.ecr.<region>.amazonaws.com or another partition's, FIPS or dual-stack form)", quote(host))
	}
	if strings.Contains(reg.Host, ":") {
		return bad("target %s has a port; ECR registries are served on 443", quote(host))
	}
	prefix = strings.Trim(prefix, "/")
	if err := checkPrefix(prefix); err != nil {
		return bad("target prefix %v", err)
	}
	if src, err := ecrhost.Parse(src + "/x"); err == nil && src.ECR {
		return bad("source %s is already an ECR registry; it needs no map", quote(src.Host))
	}
	return Rule{Source: src, Target: reg, Prefix: prefix}, nil
}

// checkHost accepts host, host:port and [v6]:port, in the characters DNS
// names and IP literals use.
func checkHost(h string) error {
	if h == "" {
		return errors.New("is empty")
	}
	if strings.ContainsAny(h, "/@ \t\r\n\\?#=,") {
		return fmt.Errorf("%s is not a registry host", quote(h))
	}
	name, port := h, ""
	if strings.HasPrefix(h, "[") {
		end := strings.Index(h, "]")
		if end < 0 {
			return fmt.Errorf("%s has an unclosed [", quote(h))
		}
		name, port = h[1:end], h[end+1:]
		if port != "" && !strings.HasPrefix(port, ":") {
			return fmt.Errorf("%s has text after ]", quote(h))
		}
		port = strings.TrimPrefix(port, ":")
		if name == "" || strings.Trim(name, "0123456789abcdefABCDEF:.") != "" {
			return fmt.Errorf("%s is not an IPv6 literal", quote(h))
		}
	} else if i := strings.LastIndex(h, ":"); i >= 0 {
		name, port = h[:i], h[i+1:]
		if port == "" {
			return fmt.Errorf("%s has an empty port", quote(h))
		}
	}
	if port != "" && (len(port) > 5 || strings.Trim(port, "0123456789") != "") {
		return fmt.Errorf("%s has a bad port", quote(h))
	}
	if strings.HasPrefix(h, "[") {
		return nil
	}
	if name == "" || len(name) > 253 {
		return fmt.Errorf("%s is not a registry host", quote(h))
	}
	for _, label := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' ||
			strings.Trim(strings.ToLower(label), "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
			return fmt.Errorf("%s is not a registry host", quote(h))
		}
	}
	return nil
}

// checkPrefix accepts what ECR allows in a repository name's path
// components: lower-case letters, digits and . _ - between slashes.
func checkPrefix(p string) error {
	if p == "" {
		return nil
	}
	if len(p) > 200 {
		return errors.New("is longer than 200 characters")
	}
	for _, c := range strings.Split(p, "/") {
		if c == "" || strings.Trim(c, "abcdefghijklmnopqrstuvwxyz0123456789._-") != "" ||
			strings.Trim(c, "._-") == "" {
			return fmt.Errorf("%s is not a repository path (lower-case letters, digits and . _ - between slashes)", quote(p))
		}
	}
	return nil
}

// Parse reads entries into a Map, refusing a source given twice.
func Parse(entries []string) (Map, error) {
	var m Map
	var errs []error
	seen := map[string]string{}
	for _, e := range entries {
		r, err := ParseRule(e)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if prev, dup := seen[r.Source]; dup {
			errs = append(errs, &Error{Entry: e, Reason: fmt.Sprintf("source %s is already mapped by %s; keep one", r.Source, quote(prev))})
			continue
		}
		seen[r.Source] = e
		m.rules = append(m.rules, r)
	}
	return m, joinErrors(errs)
}

// joinErrors joins on one line: the kubelet shows the plugin's stderr as
// one line, and errors.Join would break it.
func joinErrors(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return errors.New(strings.Join(msgs, "; "))
}

// SplitList splits a comma-separated list of entries, as the env var holds.
func SplitList(s string) []string {
	var out []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// ReadFile reads entries from a map file: one SOURCE=TARGET a line, blank
// lines and lines starting with # ignored.
func ReadFile(name string) ([]string, error) {
	// O_NONBLOCK so a FIFO planted at the path cannot hang the kubelet's
	// call; it is then refused as not a regular file.
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("registry map file: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil {
		return nil, fmt.Errorf("registry map file: %w", err)
	} else if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("registry map file %s is not a regular file", name)
	} else if st.Size() > maxFileSize {
		return nil, fmt.Errorf("registry map file %s is larger than %d bytes", name, maxFileSize)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("registry map file: %w", err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("registry map file %s is larger than %d bytes", name, maxFileSize)
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, line)
	}
	return out, nil
}
