// Package hostnode is the fleet installer's hold on the node it runs on:
// the host's root filesystem mounted into the pod, changed by the same
// install and uninstall (internal/nodesetup) an operator runs by hand, with
// the same record, and the installed plugin run as the kubelet runs it.
package hostnode

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/kubecred/ecr-credential-provider/fleet/internal/rollout"
	"github.com/kubecred/ecr-credential-provider/internal/nodesetup"
	"github.com/kubecred/ecr-credential-provider/internal/protocol"
	"github.com/kubecred/ecr-credential-provider/internal/providerconfig"
)

// Node installs into (or uninstalls from) the host root Options.Root.
type Node struct {
	// Options are install's; Root is the host root's mount point.
	Options nodesetup.Options
	// Uninstall makes the action an uninstall.
	Uninstall bool
	// Kubelet is the version the node reports; its rules check the files
	// before any restart.
	Kubelet providerconfig.Version
}

var _ rollout.Node = (*Node)(nil)

func (n *Node) run(ctx context.Context, dry bool) (*nodesetup.Result, error) {
	o := n.Options
	o.DryRun, o.Restart = dry, false
	if n.Uninstall {
		return nodesetup.Uninstall(ctx, o)
	}
	return nodesetup.Install(ctx, o)
}

// Plan is a dry run of the action.
func (n *Node) Plan(ctx context.Context) (rollout.Change, error) {
	res, err := n.run(ctx, true)
	if err != nil {
		return rollout.Change{}, err
	}
	c := rollout.Change{Changed: res.Changed, NeedsForce: res.NeedsForce, Diff: res.Diff}
	for _, a := range res.Actions {
		c.Actions = append(c.Actions, a.String(true))
	}
	return c, nil
}

// Snapshot records the files the action would change.
func (n *Node) Snapshot(ctx context.Context) (rollout.Restorer, error) {
	return nodesetup.TakeSnapshot(ctx, n.Options, n.Uninstall)
}

// Apply does the action and returns the systemctl commands it needs.
func (n *Node) Apply(ctx context.Context) ([][]string, error) {
	res, err := n.run(ctx, false)
	if err != nil {
		return nil, err
	}
	if res.Incomplete {
		return nil, fmt.Errorf("uninstall left something in place: %s", strings.Join(res.Notes, "; "))
	}
	var cmds [][]string
	for _, c := range res.Restart {
		cmds = append(cmds, strings.Fields(strings.TrimPrefix(c, "systemctl ")))
	}
	return cmds, nil
}

// CheckBoot checks the files with the rules of the node's kubelet.
func (n *Node) CheckBoot(context.Context) ([]string, error) {
	probs, _, err := nodesetup.CheckBoot(n.root(), n.Options.Distro, n.Kubelet)
	return probs, err
}

func (n *Node) root() string {
	if n.Options.Root == "" {
		return "/"
	}
	return n.Options.Root
}

// CheckCredentials runs the plugin the kubelet's wiring names, with its
// provider entry's args and env, for image, and checks that it answers
// with credentials for the image's registry. The plugin runs in the pod
// (its cache, if it has one, is the pod's), as the kubelet would run it
// on the host.
func (n *Node) CheckCredentials(ctx context.Context, image string) error {
	if image == "" {
		return rollout.ErrNoCheck
	}
	_, w, err := nodesetup.CheckBoot(n.root(), n.Options.Distro, n.Kubelet)
	if err != nil {
		return err
	}
	if w.Config.Value == "" || w.BinDir.Value == "" {
		return errors.New("the kubelet's wiring names no provider config and bin dir")
	}
	cfg, err := providerconfig.Load(filepath.Join(n.root(), w.Config.Value))
	if err != nil {
		return err
	}
	var ours *providerconfig.CredentialProvider
	for _, p := range cfg.Providers() {
		if p.Name == providerconfig.DefaultName {
			ours = &p
			break
		}
	}
	if ours == nil {
		return fmt.Errorf("%s has no provider named %s", w.Config.Value, providerconfig.DefaultName)
	}
	bin := filepath.Join(n.root(), w.BinDir.Value, ours.Name)
	req, _ := json.Marshal(protocol.Request{APIVersion: ours.APIVersion, Kind: protocol.RequestKind, Image: image})
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, ours.Args...)
	cmd.Env = os.Environ()
	for _, e := range ours.Env {
		cmd.Env = append(cmd.Env, e.Name+"="+e.Value)
	}
	cmd.Stdin = bytes.NewReader(req)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s for %s: %v: %s", bin, image, err, protocol.Clip(strings.TrimSpace(stderr.String())))
	}
	var resp protocol.Response
	if err := json.Unmarshal(stdout.Bytes(), &resp); err != nil {
		return fmt.Errorf("%s for %s: the answer is not a CredentialProviderResponse: %v", bin, image, err)
	}
	if len(resp.Auth) == 0 {
		return fmt.Errorf("%s for %s answered no credentials", bin, image)
	}
	return nil
}
