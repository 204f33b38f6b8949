// Package containerdhosts reads what containerd's CRI plugin makes of a
// registry: the directory it reads hosts.toml files from (config_path in
// its config.toml, schema versions 1 to 3), and every endpoint a hosts.toml
// sends a pull to, which is every endpoint the pull's credentials reach.
package containerdhosts

import (
	"fmt"
	"path"
	"sort"
	"strings"

	toml "github.com/pelletier/go-toml/v2"
)

// Config is containerd's config file.
const Config = "/etc/containerd/config.toml"

// plugin names the CRI plugin whose registry section holds config_path in
// a config of the schema version, "" for a version this tool does not know.
// (A switch, not a map: the plugin binary links this package, and a map
// literal would be built at start-up on every call.)
func plugin(version int64) string {
	switch version {
	case 1:
		return "cri"
	case 2:
		return "io.containerd.grpc.v1.cri"
	case 3:
		return "io.containerd.cri.v1.images"
	}
	return ""
}

// NoConfigPathError is a containerd config that sets no config_path (or
// no config at all): containerd then reads no hosts.toml.
type NoConfigPathError struct {
	// Version is the config's schema version; 0 when there is no config.
	Version int64
	// Imports is set when the config imports others, which may set it.
	Imports bool
}

func (e *NoConfigPathError) Error() string {
	if e.Version == 0 {
		return "there is no " + Config
	}
	s := fmt.Sprintf("%s sets no config_path for plugin %q", Config, plugin(e.Version))
	if e.Imports {
		s += " (its imports are not followed)"
	}
	return s
}

// Snippet is what to add to the config, for its schema version (both
// containerd 1.x's and 2.x's when there is no config).
func (e *NoConfigPathError) Snippet() string {
	table := func(v int64) string {
		return fmt.Sprintf("[plugins.%q.registry]\n  config_path = \"/etc/containerd/certs.d\"", plugin(v))
	}
	switch e.Version {
	case 0:
		return "containerd 2.x (version = 3):\n" + table(3) + "\ncontainerd 1.x (version = 2):\n" + table(2)
	case 1:
		return "version = 2\n\n" + table(2)
	}
	return table(e.Version)
}

// Dir is the first directory of the registry's config_path in
// containerd's config data (which exists says is there at all): where
// containerd looks for <host>/hosts.toml first.
func Dir(data []byte, exists bool) (string, error) {
	if !exists {
		return "", &NoConfigPathError{}
	}
	var cfg map[string]any
	if err := toml.Unmarshal(data, &cfg); err != nil {
		return "", fmt.Errorf("%s is not valid TOML (%v); fix it first (containerd cannot read it either)", Config, err)
	}
	version, _ := cfg["version"].(int64)
	if version == 0 {
		version = 1
	}
	cri := plugin(version)
	if cri == "" {
		return "", fmt.Errorf("%s has version = %d, not a schema this tool knows (1, 2 or 3)", Config, version)
	}
	var v any = cfg
	for _, k := range []string{"plugins", cri, "registry", "config_path"} {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	p, _ := v.(string)
	dir, _, _ := strings.Cut(p, ":")
	if dir == "" {
		return "", &NoConfigPathError{Version: version, Imports: cfg["imports"] != nil}
	}
	if !path.IsAbs(dir) || path.Clean(dir) != dir {
		return "", fmt.Errorf("%s: config_path %q is not a clean absolute path", Config, p)
	}
	return dir, nil
}

// DefaultEndpoint is where containerd pulls a registry's images from when
// no hosts.toml says otherwise.
func DefaultEndpoint(host string) string {
	if host == "docker.io" {
		return "https://registry-1.docker.io"
	}
	return "https://" + host
}

// Endpoints are every endpoint containerd may send a pull from host to
// (and with it the pull's credentials), by the hosts.toml data: each
// [host] table, then server, or the registry itself when server is unset.
func Endpoints(data []byte, host string) ([]string, error) {
	var f struct {
		Server string         `toml:"server"`
		Host   map[string]any `toml:"host"`
	}
	if err := toml.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("hosts.toml for %s is not valid TOML (%v)", host, err)
	}
	var out []string
	for h := range f.Host {
		out = append(out, h)
	}
	sort.Strings(out)
	server := f.Server
	if server == "" {
		server = DefaultEndpoint(host)
	}
	return append(out, server), nil
}
