package providerconfig

import (
	"encoding/json"
	"errors"
	"github.com/kubecred/ecr-credential-provider/internal/protocol"
	"strings"
)

// validName applies the kubelet's rules for a provider name: it becomes a
// file name in the bin dir, so no path separators, spaces or dot names.
func validName(name string) error {
	switch {
	case name == "":
		return errors.New("name is required")
	case strings.Contains(name, "/"):
		return errors.New("name must not contain '/'")
	case strings.Contains(name, " "):
		return errors.New("name must not contain spaces")
	case name == ".":
		return errors.New("name must not be '.'")
	case name == "..":
		return errors.New("name must not be '..'")
	}
	return nil
}

func knownPluginAPIVersion(v string) bool {
	for _, k := range protocol.Versions {
		if v == k {
			return true
		}
	}
	return false
}

func jsonString(s string) (string, error) {
	b, err := json.Marshal(s)
	return string(b), err
}
