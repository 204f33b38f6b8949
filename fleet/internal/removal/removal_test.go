package removal

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func daemonSet(mode string) *appsv1.DaemonSet {
	return &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "inst", Namespace: "kube-system", Generation: 1},
		Spec: appsv1.DaemonSetSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "installer", Env: []corev1.EnvVar{{Name: "OTHER", Value: "x"}, {Name: ModeEnv, Value: mode}}}}}}},
		Status: appsv1.DaemonSetStatus{ObservedGeneration: 1, DesiredNumberScheduled: 2, UpdatedNumberScheduled: 2, NumberAvailable: 2}}
}

// TestRemove switches the DaemonSet to uninstall (keeping its other env)
// and returns only once the controller reports every node updated and
// available; a DaemonSet already gone is nothing to do.
func TestRemove(t *testing.T) {
	kube := fake.NewClientset(daemonSet("install"))
	// The API server bumps the generation when the spec changes; the
	// fake does not.
	kube.PrependReactor("update", "daemonsets", func(a k8stesting.Action) (bool, runtime.Object, error) {
		ds := a.(k8stesting.UpdateAction).GetObject().(*appsv1.DaemonSet)
		old, _ := kube.Tracker().Get(appsv1.SchemeGroupVersion.WithResource("daemonsets"), ds.Namespace, ds.Name)
		if o := old.(*appsv1.DaemonSet); !equality.Semantic.DeepEqual(o.Spec, ds.Spec) {
			ds.Generation = o.Generation + 1
		}
		return false, nil, nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Remove(ctx, kube, "kube-system", "inst", t.Logf) }()

	// The update bumped nothing in the fake; play the controller: a new
	// generation, observed, half rolled out, then all of it.
	var ds *appsv1.DaemonSet
	for ds == nil || ds.Spec.Template.Spec.Containers[0].Env[1].Value != "uninstall" {
		time.Sleep(20 * time.Millisecond)
		ds, _ = kube.AppsV1().DaemonSets("kube-system").Get(ctx, "inst", metav1.GetOptions{})
	}
	if ds.Spec.Template.Spec.Containers[0].Env[0].Value != "x" {
		t.Errorf("other env changed: %+v", ds.Spec.Template.Spec.Containers[0].Env)
	}
	ds.Status = appsv1.DaemonSetStatus{ObservedGeneration: 2, DesiredNumberScheduled: 2, UpdatedNumberScheduled: 1, NumberAvailable: 1}
	kube.AppsV1().DaemonSets("kube-system").Update(ctx, ds, metav1.UpdateOptions{}) //nolint:errcheck
	select {
	case err := <-done:
		t.Fatalf("Remove returned (%v) with one node left", err)
	case <-time.After(4 * time.Second):
	}
	ds.Status.UpdatedNumberScheduled, ds.Status.NumberAvailable = 2, 2
	kube.AppsV1().DaemonSets("kube-system").Update(ctx, ds, metav1.UpdateOptions{}) //nolint:errcheck
	if err := <-done; err != nil {
		t.Fatalf("Remove: %v", err)
	}

	if err := Remove(ctx, fake.NewClientset(), "kube-system", "inst", t.Logf); err != nil {
		t.Errorf("no DaemonSet: %v", err)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	stuck := daemonSet("install")
	stuck.Status.NumberAvailable = 1
	if err := Remove(short, fake.NewClientset(stuck), "kube-system", "inst", t.Logf); err == nil || !strings.Contains(err.Error(), "get pods -l") {
		t.Errorf("a node that never passes: %v", err)
	}
}
