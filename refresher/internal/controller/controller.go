// Package controller keeps the ECR pull Secret in every selected namespace
// and attaches it to the selected ServiceAccounts. Each namespace is one work
// item, reconciled from the API server's current state and the tokens the
// credentials Store holds; a refresh that brings new tokens requeues them all.
package controller

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

	"github.com/kubecred/ecr-credential-provider/internal/ecrhost"
	"github.com/kubecred/ecr-credential-provider/refresher/internal/credentials"
	"github.com/kubecred/ecr-credential-provider/refresher/internal/dockerconfig"
	"github.com/kubecred/ecr-credential-provider/refresher/internal/metrics"
)

const (
	// ManagedByLabel and ManagedByValue mark the Secrets this controller
	// owns; it deletes or rewrites no Secret without them.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedByValue = "ecr-pull-secrets"
	// AttachedAnnotation lists, comma-separated, the Secrets this controller
	// added to a ServiceAccount's imagePullSecrets, so that it detaches only
	// references it made and leaves ones an operator added alone.
	AttachedAnnotation = "ecr-pull-secrets.kubecred.io/attached"
)

// Event reasons.
const (
	ReasonTokenRefreshFailed = "TokenRefreshFailed"
	ReasonSyncFailed         = "PullSecretSyncFailed"
	ReasonNotManaged         = "PullSecretNotManaged"
	ReasonPodRestarted       = "ImagePullBackOffRestarted"
)

// Config says what to keep where.
type Config struct {
	SecretName string
	Registries []ecrhost.Registry
	// Namespaces lists the selected namespaces by name. With neither it nor
	// Selector set, every namespace is selected.
	Namespaces []string
	// Selector selects namespaces by label; nil selects none by label.
	Selector        labels.Selector
	ServiceAccounts []string
	// RestartImagePullBackOff deletes, after the Secret is written, pods with
	// an owner controller that are stuck pulling from a managed registry.
	RestartImagePullBackOff bool
	Workers                 int
	ResyncPeriod            time.Duration
}

// Controller reconciles namespaces.
type Controller struct {
	client  kubernetes.Interface
	cfg     Config
	creds   *credentials.Store
	metrics *metrics.Metrics
	rec     record.EventRecorder
	clock   clock.WithTicker
	log     *slog.Logger
	queue   workqueue.TypedRateLimitingInterface[string]
	hosts   map[string]bool
	// Listers, set once the informers run (nil in unit tests that call
	// SyncNamespace directly): they let a resync skip namespaces that need
	// nothing.
	nsList  corelisters.NamespaceLister
	saList  corelisters.ServiceAccountLister
	secList corelisters.SecretLister
}

// New returns a Controller. It writes nothing until Run.
func New(client kubernetes.Interface, cfg Config, creds *credentials.Store, m *metrics.Metrics, rec record.EventRecorder, clk clock.WithTicker, log *slog.Logger) *Controller {
	if cfg.Workers <= 0 {
		cfg.Workers = 2
	}
	if cfg.ResyncPeriod <= 0 {
		cfg.ResyncPeriod = 10 * time.Minute
	}
	if clk == nil {
		clk = clock.RealClock{}
	}
	hosts := map[string]bool{}
	for _, r := range cfg.Registries {
		hosts[strings.ToLower(r.Host)] = true
	}
	return &Controller{
		client: client, cfg: cfg, creds: creds, metrics: m, rec: rec, clock: clk, log: log, hosts: hosts,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "namespaces"}),
	}
}

// Run watches namespaces, ServiceAccounts and the managed Secrets, keeps the
// tokens fresh and reconciles until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	defer c.queue.ShutDown()
	stop, err := c.startInformers(ctx)
	if err != nil {
		return err
	}
	defer stop()
	c.log.Info("caches synced; fetching tokens", "registries", len(c.cfg.Registries))
	for range c.cfg.Workers {
		go wait.UntilWithContext(ctx, func(ctx context.Context) {
			for c.processNext(ctx) {
			}
		}, time.Second)
	}
	c.refreshLoop(ctx)
	return nil
}

