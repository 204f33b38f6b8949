// Package removal takes the provider off every node before its DaemonSet
// goes: it switches the DaemonSet to uninstall mode and waits until the
// rolling update has passed every node (each uninstalled, its kubelet
// restarted and Ready), so the same one-node-at-a-time rollout and the
// same health check guard the way out. Helm runs it as a pre-delete hook.
package removal

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// ModeEnv is the installer container's environment variable that selects
// its mode.
const ModeEnv = "ECR_NODE_INSTALLER_MODE"

// Remove sets the DaemonSet's pods to uninstall and waits for every node.
// A DaemonSet that is gone already is nothing to do.
func Remove(ctx context.Context, kube kubernetes.Interface, namespace, name string, logf func(string, ...any)) error {
	dss := kube.AppsV1().DaemonSets(namespace)
	ds, err := dss.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		logf("daemonset %s/%s is gone: nothing to uninstall", namespace, name)
		return nil
	}
	if err != nil {
		return err
	}
	if setMode(ds, "uninstall") {
		if ds, err = dss.Update(ctx, ds, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("switching daemonset %s/%s to uninstall: %w", namespace, name, err)
		}
		logf("daemonset %s/%s switched to uninstall; waiting for every node", namespace, name)
	}
	for {
		if done, state := rolledOut(ds); done {
			logf("every node uninstalled: %s", state)
			return nil
		} else {
			logf("%s", state)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the uninstall on every node: %w (kubectl -n %s get pods -l app.kubernetes.io/name=%s shows which node is not Ready; its log and the node's Events say why)", ctx.Err(), namespace, name)
		case <-time.After(3 * time.Second):
		}
		if ds, err = dss.Get(ctx, name, metav1.GetOptions{}); err != nil {
			return err
		}
	}
}

// setMode sets ModeEnv on every container of the pod template, and
// reports whether anything changed.
func setMode(ds *appsv1.DaemonSet, mode string) bool {
	changed := false
	cs := ds.Spec.Template.Spec.Containers
	for i := range cs {
		found := false
		for j := range cs[i].Env {
			if cs[i].Env[j].Name == ModeEnv {
				found = true
				if cs[i].Env[j].Value != mode || cs[i].Env[j].ValueFrom != nil {
					cs[i].Env[j] = corev1.EnvVar{Name: ModeEnv, Value: mode}
					changed = true
				}
			}
		}
		if !found {
			cs[i].Env = append(cs[i].Env, corev1.EnvVar{Name: ModeEnv, Value: mode})
			changed = true
		}
	}
	return changed
}

// rolledOut is kubectl rollout status's test for a DaemonSet.
func rolledOut(ds *appsv1.DaemonSet) (bool, string) {
	s := ds.Status
	state := fmt.Sprintf("%d of %d nodes updated, %d available", s.UpdatedNumberScheduled, s.DesiredNumberScheduled, s.NumberAvailable)
	if s.ObservedGeneration < ds.Generation {
		return false, "waiting for the daemonset controller to see the change"
	}
	return s.UpdatedNumberScheduled == s.DesiredNumberScheduled && s.NumberAvailable == s.DesiredNumberScheduled, state
}
