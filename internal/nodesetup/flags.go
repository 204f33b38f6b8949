package nodesetup

import (
	"fmt"
	"path"
	"strings"

	"github.com/kubecred/ecr-credential-provider/internal/kubeletwiring"
)

// Names from the wiring model, under the names this package's planners
// use.
const (
	flagConfig = kubeletwiring.FlagConfig
	flagBinDir = kubeletwiring.FlagBinDir
)

type (
	kubeletFlag    = kubeletwiring.Flag
	flagOccurrence = kubeletwiring.FlagOccurrence
)

var findFlags = kubeletwiring.FindFlags

func ourFlags(config, binDir string) []kubeletFlag {
	return []kubeletFlag{{Name: flagConfig, Value: config}, {Name: flagBinDir, Value: binDir}}
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