// startInformers starts the informers, waits for their caches and returns a
// function that waits for them to stop after ctx ends.
func (c *Controller) startInformers(ctx context.Context) (func(), error) {
	factory := informers.NewSharedInformerFactory(c.client, c.cfg.ResyncPeriod)
	managed := informers.NewSharedInformerFactoryWithOptions(c.client, c.cfg.ResyncPeriod,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			sel := c.managedSecrets()
			o.LabelSelector, o.FieldSelector = sel.LabelSelector, sel.FieldSelector
		}))
	nsInf := factory.Core().V1().Namespaces()
	saInf := factory.Core().V1().ServiceAccounts()
	secInf := managed.Core().V1().Secrets()
	byNamespace := func(obj any) {
		if ns, ok := obj.(*corev1.Namespace); ok {
			c.queue.Add(ns.Name)
			return
		}
		if m, err := metaOf(obj); err == nil && m.GetNamespace() != "" {
			c.queue.Add(m.GetNamespace())
		}
	}
	onChange := cache.ResourceEventHandlerFuncs{AddFunc: byNamespace, UpdateFunc: func(_, obj any) { byNamespace(obj) }}
	if _, err := nsInf.Informer().AddEventHandler(onChange); err != nil {
		return nil, err
	}
	if _, err := saInf.Informer().AddEventHandler(cache.FilteringResourceEventHandler{
		FilterFunc: func(obj any) bool {
			sa, ok := obj.(*corev1.ServiceAccount)
			return ok && (slices.Contains(c.cfg.ServiceAccounts, sa.Name) || slices.Contains(attached(sa), c.cfg.SecretName))
		},
		Handler: onChange,
	}); err != nil {
		return nil, err
	}
	if _, err := secInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: byNamespace, UpdateFunc: func(_, obj any) { byNamespace(obj) }, DeleteFunc: byNamespace,
	}); err != nil {
		return nil, err
	}
	factory.Start(ctx.Done())
	managed.Start(ctx.Done())
	stop := func() { factory.Shutdown(); managed.Shutdown() }
	if !cache.WaitForCacheSync(ctx.Done(), nsInf.Informer().HasSynced, saInf.Informer().HasSynced, secInf.Informer().HasSynced) {
		return stop, errors.New("informer caches did not sync before shutdown")
	}
	c.nsList, c.saList, c.secList = nsInf.Lister(), saInf.Lister(), secInf.Lister()
	return stop, nil
}

func metaOf(obj any) (metav1.Object, error) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("unexpected object %T", obj)
	}
	return m, nil
}

