package kubeletwiring

import (
	"fmt"
	"strings"

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

// ParseRancherConfig reads a k3s/rke2 config file: one YAML mapping (an
// empty file is an empty mapping).
func ParseRancherConfig(name string, data []byte) (map[string]any, error) {
	m := map[string]any{}
	if len(strings.TrimSpace(string(data))) == 0 {
		return m, nil
	}
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("%s is not valid YAML (%v); fix it first (k3s/rke2 cannot read it either)", name, YAMLErr(err))
	}
	switch t := v.(type) {
	case nil:
		return m, nil
	case map[string]any:
		return t, nil
	}
	return nil, fmt.Errorf("%s holds a YAML %T, not a mapping of settings", name, v)
}

// YAMLErr trims sigs.k8s.io/yaml's "error converting YAML to JSON:" prefix,
// leaving "yaml: line N: ...".
func YAMLErr(err error) string {
	s := err.Error()
	if i := strings.Index(s, "yaml: "); i >= 0 {
		return s[i:]
	}
	return s
}

// KubeletArgWords turns a kubelet-arg value (a list, or one string) into
// the words k3s passes the kubelet: each entry as --entry, with or without
// its own leading dashes.
func KubeletArgWords(v any) []string {
	var list []any
	switch t := v.(type) {
	case []any:
		list = t
	case string:
		list = []any{t}
	}
	var words []string
	for _, e := range list {
		if s, ok := e.(string); ok {
			words = append(words, "--"+strings.TrimLeft(s, "-"))
		}
	}
	return words
}
