package kubeletwiring

import (
	"os"
	"path/filepath"
	"testing"
)

func writeTree(t *testing.T, files map[string]string) DirFS {
	t.Helper()
	root := t.TempDir()
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if c == "<dir>" {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return DirFS(root)
}

const kubeadmUnit = "[Service]\nExecStart=/usr/bin/kubelet\n"

const kubeadmDropIn = `[Service]
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
`

func TestRead(t *testing.T) {
	tests := []struct {
		name                   string
		kind                   Kind
		files                  map[string]string
		config, configFrom     string
		binDir, binFrom        string
		gates                  map[string]bool
		hints                  []string
		rancherConfigCandidate string
	}{
		{
			name: "kubeadm: KUBELET_EXTRA_ARGS comes last and wins over kubeadm-flags.env",
			kind: Kubelet,
			files: map[string]string{
				"lib/systemd/system/kubelet.service":                   kubeadmUnit,
				"lib/systemd/system/kubelet.service.d/10-kubeadm.conf": kubeadmDropIn,
				"var/lib/kubelet/kubeadm-flags.env":                    `KUBELET_KUBEADM_ARGS="--image-credential-provider-config=/old.yaml --image-credential-provider-bin-dir=/old --feature-gates=A=true,B=true"` + "\n",
				"etc/default/kubelet":                                  "KUBELET_EXTRA_ARGS=--image-credential-provider-config /new.yaml --feature-gates=B=false\n",
				"var/lib/kubelet/config.yaml":                          "kind: KubeletConfiguration\nfeatureGates:\n  C: true\n  A: false\n",
				"etc/kubernetes/manifests/kube-apiserver.yaml":         "spec:\n  containers:\n  - image: registry.k8s.io/kube-apiserver:v1.33.4\n",
			},
			config: "/new.yaml", configFrom: "/etc/default/kubelet:1",
			binDir: "/old", binFrom: "/var/lib/kubelet/kubeadm-flags.env:1",
			gates: map[string]bool{"A": true, "B": false, "C": true},
			hints: []string{"v1.33.4"},
		},
		{
			name: "a drop-in in /etc overrides ExecStart and hides one of the same name in /lib",
			kind: Kubelet,
			files: map[string]string{
				"lib/systemd/system/kubelet.service":                   kubeadmUnit,
				"lib/systemd/system/kubelet.service.d/10-kubeadm.conf": kubeadmDropIn,
				"etc/systemd/system/kubelet.service.d/10-kubeadm.conf": "[Service]\nExecStart=\nExecStart=/usr/bin/kubelet --image-credential-provider-config=/etc.yaml --image-credential-provider-bin-dir=/etc-bin\n",
				"etc/default/kubelet":                                  "KUBELET_EXTRA_ARGS=--image-credential-provider-config=/ignored.yaml\n",
			},
			config: "/etc.yaml", configFrom: "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf:3",
			binDir: "/etc-bin", binFrom: "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf:3",
		},
		{
			name: "k3s: defaults only when both exist",
			kind: K3s,
			files: map[string]string{
				"etc/systemd/system/k3s.service":                 "[Service]\nExecStart=/usr/local/bin/k3s server\n",
				"var/lib/rancher/credentialprovider/config.yaml": "x",
			},
			rancherConfigCandidate: RancherConfig,
		},
		{
			name: "k3s: config.yaml.d drop-ins after config.yaml, kubelet-arg+ last",
			kind: K3s,
			files: map[string]string{
				"etc/systemd/system/k3s.service":          "[Service]\nExecStart=/usr/local/bin/k3s server --kubelet-arg=feature-gates=G=true\n",
				"etc/rancher/k3s/config.yaml":             "image-credential-provider-config: /a.yaml\nimage-credential-provider-bin-dir: /a\nkubelet-arg:\n  - max-pods=200\n",
				"etc/rancher/k3s/config.yaml.d/10-b.yaml": "image-credential-provider-config: /b.yaml\n",
				"etc/rancher/k3s/config.yaml.d/20-c.yaml": "kubelet-arg+:\n  - image-credential-provider-bin-dir=/c\n",
				"b.yaml": "x",
				"a":      "<dir>",
			},
			config: "/b.yaml", configFrom: "/etc/rancher/k3s/config.yaml.d/10-b.yaml",
			binDir: "/c", binFrom: "/etc/rancher/k3s/config.yaml.d/20-c.yaml kubelet-arg+",
			gates:                  map[string]bool{"G": true},
			rancherConfigCandidate: "/b.yaml",
		},
		{
			name: "k3s: the unit's flags win over config files; another config file by -c",
			kind: K3s,
			files: map[string]string{
				"etc/systemd/system/k3s.service": "[Service]\nExecStart=/usr/local/bin/k3s agent -c /etc/k3s.yaml --image-credential-provider-bin-dir=/flag\n",
				"etc/k3s.yaml":                   "image-credential-provider-config: /mine.yaml\nimage-credential-provider-bin-dir: /cfg\n",
				"mine.yaml":                      "x",
				"flag":                           "<dir>",
			},
			config: "/mine.yaml", configFrom: "/etc/k3s.yaml",
			binDir: "/flag", binFrom: "/etc/systemd/system/k3s.service:2",
			rancherConfigCandidate: "/mine.yaml",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := Read(writeTree(t, tt.files), tt.kind)
			if err != nil {
				t.Fatal(err)
			}
			if w.Config != (Value{tt.config, tt.configFrom}) || w.BinDir != (Value{tt.binDir, tt.binFrom}) {
				t.Errorf("config %+v, bin dir %+v; want %q from %q, %q from %q", w.Config, w.BinDir, tt.config, tt.configFrom, tt.binDir, tt.binFrom)
			}
			for g, on := range tt.gates {
				if got, ok := w.FeatureGates[g]; !ok || got.On != on {
					t.Errorf("feature gate %s = %+v, want %v", g, got, on)
				}
			}
			if len(w.FeatureGates) != len(tt.gates) {
				t.Errorf("feature gates %+v, want %v", w.FeatureGates, tt.gates)
			}
			var hints []string
			for _, h := range w.VersionHints {
				hints = append(hints, h.Value)
			}
			if len(hints) != len(tt.hints) || len(hints) > 0 && hints[0] != tt.hints[0] {
				t.Errorf("version hints %q, want %q", hints, tt.hints)
			}
			if tt.kind != Kubelet && w.RancherConfig.Value != tt.rancherConfigCandidate {
				t.Errorf("k3s's own config path %+v, want %q", w.RancherConfig, tt.rancherConfigCandidate)
			}
		})
	}
}