// refreshLoop fetches tokens when due and requeues every namespace when one
// changed, until ctx ends.
func (c *Controller) refreshLoop(ctx context.Context) {
	for {
		next := c.Refresh(ctx)
		t := c.clock.NewTimer(max(next.Sub(c.clock.Now()), 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
	}
}

// Refresh fetches the tokens that are due, reports failures, requeues every
// namespace if a token changed, and returns when the next one is due.
func (c *Controller) Refresh(ctx context.Context) time.Time {
	results, next := c.creds.RefreshDue(ctx)
	changed := false
	for _, r := range results {
		if r.Err == nil {
			c.metrics.Refreshes.WithLabelValues(r.Registry).Inc()
			c.log.Info("token refreshed", "registry", r.Registry, "expiresAt", r.ExpiresAt, "nextRefresh", r.Next)
			changed = changed || r.Changed
			continue
		}
		c.metrics.RefreshFailures.WithLabelValues(r.Registry, credentials.Reason(r.Err)).Inc()
		c.log.Error("token refresh failed", "registry", r.Registry, "err", r.Err, "heldTokenExpiresAt", r.ExpiresAt, "retryAt", r.Next)
		c.reportFailure(ctx, r)
	}
	if changed {
		c.enqueueAll()
	}
	return next
}

// reportFailure puts a Warning Event on every managed Secret: that is the
// object whose credentials go stale, and the one a team whose pulls fail
// looks at (kubectl describe secret). The recorder folds repeats into one
// Event with a count.
func (c *Controller) reportFailure(ctx context.Context, r credentials.Result) {
	var secrets []*corev1.Secret
	if c.secList != nil {
		all, err := c.secList.List(labels.Everything())
		if err != nil {
			c.log.Error("listing managed Secrets to report a failure", "err", err)
			return
		}
		secrets = all
	} else {
		list, err := c.client.CoreV1().Secrets("").List(ctx, c.managedSecrets())
		if err != nil {
			c.log.Error("listing managed Secrets to report a failure", "err", err)
			return
		}
		for i := range list.Items {
			secrets = append(secrets, &list.Items[i])
		}
	}
	held := "this replica holds no token for it yet; the Secret keeps the entry it has, if any"
	if !r.ExpiresAt.IsZero() {
		held = "the Secret keeps the current token, valid until " + r.ExpiresAt.UTC().Format(time.RFC3339)
	}
	for _, s := range secrets {
		if s.Name != c.cfg.SecretName {
			continue
		}
		c.rec.Eventf(s, corev1.EventTypeWarning, ReasonTokenRefreshFailed,
			"refreshing the token for %s failed: %v; %s; next try at %s",
			r.Registry, r.Err, held, r.Next.UTC().Format(time.RFC3339))
	}
}

// managedSecrets selects our Secrets by label and by name. The name lets
// RBAC grant list and watch with resourceNames (the API server authorizes a
// metadata.name field selector as that name), so the controller cannot read
// other Secrets.
func (c *Controller) managedSecrets() metav1.ListOptions {
	return metav1.ListOptions{
		LabelSelector: ManagedByLabel + "=" + ManagedByValue,
		FieldSelector: "metadata.name=" + c.cfg.SecretName,
	}
}

func (c *Controller) enqueueAll() {
	if c.nsList == nil {
		return
	}
	all, err := c.nsList.List(labels.Everything())
	if err != nil {
		c.log.Error("listing namespaces", "err", err)
		return
	}
	for _, ns := range all {
		c.queue.Add(ns.Name)
	}
}

func (c *Controller) processNext(ctx context.Context) bool {
	ns, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(ns)
	if err := c.SyncNamespace(ctx, ns); err != nil {
		c.metrics.SyncFailures.Inc()
		c.log.Error("reconciling namespace", "namespace", ns, "err", err)
		c.queue.AddRateLimited(ns)
		return true
	}
	c.queue.Forget(ns)
	return true
}

// Selects reports whether the namespace should hold the Secret.
func (c *Controller) Selects(ns *corev1.Namespace) bool {
	switch {
	case len(c.cfg.Namespaces) > 0:
		return slices.Contains(c.cfg.Namespaces, ns.Name)
	case c.cfg.Selector != nil:
		return c.cfg.Selector.Matches(labels.Set(ns.Labels))
	default:
		return true
	}
}

// SyncNamespace makes one namespace match the configuration: the Secret
// with the current tokens and the ServiceAccounts' references in a selected
// namespace; neither (of ours) in any other.
func (c *Controller) SyncNamespace(ctx context.Context, name string) error {
	var ns *corev1.Namespace
	var err error
	if c.nsList != nil {
		ns, err = c.nsList.Get(name) // shared cache: read only
	} else {
		ns, err = c.client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	}
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if ns.DeletionTimestamp != nil || ns.Status.Phase == corev1.NamespaceTerminating {
		return nil // everything in it is going anyway; writes would be refused
	}
	selected := c.Selects(ns)
	if c.inSync(ns.Name, selected) {
		return nil
	}
	if !selected {
		if _, err := c.syncServiceAccounts(ctx, name, false); err != nil {
			return c.syncFailed(ns, "detaching the pull Secret from ServiceAccounts", err)
		}
		if err := c.removeSecret(ctx, name); err != nil {
			return c.syncFailed(ns, "deleting the pull Secret", err)
		}
		return nil
	}
	wrote, ok, err := c.writeSecret(ctx, ns)
	if err != nil {
		return c.syncFailed(ns, "writing the pull Secret", err)
	}
	if !ok {
		return nil
	}
	attachedNow, err := c.syncServiceAccounts(ctx, name, true)
	if err != nil {
		return c.syncFailed(ns, "attaching the pull Secret to ServiceAccounts", err)
	}
	if c.cfg.RestartImagePullBackOff && (wrote || attachedNow) {
		if err := c.restartStuckPods(ctx, name); err != nil {
			return c.syncFailed(ns, "restarting pods stuck in ImagePullBackOff", err)
		}
	}
	return nil
}

// inSync reports, from the informer caches, that a namespace needs no write.
// It answers false whenever unsure (no caches, or a Secret that is not ours
// and so not cached), which costs only the API reads SyncNamespace then makes.
// Without it every resync would read each namespace's Secret and list its
// ServiceAccounts from the API server.
func (c *Controller) inSync(ns string, selected bool) bool {
	if c.secList == nil || c.saList == nil {
		return false
	}
	sas, err := c.saList.ServiceAccounts(ns).List(labels.Everything())
	if err != nil {
		return false
	}
	sec, err := c.secList.Secrets(ns).Get(c.cfg.SecretName)
	if !selected {
		if err == nil {
			return false
		}
		for _, sa := range sas {
			if slices.Contains(attached(sa), c.cfg.SecretName) {
				return false
			}
		}
		return true
	}
	if err != nil {
		return false
	}
	data, err := c.desiredData(sec.Data[dockerconfig.Key])
	if err != nil || data == nil || len(sec.Data) != 1 || !bytes.Equal(data, sec.Data[dockerconfig.Key]) {
		return false
	}
	for _, sa := range sas {
		want := slices.Contains(c.cfg.ServiceAccounts, sa.Name)
		has := slices.ContainsFunc(sa.ImagePullSecrets, func(r corev1.LocalObjectReference) bool { return r.Name == c.cfg.SecretName })
		if want && !has || !want && slices.Contains(attached(sa), c.cfg.SecretName) {
			return false
		}
	}
	return true
}

// syncFailed records a namespace's failure as an Event on the Namespace:
// the failure is about writing into it (quota, admission, RBAC), not about
// the token.
func (c *Controller) syncFailed(ns *corev1.Namespace, what string, err error) error {
	c.rec.Eventf(ns, corev1.EventTypeWarning, ReasonSyncFailed, "%s %q: %v", what, c.cfg.SecretName, err)
	return fmt.Errorf("%s: %w", what, err)
}

// desiredData is the Secret payload: the tokens held, plus, for a managed
// registry with no token held yet, the entry the current Secret has. A
// replica that just took the lease and cannot reach one registry then keeps
// that registry's still-valid credential instead of dropping it.
func (c *Controller) desiredData(current []byte) ([]byte, error) {
	creds := map[string]dockerconfig.Credential{}
	if current != nil {
		if old, err := dockerconfig.Unmarshal(current); err == nil {
			for host, cr := range old {
				if c.hosts[strings.ToLower(host)] {
					creds[host] = cr
				}
			}
		}
	}
	for host, t := range c.creds.Tokens() {
		creds[host] = dockerconfig.Credential{Username: t.Username, Password: t.Password}
	}
	if len(creds) == 0 {
		return nil, nil
	}
	return dockerconfig.Marshal(creds)
}

// writeSecret creates or updates the Secret in place. It reports whether it
// wrote, and ok=false when the namespace must not get references to it (no
// token yet, or a Secret of that name that is not ours).
func (c *Controller) writeSecret(ctx context.Context, ns *corev1.Namespace) (wrote, ok bool, err error) {
	secrets := c.client.CoreV1().Secrets(ns.Name)
	cur, err := secrets.Get(ctx, c.cfg.SecretName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		data, err := c.desiredData(nil)
		if err != nil || data == nil {
			return false, false, err
		}
		_, err = secrets.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Name:      c.cfg.SecretName,
				Namespace: ns.Name,
				Labels:    map[string]string{ManagedByLabel: ManagedByValue},
			},
			Type: corev1.SecretTypeDockerConfigJson,
			Data: map[string][]byte{dockerconfig.Key: data},
		}, metav1.CreateOptions{})
		if err == nil {
			c.log.Info("created pull Secret", "namespace", ns.Name, "secret", c.cfg.SecretName)
		}
		return err == nil, err == nil, err
	}
	if err != nil {
		return false, false, err
	}
	if cur.Labels[ManagedByLabel] != ManagedByValue || cur.Type != corev1.SecretTypeDockerConfigJson {
		c.rec.Eventf(cur, corev1.EventTypeWarning, ReasonNotManaged,
			"a Secret named %q exists without the label %s=%s (or is not of type %s); ecr-pull-secrets leaves it alone: delete it or choose another --secret-name",
			cur.Name, ManagedByLabel, ManagedByValue, corev1.SecretTypeDockerConfigJson)
		return false, false, nil
	}
	data, err := c.desiredData(cur.Data[dockerconfig.Key])
	if err != nil || data == nil {
		return false, false, err
	}
	if bytes.Equal(cur.Data[dockerconfig.Key], data) && len(cur.Data) == 1 {
		return false, true, nil
	}
	// Update, never delete and create: the kubelet (KEP-2535) ties pulled
	// images to the Secret's UID, and a new UID forces re-pulls.
	next := cur.DeepCopy()
	next.Data = map[string][]byte{dockerconfig.Key: data}
	if _, err := secrets.Update(ctx, next, metav1.UpdateOptions{}); err != nil {
		return false, false, err
	}
	c.log.Info("updated pull Secret in place", "namespace", ns.Name, "secret", c.cfg.SecretName, "uid", cur.UID)
	return true, true, nil
}

