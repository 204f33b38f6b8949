package nodesetup

import (
	"errors"
	"fmt"
	"path"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/kubecred/ecr-credential-provider/internal/containerdhosts"
	"github.com/kubecred/ecr-credential-provider/internal/kubeletwiring"
	"github.com/kubecred/ecr-credential-provider/internal/lazyregexp"
	"github.com/kubecred/ecr-credential-provider/internal/providerconfig"
	"github.com/kubecred/ecr-credential-provider/internal/registrymap"
)

// The pull-through cache side of the registry map. The plugin answers for
// docker.io with an ECR token only when the map says so; the runtime must
// then fetch docker.io's images from the ECR registry, and from nowhere
// else: credentials the kubelet hands containerd carry no server address,
// so containerd sends them to every host it tries for the pull, a fallback
// to docker.io included. So by default the runtime's mirror has no
// fallback, and one is written only when the operator asks.

// containerdConfig is containerd's own config, read (never written) for
// where it looks for hosts.toml files.
const containerdConfig = containerdhosts.Config

// roleMirror marks a runtime mirror file install wrote: a containerd
// hosts.toml (all of it ours), or a k3s/rke2 registries.yaml (ours are the
// mirrors named in Keys).
const roleMirror = "mirror"

// mirrorHeader starts every hosts.toml install writes.
const mirrorHeader = "# Written by 'ecr-credential-provider install --pull-through-cache'; 'ecr-credential-provider uninstall' removes it.\n"

// registryMapArg is the provider arg that carries one rule.
func registryMapArg(r registrymap.Rule) string { return "--registry-map=" + r.String() }

// mirrorURL is where containerd fetches a source's repositories from: the
// ECR registry's API root under the rule's prefix.
func mirrorURL(r registrymap.Rule) string {
	u := "https://" + r.Target.Host + "/v2"
	if r.Prefix != "" {
		u += "/" + r.Prefix
	}
	return u
}

// hostsTOML is containerd's hosts.toml for one rule. Without fallback the
// ECR registry is the server too, so containerd has no other host to try.
func hostsTOML(r registrymap.Rule, fallback bool) []byte {
	var b strings.Builder
	b.WriteString(mirrorHeader)
	fmt.Fprintf(&b, "# %s is pulled through the ECR pull-through cache %s.\n", r.Source, r.String())
	u := fmt.Sprintf("%q", mirrorURL(r))
	if fallback {
		b.WriteString("# WARNING: with the fallback below, a pull the cache cannot serve goes to\n# the source registry with the node's ECR token.\n")
		fmt.Fprintf(&b, "server = %q\n", containerdhosts.DefaultEndpoint(r.Source))
	} else {
		b.WriteString("# No fallback to the source registry: it would be sent the node's ECR token.\n")
		fmt.Fprintf(&b, "server = %s\noverride_path = true\n", u)
	}
	fmt.Fprintf(&b, "\n[host.%s]\n  capabilities = [\"pull\", \"resolve\"]\n  override_path = true\n", u)
	return []byte(b.String())
}

// containerdHostsDir is where containerd reads hosts.toml files. Without
// a config_path it reads none: install says what to add and stops, as the
// map without the mirror would send the ECR token to the source.
func containerdHostsDir(n *nodeFS) (string, error) {
	st, err := n.read(containerdConfig)
	if err != nil {
		return "", err
	}
	dir, err := containerdhosts.Dir(st.Data, st.Exists)
	var nc *containerdhosts.NoConfigPathError
	switch {
	case errors.As(err, &nc):
		return "", fmt.Errorf("refusing to set up the pull-through cache: %v, so containerd would not read the hosts.toml install writes and would pull from the source registry with the ECR token; add this to %s (install does not edit containerd's config), restart containerd, then run install again:\n%s", err, containerdConfig, nc.Snippet())
	case err != nil:
		return "", fmt.Errorf("%w; set the pull-through cache up by hand", err)
	}
	return dir, nil
}

