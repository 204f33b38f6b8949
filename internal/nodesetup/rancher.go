package nodesetup

import (
	"github.com/kubecred/ecr-credential-provider/internal/kubeletwiring"
	"github.com/kubecred/ecr-credential-provider/internal/lazyregexp"

	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// RancherBinDir and RancherConfig are the paths k3s and rke2 use on their
// own (see kubeletwiring).
const (
	RancherBinDir = kubeletwiring.RancherBinDir
	RancherConfig = kubeletwiring.RancherConfig
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
// drop-ins, kubelet-arg entries) are never edited: the wiring model reads
// the node as it would be after install, and if the kubelet would not get
// our paths, install says which setting wins instead and stops.
func planRancher(n *nodeFS, d Distro, binDir, config string, pending []change) (wiring, error) {
	r := rancherFor(d)
	w := wiring{Service: strings.TrimSuffix(r.units[0], ".service")}
	want := map[string]string{flagBinDir: binDir, flagConfig: config}
	defaults := map[string]string{flagBinDir: RancherBinDir, flagConfig: RancherConfig}

	st, err := n.read(r.config)
	if err != nil {
		return w, err
	}
	base, err := kubeletwiring.ParseRancherConfig(r.config, st.Data)
	if err != nil {
		return w, fmt.Errorf("refusing to edit %w", err)
	}
	set, replaced := map[string]string{}, map[string]string{}
	for _, key := range []string{flagBinDir, flagConfig} {
		v, ok := base[key]
		switch {
		case ok && fmt.Sprint(v) == want[key]:
		case ok:
			set[key], replaced[key] = want[key], fmt.Sprint(v)
			w.Notes = append(w.Notes, fmt.Sprintf("replaced %s: %v in %s (uninstall puts it back)", key, v, r.config))
		case want[key] != defaults[key]:
			set[key] = want[key]
		}
	}
	switch {
	case len(set) > 0:
		data, raw, err := setYAMLKeysRaw(r.config, st.Data, base, set)
		if err != nil {
			return w, err
		}
		for k := range replaced {
			replaced[k] = raw[k]
		}
		w.Changes = append(w.Changes, change{Path: r.config, Data: data, Role: roleWiring, Keys: sortedKeys(set), Set: want, Replaced: replaced})
	case base[flagBinDir] != nil || base[flagConfig] != nil:
		// Already as wanted (by an earlier install, maybe): say so, so
		// that it is kept rather than undone as no longer needed.
		w.Changes = append(w.Changes, change{Path: r.config, Data: st.Data, Role: roleWiring, Keys: ourKeys(base, want), Set: want})
	}

	var ops []op
	for _, c := range append(pending, w.Changes...) {
		ops = append(ops, op{kind: opWrite, path: c.Path, data: c.Data})
	}
	got, err := kubeletwiring.Read(newOverlay(n, ops), kindOf(d))
	if err != nil {
		return w, err
	}
	w.Service = got.Service
	for _, v := range []struct {
		name string
		got  kubeletwiring.Value
	}{{flagConfig, got.Config}, {flagBinDir, got.BinDir}} {
		if v.got.Value != want[v.name] {
			return w, fmt.Errorf("%s sets %s=%s, which the kubelet would get instead of ours (%s); change it there, or run install with --%s %s",
				v.got.From, v.name, v.got.Value, want[v.name], cliFlagFor(v.name), v.got.Value)
		}
	}
	return w, nil
}

// ourKeys are the keys of m that already hold what install wants.
func ourKeys(m map[string]any, want map[string]string) []string {
	var out []string
	for _, k := range []string{flagBinDir, flagConfig} {
		if v, ok := m[k]; ok && fmt.Sprint(v) == want[k] {
			out = append(out, k)
		}
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func cliFlagFor(name string) string {
	if name == flagBinDir {
		return "bin-dir"
	}
	return "config"
}

// addedComment goes before the keys install appends to a k3s/rke2 config.
const (
	addedCommentLine = "# Added by 'ecr-credential-provider install' (the kubelet's image credential provider)."
	addedComment     = addedCommentLine + "\n"
)

var docMarkerRe = lazyregexp.New(`(?m)^(---|\.\.\.)[ \t]*(#.*)?\r?$`)

// setYAMLKeys sets top-level scalar keys of a YAML mapping by editing its
// text, so that comments, order and formatting survive (a YAML library would
// drop the comments). It replaces an existing key's whole entry, or appends
// the key at the end; then it parses the result and checks it is exactly
// the old mapping with those keys set, and refuses if not.
func setYAMLKeys(name string, data []byte, old map[string]any, set map[string]string) ([]byte, error) {
	out, _, err := setYAMLKeysRaw(name, data, old, set)
	return out, err
}

// setYAMLKeysRaw is setYAMLKeys that also returns, for each key it
// replaced, the entry's text as it was, so that uninstall can put exactly
// that back.
func setYAMLKeysRaw(name string, data []byte, old map[string]any, set map[string]string) ([]byte, map[string]string, error) {
	raw := map[string]string{}
	text := string(data)
	if ms := docMarkerRe.FindAllStringIndex(text, -1); len(ms) > 1 || len(ms) == 1 && strings.TrimSpace(text[:ms[0][0]]) != "" {
		return nil, nil, fmt.Errorf("refusing to edit %s: it has more than one YAML document", name)
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
			return nil, nil, fmt.Errorf("refusing to edit %s: %s is set %d times (lines %d and %d)", name, k, len(at), at[0]+1, at[1]+1)
		}
		// The entry runs until the next line that starts in column 0.
		end := at[0] + 1
		for end < len(lines) && (strings.TrimSpace(lines[end]) == "" || lines[end][0] == ' ' || lines[end][0] == '\t') {
			end++
		}
		repl := []string{entry}
		// Blank lines between this entry and the next belong to the layout.
		last := end
		for j := end - 1; j > at[0] && strings.TrimSpace(lines[j]) == ""; j-- {
			repl = append(repl, lines[j])
			last = j
		}
		raw[k] = strings.Join(lines[at[0]:last], "")
		lines = append(lines[:at[0]], append(repl, lines[end:]...)...)
	}
	out := strings.Join(lines, "")
	if len(appendLines) > 0 {
		if out != "" && !strings.HasSuffix(out, "\n") {
			out += "\n"
		}
		out += addedComment
		out += strings.Join(appendLines, "")
	}

	got, err := kubeletwiring.ParseRancherConfig(name, []byte(out))
	if err != nil {
		return nil, nil, err
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
		return nil, nil, fmt.Errorf("refusing to edit %s: its layout (flow style or unusual indentation?) does not allow a safe text edit; set by hand:%s", name, by.String())
	}
	return []byte(out), raw, nil
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
