package nodesetup

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/kubecred/ecr-credential-provider/internal/kubeletwiring"
	"github.com/kubecred/ecr-credential-provider/internal/providerconfig"
)

// decodeStrict reads a provider config with the kubelet's own decoder and
// refuses what a rewrite would lose or change: a file it cannot read,
// unknown or repeated fields, values of the wrong type, extra documents.
func decodeStrict(p string, data []byte) (*providerconfig.File, error) {
	f := providerconfig.Decode(p, data)
	var why []string
	if f.Err != nil {
		why = append(why, f.Err.Error())
	}
	for _, e := range f.TypeErrors {
		why = append(why, e.Field+" "+e.Message)
	}
	if len(f.Unknown) > 0 {
		why = append(why, "unknown fields "+strings.Join(f.Unknown, ", "))
	}
	if len(f.Duplicates) > 0 {
		why = append(why, "repeated fields "+strings.Join(f.Duplicates, ", "))
	}
	if f.ExtraDocuments > 0 {
		why = append(why, "more than one YAML document")
	}
	if f.Err == nil && f.Kind != providerconfig.Kind {
		why = append(why, fmt.Sprintf("kind is %q, not %s", f.Kind, providerconfig.Kind))
	}
	if len(why) > 0 {
		return f, fmt.Errorf("%s", strings.Join(why, "; "))
	}
	return f, nil
}

// encodeConfig writes a provider config in the format the file had (JSON
// files stay JSON).
func encodeConfig(f *providerconfig.File, providers []providerconfig.CredentialProvider) ([]byte, error) {
	c := providerconfig.CredentialProviderConfig{APIVersion: f.APIVersion, Kind: providerconfig.Kind, Providers: providers}
	if c.APIVersion == "" {
		c.APIVersion = providerconfig.Group + "/v1"
	}
	if f.JSON {
		b, err := json.MarshalIndent(c, "", "  ")
		return append(b, '\n'), err
	}
	b, err := yaml.Marshal(c)
	if err != nil {
		return nil, err
	}
	return append([]byte("# CredentialProviderConfig for the kubelet's --image-credential-provider-config.\n# The ecr-credential-provider entry is kept by 'ecr-credential-provider install'.\n"), b...), nil
}

// mergeConfig returns the config at p with our provider entry as
// recommended says, and everything else as it is: other providers, and in
// our entry the operator's env, args, extra matchImages, cache duration
// and token attributes (unless recommended sets them). A file that would
// then hold nothing but the recommended entry is written as recommended
// (with its comments).
func mergeConfig(p string, cur, recommended []byte) ([]byte, []string, error) {
	rec, err := decodeStrict("recommended", recommended)
	if err != nil {
		return nil, nil, err
	}
	want := rec.Config.Providers[0]
	f, err := decodeStrict(p, cur)
	if err != nil {
		return nil, nil, err
	}
	providers := slices.Clone(f.Config.Providers)
	var others, notes []string
	i := slices.IndexFunc(providers, func(pr providerconfig.CredentialProvider) bool { return pr.Name == want.Name })
	for _, pr := range providers {
		if pr.Name != want.Name {
			others = append(others, pr.Name)
		}
	}
	if i < 0 {
		providers = append(providers, want)
		if len(others) > 0 {
			notes = append(notes, fmt.Sprintf("added %s to %s, keeping its other providers (%s)", want.Name, p, strings.Join(others, ", ")))
		}
	} else {
		old, m := providers[i], want
		for _, g := range old.MatchImages {
			if !slices.Contains(m.MatchImages, g) {
				m.MatchImages = append(m.MatchImages, g)
			}
		}
		if len(m.Args) == 0 {
			m.Args = old.Args
		}
		env := slices.Clone(old.Env)
		for _, e := range m.Env {
			j := slices.IndexFunc(env, func(x providerconfig.ExecEnvVar) bool { return x.Name == e.Name })
			if j >= 0 {
				env[j] = e
			} else {
				env = append(env, e)
			}
		}
		m.Env = env
		if old.DefaultCacheDuration != nil {
			m.DefaultCacheDuration = old.DefaultCacheDuration
		}
		if m.TokenAttributes == nil {
			m.TokenAttributes = old.TokenAttributes
		}
		m.File, m.Index = old.File, old.Index
		providers[i] = m
	}
	clean := func(ps []providerconfig.CredentialProvider) []providerconfig.CredentialProvider {
		out := slices.Clone(ps)
		for j := range out {
			out[j].File, out[j].Index = "", 0
		}
		return out
	}
	if reflect.DeepEqual(clean(providers), clean(f.Config.Providers)) {
		return cur, notes, nil // already as wanted: not a byte rewritten
	}
	if !f.JSON && f.APIVersion == rec.APIVersion && reflect.DeepEqual(clean(providers), clean(rec.Config.Providers)) {
		return recommended, notes, nil
	}
	if bytes.Equal(cur, recommended) {
		return cur, notes, nil
	}
	data, err := encodeConfig(f, providers)
	return data, notes, err
}

// withoutOurProvider returns the config at p without our provider entry;
// empty is true when no provider would be left (the kubelet refuses a
// config with none, so the file has to go).
func withoutOurProvider(p string, cur []byte) (data []byte, changed, empty bool, err error) {
	f, err := decodeStrict(p, cur)
	if err != nil {
		return nil, false, false, err
	}
	var keep []providerconfig.CredentialProvider
	for _, pr := range f.Config.Providers {
		if pr.Name != providerconfig.DefaultName {
			keep = append(keep, pr)
		}
	}
	if len(keep) == len(f.Config.Providers) {
		return cur, false, false, nil
	}
	if len(keep) == 0 {
		return nil, true, true, nil
	}
	data, err = encodeConfig(f, keep)
	return data, true, false, err
}