// planMirrors is what install writes for the runtime: a hosts.toml per
// rule under containerd's config_path, or for k3s and rke2 the mirrors in
// their registries.yaml (which they turn into hosts.toml themselves).
// A mirror file someone else wrote is replaced only with force; one install
// wrote and someone edited since is kept as it is.
func planMirrors(n *nodeFS, m *manifest, d Distro, o Options) ([]change, []string, error) {
	if len(o.PullThroughCache) == 0 {
		return nil, nil, nil
	}
	var notes []string
	if o.PullThroughCacheFallback {
		notes = append(notes, fmt.Sprintf("WARNING: --pull-through-cache-fallback: a pull the cache cannot serve goes on to the source registry (%s) with the node's ECR token", strings.Join(mirrorSources(o.PullThroughCache), ", ")))
	}
	if d == K3s || d == RKE2 {
		c, more, err := planRegistriesYAML(n, m, d, o)
		return c, append(notes, more...), err
	}
	if d == EKS {
		return nil, nil, usageErrorf("--pull-through-cache is not supported on EKS nodes yet: the AMI owns containerd's config; set up the hosts.toml and the provider's --registry-map by hand")
	}
	dir, err := containerdHostsDir(n)
	if err != nil {
		return nil, nil, err
	}
	var changes []change
	for _, r := range o.PullThroughCache {
		p := path.Join(dir, r.Source, "hosts.toml")
		want := hostsTOML(r, o.PullThroughCacheFallback)
		cur, err := n.read(p)
		if err != nil {
			return nil, nil, err
		}
		e := m.find(p)
		switch {
		case !cur.Exists || sameContent(cur, want):
		case e == nil && !o.Force:
			return nil, nil, fmt.Errorf("%s exists and is not install's: containerd already has a configuration for %s; merge the pull-through cache into it by hand, or pass --force to replace it (a backup is kept, and uninstall puts it back)", p, r.Source)
		case e != nil && !e.wrote(cur.Data) && !backupHolds(n, e, cur):
			notes = append(notes, fmt.Sprintf("kept %s as it is: it was edited since install wrote it (install would write:\n%s)", p, want))
			want = cur.Data
		}
		changes = append(changes, change{Path: p, Data: want, Role: roleMirror})
	}
	return changes, notes, nil
}

func mirrorSources(rules []registrymap.Rule) []string {
	var out []string
	for _, r := range rules {
		out = append(out, r.Source)
	}
	return out
}

// disableDefaultEndpoint is the k3s/rke2 setting without which their
// containerd falls back to the source registry after every mirror.
const disableDefaultEndpoint = "disable-default-registry-endpoint"

// registriesYAMLFor is where k3s or rke2 read their mirrors.
func registriesYAMLFor(d Distro) string {
	return path.Join(path.Dir(rancherFor(d).config), "registries.yaml")
}

// registryMirror is one mirror in registries.yaml as install writes it.
func registryMirror(r registrymap.Rule) map[string]any {
	mirror := map[string]any{"endpoint": []any{"https://" + r.Target.Host}}
	if r.Prefix != "" {
		mirror["rewrite"] = map[string]any{"^(.*)$": r.Prefix + "/$1"}
	}
	return mirror
}

