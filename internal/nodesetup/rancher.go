package nodesetup

import (
	"fmt"
	"path"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"

	"sigs.k8s.io/yaml"
)

// RancherBinDir and RancherConfig are the paths k3s and rke2 hand the
// kubelet on their own when both exist (k3s pkg/cli/cmds/agent.go: --image-credential-provider-
// bin-dir and -config defaults; pkg/daemons/agent: ImageCredProvAvailable;
// rke2 copies both flags from k3s unchanged).
const (
	RancherBinDir = "/var/lib/rancher/credentialprovider/bin"
	RancherConfig = "/var/lib/rancher/credentialprovider/config.yaml"
)

// rancher describes k3s or rke2.
type rancher struct {
	name   string
	config string   // the config file install may edit
	units  []string // server first: the one to restart when several exist
}

func rancherFor(d Distro) rancher {
	if d == RKE2 {
		return rancher{name: "rke2", config: "/etc/rancher/rke2/config.yaml", units: []string{"rke2-server.service", "rke2-agent.service"}}
	}
	return rancher{name: "k3s", config: "/etc/rancher/k3s/config.yaml", units: []string{"k3s.service", "k3s-agent.service"}}
}

// planRancher wires k3s or rke2. With the default paths nothing needs
// wiring: k3s passes them to its kubelet as soon as both exist. Other
// paths go into config.yaml as the two top-level settings k3s and rke2
// have for them (the same as their command-line flags), edited in place.
// Settings that override config.yaml (the unit's command line, config.yaml.d
// drop-ins, kubelet-arg entries) are never edited: if they disagree with
// ours, install says where and stops.
func planRancher(n *nodeFS, d Distro, binDir, config string) (wiring, error) {
	r := rancherFor(d)
	w := wiring{Service: strings.TrimSuffix(r.units[0], ".service")}
	want := map[string]string{flagBinDir: binDir, flagConfig: config}
	defaults := map[string]string{flagBinDir: RancherBinDir, flagConfig: RancherConfig}

	// The service's command line overrides every config file.
	found := false
	for _, name := range r.units {
		u, err := loadUnit(n, name, "")
		if err != nil {
			return w, err
		}
		if len(u.Files) == 0 {
			continue
		}
		if !found {
			w.Service, found = strings.TrimSuffix(name, ".service"), true
		}
		exec, words, err := u.execStart()
		if err != nil {
			return w, err
		}
		for _, o := range findFlags(words, flagBinDir, flagConfig) {
			if o.Value != want[o.Name] {
				return w, fmt.Errorf("%s: ExecStart passes --%s=%s, which overrides %s; run install with --%s %s to use that path, or remove the flag from the unit",
					exec.where(), o.Name, o.Value, r.config, cliFlagFor(o.Name), o.Value)
			}
		}
	}

	st, err := n.read(r.config)
	if err != nil {
		return w, err
	}
	base, err := parseRancherConfig(r.config, st.Data)
	if err != nil {
		return w, err
	}
	// Drop-ins in config.yaml.d apply after config.yaml, in name order.
	dropDir := r.config + ".d"
	names, err := n.readDir(dropDir)
	if err != nil {
		return w, err
	}
	sort.Strings(names)
	sources := []string{r.config}
	configs := []map[string]any{base}
	for _, f := range names {
		if !strings.HasSuffix(f, ".yaml") && !strings.HasSuffix(f, ".yml") {
			continue
		}
		p := path.Join(dropDir, f)
		dst, err := n.read(p)
		if err != nil {
			return w, err
		}
		m, err := parseRancherConfig(p, dst.Data)
		if err != nil {
			return w, err
		}
		sources, configs = append(sources, p), append(configs, m)
	}
	for i, m := range configs {
		for _, key := range []string{"kubelet-arg", "kubelet-arg+"} {
			for _, o := range kubeletArgFlags(m[key]) {
				if o.Value != want[o.Name] {
					return w, fmt.Errorf("%s: %s sets %s=%s, which the kubelet gets last and which would override ours (%s); remove that entry or run install with --%s %s",
						sources[i], key, o.Name, o.Value, want[o.Name], cliFlagFor(o.Name), o.Value)
				}
			}
		}
		if i == 0 {
			continue
		}
		for _, key := range []string{flagBinDir, flagConfig} {
			if v, ok := m[key]; ok && fmt.Sprint(v) != want[key] {
				return w, fmt.Errorf("%s sets %s: %v, which overrides %s; change it there, or run install with --%s %v",
					sources[i], key, v, r.config, cliFlagFor(key), v)
			}
		}
	}

	set := map[string]string{}
	for _, key := range []string{flagBinDir, flagConfig} {
		v, ok := base[key]
		switch {
		case ok && fmt.Sprint(v) == want[key]:
		case ok:
			set[key] = want[key]
			w.Notes = append(w.Notes, fmt.Sprintf("replaced %s: %v in %s (the original is restored by uninstall)", key, v, r.config))
		case want[key] != defaults[key]:
			set[key] = want[key]
		}
	}
	switch {
	case len(set) > 0:
		data, err := setYAMLKeys(r.config, st.Data, base, set)
		if err != nil {
			return w, err
		}
		w.Changes = append(w.Changes, change{Path: r.config, Data: data})
	case base[flagBinDir] != nil || base[flagConfig] != nil:
		// Already as wanted (by an earlier install, maybe): say so, so
		// that it is kept rather than undone as no longer needed.
		w.Changes = append(w.Changes, change{Path: r.config, Data: st.Data})
	}
	return w, nil
}

