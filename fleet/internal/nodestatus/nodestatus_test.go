package nodestatus

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"

	"github.com/kubecred/ecr-credential-provider/fleet/internal/rollout"
)

func node(ready corev1.ConditionStatus) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready, Message: "kubelet says"}}}}
}

func lease(renew time.Time) *coordinationv1.Lease {
	return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "n1", Namespace: LeaseNamespace},
		Spec: coordinationv1.LeaseSpec{RenewTime: &metav1.MicroTime{Time: renew}}}
}

// TestWaitKubelet: the kubelet counts as back only when its Lease was
// renewed after the restart and the node is Ready.
func TestWaitKubelet(t *testing.T) {
	restart := time.Now().Truncate(time.Microsecond)
	tests := []struct {
		name  string
		renew time.Time
		ready corev1.ConditionStatus
		want  string // "" = back
	}{
		{"renewed and Ready", restart.Add(2 * time.Second), corev1.ConditionTrue, ""},
		{"Lease from before the restart", restart.Add(-time.Second), corev1.ConditionTrue, "not renewed since the restart"},
		{"renewed, NotReady", restart.Add(time.Second), corev1.ConditionFalse, "Ready=False: kubelet says"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Client{Kube: fake.NewClientset(node(tt.ready), lease(tt.renew)), Node: "n1", Poll: 10 * time.Millisecond}
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			err := c.WaitKubelet(ctx, restart)
			if tt.want == "" && err != nil {
				t.Fatalf("WaitKubelet: %v", err)
			}
			if tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("WaitKubelet = %v; want an error saying %q", err, tt.want)
			}
		})
	}
}

// TestPublish: the outcome lands in the Node's annotations, keeping the
// others, with a Warning Event when the node did not pass.
func TestPublish(t *testing.T) {
	n := node(corev1.ConditionTrue)
	n.Annotations = map[string]string{"operator/own": "kept"}
	kube := fake.NewClientset(n)
	rec := record.NewFakeRecorder(4)
	c := &Client{Kube: kube, Node: "n1", Events: rec}
	o := rollout.Outcome{Mode: rollout.Install, Result: rollout.ResultRolledBack, Message: "install failed after the restart: x"}
	if err := c.Publish(context.Background(), Report{Outcome: o, Version: "v1.2.3", Spec: "abc", Time: time.Unix(0, 0)}); err != nil {
		t.Fatal(err)
	}
	got, _ := kube.CoreV1().Nodes().Get(context.Background(), "n1", metav1.GetOptions{})
	want := map[string]string{"operator/own": "kept", AnnotationResult: "rolled-back", AnnotationMessage: o.Message,
		AnnotationVersion: "v1.2.3", AnnotationSpec: "abc", AnnotationTime: "1970-01-01T00:00:00Z"}
	for k, v := range want {
		if got.Annotations[k] != v {
			t.Errorf("annotation %s = %q; want %q", k, got.Annotations[k], v)
		}
	}
	if ev := <-rec.Events; !strings.HasPrefix(ev, "Warning ProviderRolledBack install failed") {
		t.Errorf("event %q", ev)
	}
	if r, s, err := c.Previous(context.Background()); r != "rolled-back" || s != "abc" || err != nil {
		t.Errorf("Previous = %q %q %v", r, s, err)
	}
}

// TestChartPolicyAllowsTheseAnnotations: the chart's admission policy
// lets the installer change only annotations under one prefix; it must be
// the prefix Publish writes, or every node's report would be refused.
func TestChartPolicyAllowsTheseAnnotations(t *testing.T) {
	b, err := os.ReadFile("../../../deploy/charts/ecr-credential-provider/templates/node-policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if want := `"'` + Prefix + `'"`; !strings.Contains(string(b), want) {
		t.Errorf("the chart's node policy does not allow annotations under %s (no %s in it)", Prefix, want)
	}
	for _, a := range []string{AnnotationResult, AnnotationMessage, AnnotationVersion, AnnotationSpec, AnnotationTime} {
		if !strings.HasPrefix(a, Prefix) {
			t.Errorf("annotation %s is not under %s", a, Prefix)
		}
	}
}