func planRegistriesYAML(n *nodeFS, m *manifest, d Distro, o Options) ([]change, []string, error) {
	r := rancherFor(d)
	if !o.PullThroughCacheFallback {
		st, err := n.read(r.config)
		if err != nil {
			return nil, nil, err
		}
		cfg, err := kubeletwiring.ParseRancherConfig(r.config, st.Data)
		if err != nil {
			return nil, nil, err
		}
		if v := cfg[disableDefaultEndpoint]; v != true && v != "true" {
			return nil, nil, fmt.Errorf("refusing to set up the pull-through cache: %s falls back to the source registry after its mirrors, and would send it the ECR token; add this line to %s (%s v1.26.13 or later; it applies only to registries with mirrors), restart %s, then run install again (or pass --pull-through-cache-fallback to accept the fallback):\n%s: true", r.name, r.config, r.name, r.name, disableDefaultEndpoint)
		}
	}
	p := registriesYAMLFor(d)
	cur, err := n.read(p)
	if err != nil {
		return nil, nil, err
	}
	doc := map[string]any{}
	if cur.Exists {
		if doc, err = kubeletwiring.ParseRancherConfig(p, cur.Data); err != nil {
			return nil, nil, err
		}
	}
	mirrors, _ := doc["mirrors"].(map[string]any)
	if doc["mirrors"] != nil && mirrors == nil {
		return nil, nil, fmt.Errorf("refusing to edit %s: its mirrors is not a mapping", p)
	}
	if mirrors == nil {
		mirrors = map[string]any{}
	}
	e := m.find(p)
	var keys, notes []string
	text := string(cur.Data)
	if !cur.Exists {
		text = "# Mirrors for " + r.name + "'s containerd, written by 'ecr-credential-provider install --pull-through-cache'.\n"
	}
	textOK := true
	for _, rule := range o.PullThroughCache {
		want := registryMirror(rule)
		got, ok := mirrors[rule.Source]
		keys = append(keys, rule.Source)
		switch {
		case ok && reflect.DeepEqual(jsonRound(got), jsonRound(want)):
			continue
		case ok && (e == nil || !slices.Contains(e.Keys, rule.Source)) && !o.Force:
			return nil, nil, fmt.Errorf("%s already has a mirror for %s that is not install's; merge the pull-through cache into it by hand, or pass --force to replace it", p, rule.Source)
		case ok:
			text, textOK = removeMirrorText(text, rule.Source)
		}
		if textOK {
			text, textOK = addMirrorText(text, rule)
		}
		mirrors[rule.Source] = want
	}
	doc["mirrors"] = mirrors
	data := []byte(text)
	if got, err := kubeletwiring.ParseRancherConfig(p, data); err != nil || !textOK || !reflect.DeepEqual(jsonRound(got), jsonRound(doc)) {
		// A layout the text edit cannot follow (flow style, odd
		// indentation): write the mapping afresh, without its comments.
		out, err := yaml.Marshal(doc)
		if err != nil {
			return nil, nil, err
		}
		data = out
		notes = append(notes, fmt.Sprintf("rewrote %s to add the mirrors, as its layout allows no safe text edit: its comments are not kept (uninstall restores the original while the file is unchanged)", p))
	}
	return []change{{Path: p, Data: data, Role: roleMirror, Keys: keys}}, notes, nil
}

var mirrorsKeyRe = lazyregexp.New(`^mirrors[ \t]*:[ \t]*(#.*)?\r?$`)

// mirrorsBlock finds the top-level "mirrors:" line and the lines of its
// block (up to the next line in column 0 that is not a comment), and the
// indentation of its entries ("" when it has none yet).
func mirrorsBlock(lines []string) (at, end int, indent string) {
	at = slices.IndexFunc(lines, func(l string) bool { return mirrorsKeyRe.MatchString(strings.TrimSuffix(l, "\n")) })
	if at < 0 {
		return -1, -1, ""
	}
	end = at + 1
	for end < len(lines) {
		l := strings.TrimRight(lines[end], "\r\n")
		if l != "" && l[0] != ' ' && l[0] != '\t' && l[0] != '#' {
			break
		}
		if t := strings.TrimLeft(l, " "); indent == "" && t != "" && t[0] != '#' {
			indent = l[:len(l)-len(t)]
		}
		end++
	}
	return at, end, indent
}

