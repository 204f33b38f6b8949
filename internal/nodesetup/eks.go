package nodesetup

import (
	"github.com/kubecred/ecr-credential-provider/internal/kubeletwiring"

	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/kubecred/ecr-credential-provider/internal/ecrhost"
	"github.com/kubecred/ecr-credential-provider/internal/providerconfig"
)

// Where EKS AMIs keep their provider (nodeadm's imageCredentialProviderRoot
// on AL2023; the same directory on AL2).
const (
	eksProviderDir    = "/etc/eks/image-credential-provider"
	eksProviderConfig = "/etc/eks/image-credential-provider/config.json"
)

// markersFound lists which of dirs/name exist.
func markersFound(n *nodeFS, dirs []string, name string) []string {
	var out []string
	for _, d := range dirs {
		if p := path.Join(d, name); n.exists(p) {
			out = append(out, p)
		}
	}
	return out
}

// planEKS looks at the provider an EKS AMI already runs. Its config is
// nodeadm's to write (AL2023 rewrites it at every boot), so the only change
// install can make is the binary in the AMI's bin dir, and it makes it only
// when asked with --force.
func planEKS(n *nodeFS, binary []byte, public bool) (wiring, error) {
	w := wiring{Service: "kubelet"}
	config, binDir, from := eksProviderConfig, eksProviderDir, ""
	if len(markersFound(n, kubeletwiring.UnitDirs, kubeletService)) > 0 {
		kw, err := kubeletwiring.Read(n, kubeletwiring.Kubelet)
		if err != nil {
			return w, err
		}
		for _, v := range []struct {
			dst *string
			got kubeletwiring.Value
		}{{&config, kw.Config}, {&binDir, kw.BinDir}} {
			if v.got.Value != "" {
				*v.dst, from = v.got.Value, v.got.From
			}
		}
	}
	if from == "" && !n.exists(config) {
		return w, fmt.Errorf("this looks like an EKS node, but its kubelet.service passes no --%s and %s does not exist; if the AMI is customised, run install with --distro systemd (or kubeadm) to wire the kubelet through its unit", flagConfig, config)
	}
	if from != "" {
		w.Notes = append(w.Notes, fmt.Sprintf("EKS node: the kubelet already runs with --%s=%s --%s=%s (set in %s)", flagConfig, config, flagBinDir, binDir, from))
	}
	st, err := n.read(config)
	if err != nil {
		return w, err
	}
	if !st.Exists {
		return w, fmt.Errorf("the kubelet is told to read %s, which does not exist; nodeadm writes it at boot (run 'nodeadm init' or reboot), install will not", config)
	}
	var cfg providerconfig.CredentialProviderConfig
	if err := yaml.Unmarshal(st.Data, &cfg); err != nil {
		return w, fmt.Errorf("cannot read %s: %v", config, kubeletwiring.YAMLErr(err))
	}
	name := ""
	coversPublic := false
	for _, p := range cfg.Providers {
		for _, m := range p.MatchImages {
			if strings.Contains(m, "dkr.ecr") && name == "" {
				name = p.Name
			}
			if slices.Contains(ecrhost.PublicHosts, m) {
				coversPublic = true
			}
		}
	}
	if name == "" {
		return w, fmt.Errorf("%s has no provider matching ECR images (*.dkr.ecr.*); nothing for install to replace", config)
	}
	w.Notes = append(w.Notes, fmt.Sprintf("%s is written by the AMI (nodeadm rewrites it at every boot on AL2023), so install leaves it alone; its provider %q matches ECR", config, name))
	if public && !coversPublic {
		w.Notes = append(w.Notes, fmt.Sprintf("--public: %s does not match ECR Public (public.ecr.aws), and install does not edit it; ECR Public pulls stay anonymous, which works for public images", config))
	}
	binPath := path.Join(binDir, name)
	cur, err := n.read(binPath)
	if err != nil {
		return w, err
	}
	if cur.Exists && !sameContent(cur, binary) {
		sum := sha256.Sum256(cur.Data)
		w.Notes = append(w.Notes, fmt.Sprintf("the AMI's provider binary %s is %d bytes, sha256 %s", binPath, len(cur.Data), hex.EncodeToString(sum[:])[:16]))
	}
	w.Changes = append(w.Changes, change{Path: binPath, Data: binary, Mode: 0o755, Binary: true, Role: roleBinary})
	w.Notes = append(w.Notes, "nodes launched later from the AMI come with its own binary again: run install on them too (from user data, say)")
	return w, nil
}
