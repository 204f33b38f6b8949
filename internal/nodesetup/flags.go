package nodesetup

import (
	"fmt"
	"path"
	"strings"
)

// The two kubelet flags install sets, without their leading dashes as k3s's
// config keys and kubelet-arg entries spell them.
const (
	flagConfig = "image-credential-provider-config"
	flagBinDir = "image-credential-provider-bin-dir"
)

// kubeletFlag is one --name=value setting of the kubelet command line.
type kubeletFlag struct{ Name, Value string }

func (f kubeletFlag) String() string { return "--" + f.Name + "=" + f.Value }

func ourFlags(config, binDir string) []kubeletFlag {
	return []kubeletFlag{{flagConfig, config}, {flagBinDir, binDir}}
}

// flagOccurrence is where a word list sets one of the flags.
type flagOccurrence struct {
	Name, Value string
	Index       int // index of the word naming the flag
	Words       int // 1 for --name=value, 2 for --name value
}

// findFlags returns every place words set one of names, in order. The
// kubelet parses its flags with pflag, where a repeated flag's last value
// wins, and "--name value" means the same as "--name=value".
func findFlags(words []string, names ...string) []flagOccurrence {
	var out []flagOccurrence
	for i := 0; i < len(words); i++ {
		w := words[i]
		if !strings.HasPrefix(w, "--") {
			continue
		}
		name, value, hasValue := strings.Cut(w[2:], "=")
		for _, n := range names {
			if name != n {
				continue
			}
			o := flagOccurrence{Name: n, Value: value, Index: i, Words: 1}
			if !hasValue && i+1 < len(words) {
				o.Value, o.Words = words[i+1], 2
				i++
			}
			out = append(out, o)
		}
	}
	return out
}

// withFlags returns an argument string (as in KUBELET_EXTRA_ARGS, which
// systemd splits on blanks) with flags set: earlier settings of those flags
// are dropped and ours appended, so that ours are the last and win. When
// there is nothing to drop, the existing text is kept as written. It also
// returns the settings it dropped, for the report.
func withFlags(args string, flags []kubeletFlag) (string, []flagOccurrence) {
	words := strings.Fields(args)
	names := make([]string, len(flags))
	add := make([]string, len(flags))
	for i, f := range flags {
		names[i], add[i] = f.Name, f.String()
	}
	old := findFlags(words, names...)
	if len(old) == 0 {
		kept := strings.TrimRight(args, " \t\r\n")
		if strings.TrimSpace(kept) == "" {
			return strings.Join(add, " "), nil
		}
		return kept + " " + strings.Join(add, " "), nil
	}
	drop := map[int]bool{}
	for _, o := range old {
		for j := 0; j < o.Words; j++ {
			drop[o.Index+j] = true
		}
	}
	var kept []string
	for i, w := range words {
		if !drop[i] {
			kept = append(kept, w)
		}
	}
	var dropped []flagOccurrence
	for _, o := range old {
		if !hasFlag(flags, o.Name, o.Value) {
			dropped = append(dropped, o)
		}
	}
	return strings.Join(append(kept, add...), " "), dropped
}

func hasFlag(flags []kubeletFlag, name, value string) bool {
	for _, f := range flags {
		if f.Name == name && f.Value == value {
			return true
		}
	}
	return false
}

// checkPathFlag refuses a path that cannot travel through the places
// install writes it: systemd splits $KUBELET_EXTRA_ARGS on blanks, unit
// files treat '%' as a specifier, and quotes or backslashes would need
// escaping that differs between env files, unit files and YAML.
func checkPathFlag(flag, p string) error {
	switch {
	case p == "":
		return fmt.Errorf("%s must not be empty", flag)
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("%s %q must be an absolute path", flag, p)
	case p == "/":
		return fmt.Errorf("%s must not be /", flag)
	case strings.ContainsAny(p, " \t\r\n\"'\\$%`;#"):
		return fmt.Errorf("%s %q must not contain blanks, quotes, backslashes or any of $%%`;#", flag, p)
	}
	if path.Clean(p) != p {
		return fmt.Errorf("%s %q must be a clean path (no trailing /, //, . or .. parts); use %s", flag, p, path.Clean(p))
	}
	return nil
}
