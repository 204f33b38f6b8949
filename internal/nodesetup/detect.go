package nodesetup

import (
	"github.com/kubecred/ecr-credential-provider/internal/kubeletwiring"

	"fmt"
	"path"
	"strings"
)

// Distro is a way the kubelet is run on a node, which decides how install
// wires the provider in.
type Distro string

// The distributions install knows.
const (
	Kubeadm Distro = "kubeadm"
	K3s     Distro = "k3s"
	RKE2    Distro = "rke2"
	Systemd Distro = "systemd"
	EKS     Distro = "eks"
)

// Distros lists them in the order detection prefers them.
var Distros = []Distro{EKS, RKE2, K3s, Kubeadm, Systemd}

// ParseDistro checks a --distro value.
func ParseDistro(s string) (Distro, error) {
	for _, d := range Distros {
		if string(d) == s {
			return d, nil
		}
	}
	return "", usageErrorf("unknown distro %q: use one of kubeadm, k3s, rke2, systemd, eks (or leave --distro out to detect it)", s)
}

// markers are the files that give each distribution away, as node paths.
func markers(d Distro) []string {
	units := func(names ...string) []string {
		var out []string
		for _, dir := range kubeletwiring.UnitDirs {
			for _, n := range names {
				out = append(out, path.Join(dir, n))
			}
		}
		return out
	}
	switch d {
	case EKS:
		// /etc/eks holds bootstrap.sh (AL2), nodeadm's kubelet environment
		// (AL2023) and the image credential provider of both.
		return []string{"/etc/eks/image-credential-provider", "/etc/eks/bootstrap.sh", "/etc/eks/kubelet", "/usr/bin/nodeadm"}
	case RKE2:
		return append([]string{"/etc/rancher/rke2", "/usr/local/bin/rke2", "/usr/bin/rke2", "/opt/rke2/bin/rke2"},
			units("rke2-server.service", "rke2-agent.service")...)
	case K3s:
		return append([]string{"/etc/rancher/k3s", "/usr/local/bin/k3s", "/usr/bin/k3s"},
			units("k3s.service", "k3s-agent.service")...)
	case Kubeadm:
		return append(units("kubelet.service.d/10-kubeadm.conf"), kubeadmFlagsEnv)
	case Systemd:
		return units("kubelet.service")
	}
	return nil
}

// Detect tells which distribution runs the kubelet below root, with the
// files that say so. EKS wins over the rest (its nodes also have a plain
// kubelet.service), and plain systemd is what is left when only a
// kubelet.service is found; k3s, rke2 and kubeadm on one node are
// ambiguous, and the caller must choose.
func Detect(root string) (Distro, []string, error) {
	n, err := openNodeFS(root)
	if err != nil {
		return "", nil, err
	}
	defer n.Close()
	return detect(n)
}

func detect(n *nodeFS) (Distro, []string, error) {
	found := map[Distro][]string{}
	seen := map[string]bool{} // /lib/... and /usr/lib/... are often one file
	for _, d := range Distros {
		for _, m := range markers(d) {
			rel, err := n.resolve(m)
			if err != nil {
				return "", nil, err
			}
			if n.exists(m) && !seen[rel] {
				seen[rel] = true
				found[d] = append(found[d], m)
			}
		}
	}
	if ev := found[EKS]; len(ev) > 0 {
		return EKS, ev, nil
	}
	var hits []Distro
	for _, d := range []Distro{RKE2, K3s, Kubeadm} {
		if len(found[d]) > 0 {
			hits = append(hits, d)
		}
	}
	switch len(hits) {
	case 1:
		return hits[0], found[hits[0]], nil
	case 0:
		if ev := found[Systemd]; len(ev) > 0 {
			return Systemd, ev, nil
		}
		return "", nil, fmt.Errorf("cannot tell how the kubelet runs below %s: found none of k3s, rke2, kubeadm, EKS or a kubelet.service unit; pass --distro", n.dir)
	}
	var parts []string
	for _, d := range hits {
		parts = append(parts, fmt.Sprintf("%s (%s)", d, strings.Join(found[d], ", ")))
	}
	return "", nil, fmt.Errorf("this node looks like more than one distribution: %s; pass --distro to choose", strings.Join(parts, "; "))
}
