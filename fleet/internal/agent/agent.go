// Package agent is the fleet installer's container: it reads its node's
// kubelet version from the API server, runs the node's rollout (install,
// uninstall or dry run) against the host root, publishes the outcome on the
// Node, marks the pod Ready only when the node passed, and then stays, so
// that the DaemonSet's rolling update moves on only past good nodes.
package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"

	"github.com/kubecred/ecr-credential-provider/fleet/internal/hostnode"
	"github.com/kubecred/ecr-credential-provider/fleet/internal/nodestatus"
	"github.com/kubecred/ecr-credential-provider/fleet/internal/rollout"
	"github.com/kubecred/ecr-credential-provider/fleet/internal/systemd"
	"github.com/kubecred/ecr-credential-provider/internal/nodesetup"
	"github.com/kubecred/ecr-credential-provider/internal/providerconfig"
	"github.com/kubecred/ecr-credential-provider/internal/registrymap"
)

// Config is the container's settings (the chart's values, as flags).
type Config struct {
	Mode     rollout.Mode
	NodeName string
	// HostRoot is where the host's root filesystem is mounted.
	HostRoot string
	// Binary is the plugin binary to install (in the image).
	Binary  string
	Version string
	Distro  string
	Public  bool
	// ReplaceEKSBinary is install --force on EKS nodes.
	ReplaceEKSBinary bool
	PerPodRoles      bool
	Audience         string
	RoleAnnotations  []string
	RegistryMap      []string
	// PullThroughCache are install --pull-through-cache's entries: the
	// map and each source's runtime mirror (containerd hosts.toml, k3s and
	// rke2 registries.yaml), with no fallback to the source.
	PullThroughCache []string
	Env              []string
	// CheckImage is the image the credential check asks for.
	CheckImage string
	// Timeout bounds the wait for the kubelet after a restart.
	Timeout time.Duration
	// ReadyFile is created when the node passed; the readiness probe
	// looks for it.
	ReadyFile string
	// Retry tries a configuration again that already failed on this node.
	Retry bool
}

// Spec identifies what is tried on the node: the settings and the binary.
// A configuration that failed on a node is not tried again there after a
// container restart (it would restart the kubelet into failure again).
func (c Config) Spec() (string, error) {
	f, err := os.Open(c.Binary)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	settings := c
	settings.NodeName, settings.ReadyFile, settings.Timeout, settings.Retry = "", "", 0, false
	b, _ := json.Marshal(settings)
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// Run does the node's rollout and publishes it. The returned outcome's
// Ready says whether the ready file was written.
func Run(ctx context.Context, c Config, kube kubernetes.Interface, events record.EventRecorder, logf func(string, ...any)) (rollout.Outcome, error) {
	os.Remove(c.ReadyFile)
	status := &nodestatus.Client{Kube: kube, Node: c.NodeName, Events: events}
	node, err := kube.CoreV1().Nodes().Get(ctx, c.NodeName, metav1.GetOptions{})
	if err != nil {
		return rollout.Outcome{}, fmt.Errorf("reading node %s: %w", c.NodeName, err)
	}
	kv, err := providerconfig.ParseVersion(node.Status.NodeInfo.KubeletVersion)
	if err != nil {
		return rollout.Outcome{}, fmt.Errorf("node %s reports kubelet %q: %w", c.NodeName, node.Status.NodeInfo.KubeletVersion, err)
	}
	spec, err := c.Spec()
	if err != nil {
		return rollout.Outcome{}, err
	}
	logf("node %s, kubelet %s, mode %s, spec %s", c.NodeName, node.Status.NodeInfo.KubeletVersion, c.Mode, spec)

	failed := []string{rollout.ResultRolledBack, rollout.ResultFailed}
	if !c.Retry && node.Annotations[nodestatus.AnnotationSpec] == spec && slices.Contains(failed, node.Annotations[nodestatus.AnnotationResult]) {
		o := rollout.Outcome{Mode: c.Mode, Result: node.Annotations[nodestatus.AnnotationResult],
			Message: fmt.Sprintf("not tried again: this configuration already ended %s on this node (%s); change the chart's values, or set retry to try it again",
				node.Annotations[nodestatus.AnnotationResult], node.Annotations[nodestatus.AnnotationMessage])}
		logf("%s", o.Message)
		return o, nil
	}

	opts, err := c.nodesetupOptions(kv)
	if err != nil {
		return rollout.Outcome{}, err
	}
	hn := &hostnode.Node{Options: opts, Uninstall: c.Mode == rollout.Uninstall, Kubelet: kv}
	o := rollout.Run(ctx, rollout.Config{
		Mode:    c.Mode,
		Node:    hn,
		Systemd: systemd.ForRoot(c.HostRoot),
		Health:  health{status, hn, c.CheckImage},
		Timeout: c.Timeout,
		Log:     logf,
	})
	logf("%s: %s", o.Result, o.Message)
	if err := status.Publish(ctx, nodestatus.Report{Outcome: o, Version: c.Version, Spec: spec, Time: time.Now()}); err != nil {
		logf("%v", err)
	}
	if o.Ready {
		if err := os.WriteFile(c.ReadyFile, []byte(o.Result+"\n"), 0o644); err != nil {
			return o, fmt.Errorf("writing the ready file: %w", err)
		}
	}
	return o, nil
}

func (c Config) nodesetupOptions(kv providerconfig.Version) (nodesetup.Options, error) {
	o := nodesetup.Options{Root: c.HostRoot, Binary: c.Binary, Public: c.Public, Force: c.ReplaceEKSBinary}
	if c.Distro != "" {
		d, err := nodesetup.ParseDistro(c.Distro)
		if err != nil {
			return o, err
		}
		o.Distro = d
	}
	env, err := providerconfig.ParseEnv(c.Env)
	if err != nil {
		return o, err
	}
	o.Provider = providerconfig.RecommendedOptions{
		Env: env, PerPodRoles: c.PerPodRoles, Audience: c.Audience, RoleAnnotations: c.RoleAnnotations,
		KubeletVersion: kv,
	}
	for _, m := range c.RegistryMap {
		o.Provider.Args = append(o.Provider.Args, "--registry-map="+m)
	}
	if len(c.PullThroughCache) > 0 {
		rules, err := registrymap.Parse(c.PullThroughCache)
		if err != nil {
			return o, fmt.Errorf("pullThroughCache: %w", err)
		}
		o.PullThroughCache = rules.Rules()
	}
	return o, nil
}

// health is rollout.Health from the API server and the installed plugin.
type health struct {
	status *nodestatus.Client
	node   *hostnode.Node
	image  string
}

func (h health) WaitKubelet(ctx context.Context, since time.Time) error {
	return h.status.WaitKubelet(ctx, since)
}

func (h health) CheckCredentials(ctx context.Context) error {
	return h.node.CheckCredentials(ctx, h.image)
}

// ErrNotReady is the readiness probe's answer before the node passed.
var ErrNotReady = errors.New("not ready: the node has not passed (see this pod's log and the node's annotations)")

// Ready is the readiness probe: nil once the ready file exists.
func Ready(readyFile string) error {
	if _, err := os.Stat(readyFile); err != nil {
		return ErrNotReady
	}
	return nil
}