// addMirrorText adds one mirror to registries.yaml's text, in the
// indentation of the entries already there. ok is false when the file's
// layout is not one it can follow; the caller checks the result parses to
// what it wants either way.
func addMirrorText(text string, r registrymap.Rule) (string, bool) {
	lines := strings.SplitAfter(text, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	if len(lines) > 0 && !strings.HasSuffix(lines[len(lines)-1], "\n") {
		lines[len(lines)-1] += "\n"
	}
	at, end, indent := mirrorsBlock(lines)
	if indent == "" {
		indent = "  "
	}
	key := r.Source
	if strings.Contains(key, ":") {
		key = fmt.Sprintf("%q", key)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s%s:\n%s  endpoint:\n%s    - %q\n", indent, key, indent, indent, "https://"+r.Target.Host)
	if r.Prefix != "" {
		fmt.Fprintf(&b, "%s  rewrite:\n%s    %q: %q\n", indent, indent, "^(.*)$", r.Prefix+"/$1")
	}
	if at < 0 {
		if slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, "mirrors") }) {
			return text, false
		}
		return strings.Join(lines, "") + "mirrors:\n" + b.String(), true
	}
	// After the block's last entry line; blank lines and comments that
	// end it stay after ours.
	for end > at+1 && (strings.TrimSpace(lines[end-1]) == "" || lines[end-1][0] == '#') {
		end--
	}
	return strings.Join(slices.Insert(lines, end, b.String()), ""), true
}

// removeMirrorText takes one mirror's entry out of registries.yaml's text,
// and the mirrors key too when no entry is left.
func removeMirrorText(text, source string) (string, bool) {
	lines := strings.SplitAfter(text, "\n")
	at, end, indent := mirrorsBlock(lines)
	if at < 0 || indent == "" {
		return text, false
	}
	keyRe := regexp.MustCompile(`^` + indent + `("` + regexp.QuoteMeta(source) + `"|'` + regexp.QuoteMeta(source) + `'|` + regexp.QuoteMeta(source) + `)[ \t]*:[ \t]*(#.*)?\r?\n?$`)
	i := slices.IndexFunc(lines[at+1:end], keyRe.MatchString)
	if i < 0 {
		return text, false
	}
	i += at + 1
	j := i + 1
	for j < end {
		l := strings.TrimRight(lines[j], "\r\n")
		if t := strings.TrimLeft(l, " \t"); t != "" && len(l)-len(t) <= len(indent) {
			break
		}
		j++
	}
	// Blank lines that end the entry stay with the layout.
	for j > i+1 && strings.TrimSpace(lines[j-1]) == "" {
		j--
	}
	lines = slices.Delete(lines, i, j)
	end -= j - i
	if !slices.ContainsFunc(lines[at+1:end], func(l string) bool {
		t := strings.TrimSpace(l)
		return t != "" && t[0] != '#'
	}) {
		lines = slices.Delete(lines, at, at+1)
	}
	return strings.Join(lines, ""), true
}

// jsonRound makes a YAML value comparable with one install built.
func jsonRound(v any) any {
	b, _ := yaml.Marshal(v)
	var out any
	_ = yaml.Unmarshal(b, &out)
	return out
}

// registriesHeader is the first line of a registries.yaml install creates.
const registriesHeader = "# Mirrors for "

// withoutMirrors takes the mirrors install added (keys) out of an edited
// registries.yaml, each only while it is still as install wrote it, by a
// text edit checked to leave exactly the rest.
func withoutMirrors(p string, data []byte, keys []string, rules []string) (out []byte, changed, empty bool, err error) {
	doc, err := kubeletwiring.ParseRancherConfig(p, data)
	if err != nil {
		return nil, false, false, err
	}
	mirrors, _ := doc["mirrors"].(map[string]any)
	text := string(data)
	for _, k := range keys {
		got, ok := mirrors[k]
		if !ok {
			continue
		}
		for _, s := range rules {
			r, err := registrymap.ParseRule(s)
			if err != nil || r.Source != k || !reflect.DeepEqual(jsonRound(got), jsonRound(registryMirror(r))) {
				continue
			}
			var ok bool
			if text, ok = removeMirrorText(text, k); !ok {
				return nil, false, false, fmt.Errorf("cannot find the mirror for %s in its text", k)
			}
			delete(mirrors, k)
			changed = true
		}
	}
	if !changed {
		return data, false, false, nil
	}
	if len(mirrors) == 0 {
		delete(doc, "mirrors")
	}
	got, err := kubeletwiring.ParseRancherConfig(p, []byte(text))
	if err != nil || !reflect.DeepEqual(jsonRound(got), jsonRound(doc)) {
		return nil, false, false, fmt.Errorf("cannot take the mirrors for %s out by a safe text edit; remove them by hand", strings.Join(keys, ", "))
	}
	empty = len(doc) == 0 && !slices.ContainsFunc(strings.Split(text, "\n"), func(l string) bool {
		l = strings.TrimSpace(l)
		return l != "" && !strings.HasPrefix(l, registriesHeader)
	})
	return []byte(text), true, empty, nil
}

