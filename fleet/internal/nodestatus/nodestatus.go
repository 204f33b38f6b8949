// Package nodestatus is the fleet installer's view of its node through the
// API server: whether the kubelet came back after a restart (its Lease
// renewed since, and the node Ready), and the per-node report an operator
// reads with kubectl: annotations on the Node and Events about it.
package nodestatus

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"

	"github.com/kubecred/ecr-credential-provider/fleet/internal/rollout"
)

// The Node annotations the installer writes; kubectl describe node shows
// them, and `kubectl get nodes -o custom-columns` lists them fleet-wide.
const (
	Prefix            = "ecr-credential-provider.kubecred.io/"
	AnnotationResult  = Prefix + "installer-result"
	AnnotationMessage = Prefix + "installer-message"
	AnnotationVersion = Prefix + "installer-version"
	AnnotationSpec    = Prefix + "installer-spec"
	AnnotationTime    = Prefix + "installer-time"
)

// LeaseNamespace holds the kubelets' heartbeat Leases, one per node.
const LeaseNamespace = "kube-node-lease"

// Client is one node's status.
type Client struct {
	Kube kubernetes.Interface
	Node string
	// Events records Events on the Node (nil: none).
	Events record.EventRecorder
	// Poll is how often WaitKubelet looks (0: 2s).
	Poll time.Duration
}

// WaitKubelet waits until the node's Lease was renewed after since and the
// node is Ready: a kubelet started after since runs and talks to the API
// server. The error says what was last seen.
func (c *Client) WaitKubelet(ctx context.Context, since time.Time) error {
	poll := c.Poll
	if poll == 0 {
		poll = 2 * time.Second
	}
	last := "nothing read yet"
	for {
		ok, state := c.kubeletBack(ctx, since)
		if ok {
			return nil
		}
		last = state
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %s", ctx.Err(), last)
		case <-time.After(poll):
		}
	}
}

func (c *Client) kubeletBack(ctx context.Context, since time.Time) (bool, string) {
	lease, err := c.Kube.CoordinationV1().Leases(LeaseNamespace).Get(ctx, c.Node, metav1.GetOptions{})
	if err != nil {
		return false, "reading the node's Lease: " + err.Error()
	}
	if !renewedAfter(lease, since) {
		return false, "the node's Lease was not renewed since the restart"
	}
	node, err := c.Kube.CoreV1().Nodes().Get(ctx, c.Node, metav1.GetOptions{})
	if err != nil {
		return false, "reading the Node: " + err.Error()
	}
	for _, cond := range node.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			if cond.Status == corev1.ConditionTrue {
				return true, ""
			}
			return false, fmt.Sprintf("node Ready=%s: %s", cond.Status, cond.Message)
		}
	}
	return false, "the node has no Ready condition"
}

func renewedAfter(l *coordinationv1.Lease, since time.Time) bool {
	// The Lease holds microseconds; the kubelet and this pod share the
	// node's clock.
	return l.Spec.RenewTime != nil && !l.Spec.RenewTime.Time.Before(since.Truncate(time.Microsecond))
}

// Report is what the installer says about its node.
type Report struct {
	Outcome rollout.Outcome
	// Version is the installed binary's version; Spec identifies the
	// configuration tried (the chart's values and the binary).
	Version, Spec string
	Time          time.Time
}

// Publish writes the report's annotations on the Node and records an
// Event: Normal when the node passed, Warning when not.
func (c *Client) Publish(ctx context.Context, r Report) error {
	patch := map[string]any{"metadata": map[string]any{"annotations": map[string]string{
		AnnotationResult:  r.Outcome.Result,
		AnnotationMessage: r.Outcome.Message,
		AnnotationVersion: r.Version,
		AnnotationSpec:    r.Spec,
		AnnotationTime:    r.Time.UTC().Format(time.RFC3339),
	}}}
	b, _ := json.Marshal(patch)
	if _, err := c.Kube.CoreV1().Nodes().Patch(ctx, c.Node, types.MergePatchType, b, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("annotating node %s: %w", c.Node, err)
	}
	if c.Events != nil {
		ref := &corev1.ObjectReference{Kind: "Node", Name: c.Node, UID: types.UID(c.Node), APIVersion: "v1"}
		typ := corev1.EventTypeNormal
		if !r.Outcome.Ready {
			typ = corev1.EventTypeWarning
		}
		c.Events.Event(ref, typ, EventReason(r.Outcome), r.Outcome.Message)
	}
	return nil
}

// EventReason is the Event's reason for an outcome, e.g. ProviderRolledBack.
func EventReason(o rollout.Outcome) string {
	switch o.Result {
	case rollout.ResultInstalled:
		return "ProviderInstalled"
	case rollout.ResultUninstalled:
		return "ProviderUninstalled"
	case rollout.ResultUnchanged:
		return "ProviderUnchanged"
	case rollout.ResultDryRun:
		return "ProviderDryRun"
	case rollout.ResultNeedsForce:
		return "ProviderNeedsForce"
	case rollout.ResultRolledBack:
		return "ProviderRolledBack"
	}
	return "ProviderFailed"
}

// Previous returns the result and spec the node's annotations hold.
func (c *Client) Previous(ctx context.Context) (result, spec string, err error) {
	node, err := c.Kube.CoreV1().Nodes().Get(ctx, c.Node, metav1.GetOptions{})
	if err != nil {
		return "", "", err
	}
	return node.Annotations[AnnotationResult], node.Annotations[AnnotationSpec], nil
}
