package kubeletwiring

import "strings"

// The two kubelet flags that wire a credential provider in, without their
// leading dashes as k3s's config keys and kubelet-arg entries spell them.
// KubeletConfiguration has no fields for them (checked up to v1.37), so only
// the command line counts.
const (
	FlagConfig = "image-credential-provider-config"
	FlagBinDir = "image-credential-provider-bin-dir"
)

// Flag is one --name=value setting of the kubelet command line.
type Flag struct{ Name, Value string }

func (f Flag) String() string { return "--" + f.Name + "=" + f.Value }

// FlagOccurrence is where a word list sets one of the flags.
type FlagOccurrence struct {
	Name, Value string
	Index       int // index of the word naming the flag
	Words       int // 1 for --name=value, 2 for --name value
}

// FindFlags returns every place words set one of names, in order. The
// kubelet parses its flags with pflag, where a repeated flag's last value
// wins, "--name value" means the same as "--name=value", and "--" ends the
// flags.
func FindFlags(words []string, names ...string) []FlagOccurrence {
	var out []FlagOccurrence
	for i := 0; i < len(words); i++ {
		w := words[i]
		if w == "--" {
			break
		}
		if !strings.HasPrefix(w, "--") {
			continue
		}
		name, value, hasValue := strings.Cut(w[2:], "=")
		for _, n := range names {
			if name != n {
				continue
			}
			o := FlagOccurrence{Name: n, Value: value, Index: i, Words: 1}
			if !hasValue && i+1 < len(words) {
				o.Value, o.Words = words[i+1], 2
				i++
			}
			out = append(out, o)
		}
	}
	return out
}

// LastFlag is the value pflag ends up with for name: its last setting.
func LastFlag(words []string, name string) (FlagOccurrence, bool) {
	occ := FindFlags(words, name)
	if len(occ) == 0 {
		return FlagOccurrence{}, false
	}
	return occ[len(occ)-1], true
}