// withMap sets the registry map in our provider entry of a provider
// config: the rules' args and sources, with those of an earlier install
// that are no longer wanted (drop) taken out, and every other arg and
// pattern kept. A source the operator already maps in the entry is
// refused: the plugin would see it mapped twice.
func withMap(p string, data []byte, rules []registrymap.Rule, drop []string) ([]byte, error) {
	if len(rules) == 0 && len(drop) == 0 {
		return data, nil
	}
	f, err := decodeStrict(p, data)
	if err != nil {
		return nil, err
	}
	providers := slices.Clone(f.Config.Providers)
	i := slices.IndexFunc(providers, func(pr providerconfig.CredentialProvider) bool { return pr.Name == providerconfig.DefaultName })
	if i < 0 {
		return data, nil
	}
	pr := providers[i]
	var dropArgs, dropImages []string
	for _, s := range drop {
		if r, err := registrymap.ParseRule(s); err == nil {
			dropArgs, dropImages = append(dropArgs, registryMapArg(r)), append(dropImages, r.Source)
		}
	}
	var args, images []string
	for _, a := range pr.Args {
		if !slices.Contains(dropArgs, a) {
			args = append(args, a)
		}
	}
	for _, g := range pr.MatchImages {
		if !slices.Contains(dropImages, g) {
			images = append(images, g)
		}
	}
	// The map the entry has without our rules (args in either form, env,
	// a map file) must not already map a source: the plugin would refuse
	// the source mapped twice.
	others := pr
	others.Args = slices.DeleteFunc(slices.Clone(args), func(a string) bool {
		return slices.ContainsFunc(rules, func(r registrymap.Rule) bool { return registryMapArg(r) == a })
	})
	for _, r := range rules {
		if target, ok, err := providerconfig.Mapping(others, r.Source+"/x"); err == nil && ok {
			return nil, fmt.Errorf("%s already maps %s (to %s, in our provider's args or env); take that out, or leave %s out of --pull-through-cache", p, r.Source, strings.TrimSuffix(target, "/x"), r.Source)
		}
	}
	for _, r := range rules {
		a := registryMapArg(r)
		if !slices.Contains(args, a) {
			args = append(args, a)
		}
		if !slices.Contains(images, r.Source) {
			images = append(images, r.Source)
		}
	}
	if slices.Equal(args, pr.Args) && slices.Equal(images, pr.MatchImages) {
		return data, nil
	}
	pr.Args, pr.MatchImages = args, images
	providers[i] = pr
	for j := range providers {
		providers[j].File, providers[j].Index = "", 0
	}
	return encodeConfig(f, providers)
}

// droppedRules are the rules an earlier install recorded that are no
// longer wanted: their args and sources come out of the provider config.
func droppedRules(m *manifest, want []registrymap.Rule) []string {
	if m == nil {
		return nil
	}
	var out []string
	for _, s := range m.Mirrors {
		if !slices.ContainsFunc(want, func(r registrymap.Rule) bool { return r.String() == s }) {
			out = append(out, s)
		}
	}
	return out
}