func cliFlagFor(name string) string {
	if name == flagBinDir {
		return "bin-dir"
	}
	return "config"
}

// kubeletArgFlags reads our flags out of a kubelet-arg list, whose entries
// k3s passes to the kubelet as --entry (with or without leading dashes).
func kubeletArgFlags(v any) []flagOccurrence {
	var list []any
	switch t := v.(type) {
	case []any:
		list = t
	case string:
		list = []any{t}
	}
	var words []string
	for _, e := range list {
		s, ok := e.(string)
		if !ok {
			continue
		}
		words = append(words, "--"+strings.TrimLeft(s, "-"))
	}
	return findFlags(words, flagBinDir, flagConfig)
}

// parseRancherConfig reads a k3s/rke2 config file: one YAML mapping.
func parseRancherConfig(name string, data []byte) (map[string]any, error) {
	m := map[string]any{}
	if len(strings.TrimSpace(string(data))) == 0 {
		return m, nil
	}
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("refusing to edit %s: it is not valid YAML (%v); fix it first (k3s/rke2 cannot read it either)", name, yamlErr(err))
	}
	switch t := v.(type) {
	case nil:
		return m, nil
	case map[string]any:
		return t, nil
	}
	return nil, fmt.Errorf("refusing to edit %s: it holds a YAML %T, not a mapping of settings", name, v)
}

// yamlErr trims sigs.k8s.io/yaml's "error converting YAML to JSON:" prefix,
// leaving "yaml: line N: ...".
func yamlErr(err error) string {
	s := err.Error()
	if i := strings.Index(s, "yaml: "); i >= 0 {
		return s[i:]
	}
	return s
}

var docMarkerRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?m)^(---|\.\.\.)[ \t]*(#.*)?\r?$`) })

// setYAMLKeys sets top-level scalar keys of a YAML mapping by editing its
// text, so that comments, order and formatting survive (a YAML library would
// drop the comments). It replaces an existing key's whole entry, or appends
// the key at the end; then it parses the result and checks it is exactly
// the old mapping with those keys set, and refuses if not.
func setYAMLKeys(name string, data []byte, old map[string]any, set map[string]string) ([]byte, error) {
	text := string(data)
	if ms := docMarkerRe().FindAllStringIndex(text, -1); len(ms) > 1 || len(ms) == 1 && strings.TrimSpace(text[:ms[0][0]]) != "" {
		return nil, fmt.Errorf("refusing to edit %s: it has more than one YAML document", name)
	}
	lines := strings.SplitAfter(text, "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var appendLines []string
	for _, k := range keys {
		entry := k + ": " + yamlScalar(set[k]) + "\n"
		re := regexp.MustCompile(`^(` + regexp.QuoteMeta(k) + `|"` + regexp.QuoteMeta(k) + `"|'` + regexp.QuoteMeta(k) + `')[ \t]*:([ \t]|\r?\n|$)`)
		var at []int
		for i, l := range lines {
			if re.MatchString(l) {
				at = append(at, i)
			}
		}
		switch len(at) {
		case 0:
			appendLines = append(appendLines, entry)
			continue
		case 1:
		default:
			return nil, fmt.Errorf("refusing to edit %s: %s is set %d times (lines %d and %d)", name, k, len(at), at[0]+1, at[1]+1)
		}
		// The entry runs until the next line that starts in column 0.
		end := at[0] + 1
		for end < len(lines) && (strings.TrimSpace(lines[end]) == "" || lines[end][0] == ' ' || lines[end][0] == '\t') {
			end++
		}
		repl := []string{entry}
		// Blank lines between this entry and the next belong to the layout.
		for j := end - 1; j > at[0] && strings.TrimSpace(lines[j]) == ""; j-- {
			repl = append(repl, lines[j])
		}
		lines = append(lines[:at[0]], append(repl, lines[end:]...)...)
	}
	out := strings.Join(lines, "")
	if len(appendLines) > 0 {
		if out != "" && !strings.HasSuffix(out, "\n") {
			out += "\n"
		}
		out += "# Added by 'ecr-credential-provider install' (the kubelet's image credential provider).\n"
		out += strings.Join(appendLines, "")
	}

	got, err := parseRancherConfig(name, []byte(out))
	if err != nil {
		return nil, err
	}
	want := map[string]any{}
	for k, v := range old {
		want[k] = v
	}
	for k, v := range set {
		want[k] = v
	}
	if !reflect.DeepEqual(got, want) {
		var by strings.Builder
		for _, k := range keys {
			fmt.Fprintf(&by, "\n  %s: %s", k, yamlScalar(set[k]))
		}
		return nil, fmt.Errorf("refusing to edit %s: its layout (flow style or unusual indentation?) does not allow a safe text edit; set by hand:%s", name, by.String())
	}
	return []byte(out), nil
}

// yamlScalar writes a path as a YAML scalar; checkPathFlag already keeps
// out every character that would need quoting but ':' before a blank.
func yamlScalar(s string) string {
	if regexp.MustCompile(`^/[A-Za-z0-9_./+@=,-]*$`).MatchString(s) {
		return s
	}
	q, _ := yaml.Marshal(s)
	return strings.TrimSpace(string(q))
}
