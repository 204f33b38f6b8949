package containerdhosts

import (
	"errors"
	"path"
	"slices"
	"strings"
	"testing"
)

func TestDir(t *testing.T) {
	tests := []struct {
		name, config string
		missing      bool
		dir          string
		err          string // in the error, or the snippet of a NoConfigPathError
	}{
		{name: "v2", config: "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n", dir: "/etc/containerd/certs.d"},
		{name: "v3 list", config: "version = 3\n[plugins.\"io.containerd.cri.v1.images\".registry]\n  config_path = \"/etc/containerd/certs.d:/etc/docker/certs.d\"\n", dir: "/etc/containerd/certs.d"},
		{name: "v1", config: "[plugins.cri.registry]\nconfig_path = \"/srv/certs\"\n", dir: "/srv/certs"},
		{name: "v3 in the v2 place", config: "version = 3\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n",
			err: "[plugins.\"io.containerd.cri.v1.images\".registry]\n  config_path = \"/etc/containerd/certs.d\""},
		{name: "v2 without", config: "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"pause\"\n",
			err: "[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path"},
		{name: "no config", missing: true, err: "containerd 2.x (version = 3):\n[plugins.\"io.containerd.cri.v1.images\".registry]"},
		{name: "relative", config: "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"certs.d\"\n", err: "not a clean absolute path"},
		{name: "not TOML", config: "version = \n", err: "not valid TOML"},
		{name: "version 4", config: "version = 4\n", err: "version = 4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, err := Dir([]byte(tt.config), !tt.missing)
			if tt.err == "" {
				if err != nil || dir != tt.dir {
					t.Fatalf("Dir = %q, %v; want %q", dir, err, tt.dir)
				}
				return
			}
			msg := ""
			if err != nil {
				msg = err.Error()
			}
			var nc *NoConfigPathError
			if errors.As(err, &nc) {
				msg += "\n" + nc.Snippet()
			}
			if !strings.Contains(msg, tt.err) {
				t.Fatalf("Dir = %q, %q; want an error with %q", dir, msg, tt.err)
			}
		})
	}
}

func TestEndpoints(t *testing.T) {
	const ecr = "https://123456789012.dkr.ecr.us-east-1.amazonaws.com/v2/docker-hub"
	tests := []struct {
		name, toml, host string
		want             []string
	}{
		{name: "no fallback", host: "docker.io", toml: "server = \"" + ecr + "\"\noverride_path = true\n[host.\"" + ecr + "\"]\n  capabilities = [\"pull\", \"resolve\"]\n", want: []string{ecr, ecr}},
		{name: "no server: the registry is the fallback", host: "docker.io", toml: "[host.\"" + ecr + "\"]\n", want: []string{ecr, "https://registry-1.docker.io"}},
		{name: "mirror first", host: "quay.io", toml: "server = \"https://quay.io\"\n[host.\"https://m.internal\"]\n", want: []string{"https://m.internal", "https://quay.io"}},
	}
	for _, tt := range tests {
		got, err := Endpoints([]byte(tt.toml), tt.host)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("%s: Endpoints = %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
	if _, err := Endpoints([]byte("server = "), "docker.io"); err == nil {
		t.Errorf("Endpoints of broken TOML: no error")
	}
}

// FuzzConfig: any config.toml gives a clean absolute directory or an
// error, never a panic or a relative path a writer would resolve anywhere.
func FuzzConfig(f *testing.F) {
	for _, s := range []string{"", "version = 3\n", "[plugins.cri.registry]\nconfig_path = \"/a:/b\"\n",
		"version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\nconfig_path = \"../x\"\n", "version = \"2\"\n", "imports = [\"/etc/containerd/conf.d/*.toml\"]\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dir, err := Dir(data, true)
		if err == nil && (!path.IsAbs(dir) || path.Clean(dir) != dir) {
			t.Fatalf("config_path %q from %q", dir, data)
		}
	})
}

// FuzzEndpoints: a hosts.toml that parses always yields its fallback last.
func FuzzEndpoints(f *testing.F) {
	f.Add([]byte("server = \"https://x\"\n[host.\"https://y\"]\n"))
	f.Add([]byte("[host]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		eps, err := Endpoints(data, "docker.io")
		if err == nil && (len(eps) == 0 || eps[len(eps)-1] == "") {
			t.Fatalf("Endpoints(%q) = %q", data, eps)
		}
	})
}