// removeSecret deletes the Secret if it is ours.
func (c *Controller) removeSecret(ctx context.Context, ns string) error {
	secrets := c.client.CoreV1().Secrets(ns)
	cur, err := secrets.Get(ctx, c.cfg.SecretName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if cur.Labels[ManagedByLabel] != ManagedByValue {
		return nil
	}
	err = secrets.Delete(ctx, cur.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &cur.UID}})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err == nil {
		c.log.Info("deleted pull Secret from a namespace no longer selected", "namespace", ns, "secret", cur.Name)
	}
	return err
}

func attached(sa *corev1.ServiceAccount) []string {
	v := sa.Annotations[AttachedAnnotation]
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

func setAttached(sa *corev1.ServiceAccount, names []string) {
	if len(names) == 0 {
		delete(sa.Annotations, AttachedAnnotation)
		return
	}
	if sa.Annotations == nil {
		sa.Annotations = map[string]string{}
	}
	sa.Annotations[AttachedAnnotation] = strings.Join(names, ",")
}

// syncServiceAccounts adds the reference to the selected ServiceAccounts
// (attach=true) and removes the references it added everywhere else. Other
// entries of imagePullSecrets are left as they are, in their order.
func (c *Controller) syncServiceAccounts(ctx context.Context, ns string, attach bool) (changed bool, err error) {
	sas := c.client.CoreV1().ServiceAccounts(ns)
	list, err := sas.List(ctx, metav1.ListOptions{})
	if err != nil {
		return false, err
	}
	name := c.cfg.SecretName
	for i := range list.Items {
		sa := &list.Items[i]
		want := attach && slices.Contains(c.cfg.ServiceAccounts, sa.Name)
		has := slices.ContainsFunc(sa.ImagePullSecrets, func(r corev1.LocalObjectReference) bool { return r.Name == name })
		ours := slices.Contains(attached(sa), name)
		var next *corev1.ServiceAccount
		switch {
		case want && !has:
			next = sa.DeepCopy()
			next.ImagePullSecrets = append(next.ImagePullSecrets, corev1.LocalObjectReference{Name: name})
			setAttached(next, append(slices.DeleteFunc(attached(next), func(s string) bool { return s == name }), name))
		case !want && ours:
			next = sa.DeepCopy()
			next.ImagePullSecrets = slices.DeleteFunc(next.ImagePullSecrets, func(r corev1.LocalObjectReference) bool { return r.Name == name })
			setAttached(next, slices.DeleteFunc(attached(next), func(s string) bool { return s == name }))
		default:
			continue
		}
		if _, err := sas.Update(ctx, next, metav1.UpdateOptions{}); err != nil {
			return changed, fmt.Errorf("ServiceAccount %s: %w", sa.Name, err)
		}
		changed = true
		c.log.Info("updated ServiceAccount imagePullSecrets", "namespace", ns, "serviceAccount", sa.Name, "attached", want)
	}
	return changed, nil
}

// restartStuckPods deletes pods that wait on a pull from a managed registry
// and that a controller will recreate. Bare pods are never deleted: nothing
// would bring them back.
func (c *Controller) restartStuckPods(ctx context.Context, ns string) error {
	pods := c.client.CoreV1().Pods(ns)
	list, err := pods.List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for i := range list.Items {
		p := &list.Items[i]
		image, stuck := c.stuckOnManagedRegistry(p)
		if !stuck || metav1.GetControllerOf(p) == nil || p.DeletionTimestamp != nil || !c.podGetsSecret(p) {
			continue
		}
		err := pods.Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("pod %s: %w", p.Name, err)
		}
		c.rec.Eventf(p, corev1.EventTypeNormal, ReasonPodRestarted,
			"deleted so that its controller recreates it with the refreshed pull Secret %q (image %s was failing to pull)", c.cfg.SecretName, image)
		c.log.Info("deleted pod stuck pulling from a managed registry", "namespace", ns, "pod", p.Name, "image", image)
	}
	return nil
}

// podGetsSecret reports whether the pod references the Secret, or will once
// recreated through one of the selected ServiceAccounts.
func (c *Controller) podGetsSecret(p *corev1.Pod) bool {
	if slices.ContainsFunc(p.Spec.ImagePullSecrets, func(r corev1.LocalObjectReference) bool { return r.Name == c.cfg.SecretName }) {
		return true
	}
	sa := p.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	return slices.Contains(c.cfg.ServiceAccounts, sa)
}

func (c *Controller) stuckOnManagedRegistry(p *corev1.Pod) (string, bool) {
	for _, s := range slices.Concat(p.Status.InitContainerStatuses, p.Status.ContainerStatuses) {
		if s.State.Waiting == nil || (s.State.Waiting.Reason != "ImagePullBackOff" && s.State.Waiting.Reason != "ErrImagePull") {
			continue
		}
		host, err := ecrhost.HostOf(s.Image)
		if err == nil && c.hosts[strings.ToLower(host)] {
			return s.Image, true
		}
	}
	return "", false
}