// withoutOurFlags removes from an env file's variable the settings of our
// flags that still hold our values; the operator's own words stay. When
// install added the assignment and nothing else is left in it, the line
// goes too.
func withoutOurFlags(p string, data []byte, varName string, added bool, flags []kubeletFlag, replaced map[string]string) ([]byte, bool, error) {
	as, err := kubeletwiring.ParseEnvFile(p, data)
	if err != nil {
		return nil, false, err
	}
	a, ok := kubeletwiring.LookupEnv(as, varName)
	if !ok {
		return data, false, nil
	}
	rest, dropped := dropFlags(a.Value, flags)
	if !dropped {
		return data, false, nil
	}
	for _, name := range []string{flagConfig, flagBinDir} {
		if v, ok := replaced[name]; ok {
			rest = strings.TrimSpace(rest + " " + kubeletFlag{Name: name, Value: v}.String())
		}
	}
	if rest == "" && added {
		return append(append([]byte{}, data[:a.Start]...), data[a.End:]...), true, nil
	}
	return setEnvVar(data, as, varName, rest), true, nil
}

// dropFlags removes the settings of flags (name and value both ours)
// from an argument string.
func dropFlags(args string, flags []kubeletFlag) (string, bool) {
	words := strings.Fields(args)
	drop := map[int]bool{}
	for _, o := range findFlags(words, flagConfig, flagBinDir) {
		if hasFlag(flags, o.Name, o.Value) {
			for j := 0; j < o.Words; j++ {
				drop[o.Index+j] = true
			}
		}
	}
	if len(drop) == 0 {
		return args, false
	}
	var kept []string
	for i, w := range words {
		if !drop[i] {
			kept = append(kept, w)
		}
	}
	return strings.Join(kept, " "), true
}

// dropInWithoutOurFlags takes our flags out of our drop-in's variable.
// base is the variable's value without the drop-in: when that is all that
// is left, the line goes, and with it the file when nothing else is in it.
func dropInWithoutOurFlags(data []byte, base string, flags []kubeletFlag) (out []byte, changed, empty bool, err error) {
	start, end, value, ok, err := dropInValue(data)
	if err != nil || !ok {
		return data, false, false, err
	}
	rest, dropped := dropFlags(value, flags)
	if !dropped {
		return data, false, false, nil
	}
	if rest == base {
		out = append(append([]byte{}, data[:start]...), data[end:]...)
	} else {
		out = append(append(append([]byte{}, data[:start]...), dropInLine(rest)...), data[end:]...)
	}
	return out, true, onlyOurLines(out), nil
}

// withoutYAMLKeys removes top-level keys whose value is still one install
// set (one of ours), and install's comment line before them, from a k3s/rke2 config;
// the result is checked to be the old mapping without exactly those keys.
func withoutYAMLKeys(p string, data []byte, keys []string, ours []kubeletFlag, replaced map[string]string) ([]byte, bool, error) {
	old, err := kubeletwiring.ParseRancherConfig(p, data)
	if err != nil {
		return nil, false, err
	}
	var drop []string
	for _, k := range keys {
		if cur, ok := old[k]; ok && hasFlag(ours, k, fmt.Sprint(cur)) {
			drop = append(drop, k)
		}
	}
	if len(drop) == 0 {
		return data, false, nil
	}
	lines := strings.SplitAfter(string(data), "\n")
	var out []string
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		hit := ""
		for _, k := range drop {
			if strings.HasPrefix(l, k+":") || strings.HasPrefix(l, `"`+k+`":`) || strings.HasPrefix(l, "'"+k+"':") {
				hit = k
			}
		}
		if hit == "" {
			out = append(out, l)
			continue
		}
		// Continuation lines of the entry go with it; the entry install
		// replaced comes back as it was.
		for i+1 < len(lines) && lines[i+1] != "" && (lines[i+1][0] == ' ' || lines[i+1][0] == '\t') {
			i++
		}
		if raw, ok := replaced[hit]; ok {
			out = append(out, raw)
		}
	}
	text := strings.Join(out, "")
	rest := map[string]any{}
	for k, v := range old {
		if !slices.Contains(drop, k) {
			rest[k] = v
		}
	}
	for k, raw := range replaced {
		if slices.Contains(drop, k) {
			m, err := kubeletwiring.ParseRancherConfig(p, []byte(raw))
			if err != nil {
				return nil, false, err
			}
			rest[k] = m[k]
		}
	}
	if !hasAny(rest, flagBinDir, flagConfig) {
		text = strings.Replace(text, addedComment, "", 1)
	}
	got, err := kubeletwiring.ParseRancherConfig(p, []byte(text))
	if err != nil || !reflect.DeepEqual(got, rest) {
		return nil, false, fmt.Errorf("cannot take %s out of %s by a safe text edit; remove them by hand", strings.Join(drop, ", "), p)
	}
	return []byte(text), true, nil
}

func hasAny(m map[string]any, keys ...string) bool {
	for _, k := range keys {
		if _, ok := m[k]; ok {
			return true
		}
	}
	return false
}
