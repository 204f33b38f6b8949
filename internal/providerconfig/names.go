package providerconfig

import (
	"encoding/json"
	"errors"
	"strings"

	"github.com/kubecred/ecr-credential-provider/internal/lazyregexp"
	"github.com/kubecred/ecr-credential-provider/internal/protocol"
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

var (
	labelKeyRe  = lazyregexp.New(`^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`)
	subdomainRe = lazyregexp.New(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

// qualifiedNameErrors applies apimachinery's IsQualifiedName, which the
// kubelet uses (on the lower-cased key) for service account annotation keys.
func qualifiedNameErrors(key string) []string {
	var errs []string
	parts := strings.Split(key, "/")
	var name string
	switch len(parts) {
	case 1:
		name = parts[0]
	case 2:
		prefix := parts[0]
		name = parts[1]
		switch {
		case prefix == "":
			errs = append(errs, "prefix part must be non-empty")
		case len(prefix) > 253:
			errs = append(errs, "prefix part must be no more than 253 bytes")
		case !subdomainRe.MatchString(prefix):
			errs = append(errs, "prefix part must be a lowercase DNS subdomain (e.g. 'example.com')")
		}
	default:
		return append(errs, "a qualified name must be a name with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')")
	}
	switch {
	case name == "":
		errs = append(errs, "name part must be non-empty")
	case len(name) > 63:
		errs = append(errs, "name part must be no more than 63 bytes")
	}
	if !labelKeyRe.MatchString(name) {
		errs = append(errs, "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName' or 'my.name' or '123-abc')")
	}
	return errs
}
