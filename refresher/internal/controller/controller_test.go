package controller

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/smithy-go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	testclock "k8s.io/utils/clock/testing"

	"github.com/kubecred/ecr-credential-provider/internal/ecrhost"
	"github.com/kubecred/ecr-credential-provider/internal/plugin"
	"github.com/kubecred/ecr-credential-provider/internal/token"
	"github.com/kubecred/ecr-credential-provider/refresher/internal/credentials"
	"github.com/kubecred/ecr-credential-provider/refresher/internal/dockerconfig"
	"github.com/kubecred/ecr-credential-provider/refresher/internal/metrics"
)

var registries = []string{
	"123456789012.dkr.ecr.us-east-1.amazonaws.com",
	"210987654321.dkr.ecr.eu-west-1.amazonaws.com",
	"123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn",
	"public.ecr.aws",
}

// fakeAWS hands out a token per registry whose password names the registry
// and a generation, so a test can tell which fetch a Secret holds.
type fakeAWS struct {
	mu   sync.Mutex
	clk  *testclock.FakeClock
	gen  int
	deny bool
	// denyHost, when set, is the only registry denied.
	denyHost string
}

func (f *fakeAWS) Fetch(_ context.Context, reg ecrhost.Registry) (plugin.Token, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.deny || f.denyHost == reg.Host {
		// The same error the real fetcher returns for an AccessDenied answer.
		return plugin.Token{}, token.Explain(&smithy.GenericAPIError{Code: "AccessDeniedException", Message: "User: arn:aws:sts::123456789012:assumed-role/x is not authorized to perform: ecr:GetAuthorizationToken"}, "ecr:GetAuthorizationToken")
	}
	return plugin.Token{Username: "AWS", Password: f.password(reg.Host), ExpiresAt: f.clk.Now().Add(12 * time.Hour)}, nil
}

func (f *fakeAWS) password(host string) string { return fmt.Sprintf("secret-%d-%s", f.gen, host) }

func (f *fakeAWS) set(gen int, deny bool) {
	f.mu.Lock()
	f.gen, f.deny = gen, deny
	f.mu.Unlock()
}

type env struct {
	t       *testing.T
	client  *fake.Clientset
	aws     *fakeAWS
	clk     *testclock.FakeClock
	ctrl    *Controller
	rec     *record.FakeRecorder
	metrics *metrics.Metrics
	logs    *bytes.Buffer
	cfg     Config
}

func newEnv(t *testing.T, mutate func(*Config), objs ...runtime.Object) *env {
	t.Helper()
	clk := testclock.NewFakeClock(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
	client := fake.NewClientset(objs...)
	// The fake tracker assigns no UIDs; the API server does, and the
	// in-place test needs them.
	n := 0
	client.PrependReactor("create", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if m, ok := a.(k8stesting.CreateAction).GetObject().(metav1.Object); ok && m.GetUID() == "" {
			n++
			m.SetUID(types.UID(fmt.Sprintf("uid-%d", n)))
		}
		return false, nil, nil
	})
	cfg := Config{SecretName: "ecr-pull-secret", ServiceAccounts: []string{"default"}}
	for _, h := range registries {
		r, err := credentials.ParseRegistry(h)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Registries = append(cfg.Registries, r)
	}
	if mutate != nil {
		mutate(&cfg)
	}
	e := &env{t: t, client: client, aws: &fakeAWS{clk: clk, gen: 1}, clk: clk, rec: record.NewFakeRecorder(1000), logs: &bytes.Buffer{}, cfg: cfg}
	e.build(cfg)
	return e
}

// build makes a controller over the same cluster and token store config,
// as a restart with a new configuration would.
func (e *env) build(cfg Config) {
	creds := credentials.New(e.aws, cfg.Registries, credentials.Options{Clock: e.clk, MinRetry: 10 * time.Second, MaxRetry: 5 * time.Minute})
	e.metrics = metrics.New(prometheus.NewRegistry(), creds.Expiries, e.clk.Now)
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.ctrl = New(e.client, cfg, creds, e.metrics, e.rec, e.clk, log)
	e.cfg = cfg
}

func (e *env) sync(namespaces ...string) {
	e.t.Helper()
	for _, ns := range namespaces {
		if err := e.ctrl.SyncNamespace(context.Background(), ns); err != nil {
			e.t.Fatalf("sync %s: %v", ns, err)
		}
	}
}

func (e *env) secret(ns string) (*corev1.Secret, bool) {
	e.t.Helper()
	s, err := e.client.CoreV1().Secrets(ns).Get(context.Background(), "ecr-pull-secret", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, false
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return s, true
}

func (e *env) sa(ns, name string) *corev1.ServiceAccount {
	e.t.Helper()
	sa, err := e.client.CoreV1().ServiceAccounts(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return sa
}

func (e *env) events() []string {
	var out []string
	for {
		select {
		case ev := <-e.rec.Events:
			out = append(out, ev)
		default:
			return out
		}
	}
}

// wantCreds checks the Secret holds generation gen's token for every registry.
func (e *env) wantCreds(s *corev1.Secret, gen int) {
	e.t.Helper()
	if s.Type != corev1.SecretTypeDockerConfigJson {
		e.t.Fatalf("type %s", s.Type)
	}
	got, err := dockerconfig.Unmarshal(s.Data[dockerconfig.Key])
	if err != nil {
		e.t.Fatal(err)
	}
	want := map[string]dockerconfig.Credential{}
	for _, h := range registries {
		want[h] = dockerconfig.Credential{Username: "AWS", Password: fmt.Sprintf("secret-%d-%s", gen, h)}
	}
	if !reflect.DeepEqual(got, want) {
		e.t.Fatalf("Secret %s/%s holds\n%v\nwant\n%v", s.Namespace, s.Name, got, want)
	}
}

func ns(name string, lbls map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbls}}
}

func sa(namespace, name string, pullSecrets ...string) *corev1.ServiceAccount {
	s := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
	for _, p := range pullSecrets {
		s.ImagePullSecrets = append(s.ImagePullSecrets, corev1.LocalObjectReference{Name: p})
	}
	return s
}

func pullSecretNames(s *corev1.ServiceAccount) []string {
	var out []string
	for _, r := range s.ImagePullSecrets {
		out = append(out, r.Name)
	}
	return out
}

func TestSecretHoldsEveryRegistryInSelectedNamespacesOnly(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Namespaces = []string{"apps"} },
		ns("apps", nil), ns("other", nil), sa("apps", "default", "team-registry"), sa("other", "default"))

	e.sync("apps") // no token yet: nothing to write, no empty Secret
	if _, ok := e.secret("apps"); ok {
		t.Fatal("a Secret was written before any token was fetched")
	}
	e.ctrl.Refresh(context.Background())
	e.sync("apps", "other")

	s, ok := e.secret("apps")
	if !ok {
		t.Fatal("no Secret in the selected namespace")
	}
	e.wantCreds(s, 1)
	if s.Labels[ManagedByLabel] != ManagedByValue {
		t.Fatalf("labels %v", s.Labels)
	}
	if got := pullSecretNames(e.sa("apps", "default")); !reflect.DeepEqual(got, []string{"team-registry", "ecr-pull-secret"}) {
		t.Fatalf("default SA imagePullSecrets %v", got)
	}
	if _, ok := e.secret("other"); ok {
		t.Fatal("Secret written in an unselected namespace")
	}
	if got := pullSecretNames(e.sa("other", "default")); len(got) != 0 {
		t.Fatalf("unselected namespace's SA got %v", got)
	}
}

func TestRefreshUpdatesSecretInPlace(t *testing.T) {
	e := newEnv(t, nil, ns("apps", nil), sa("apps", "default"))
	e.ctrl.Refresh(context.Background())
	e.sync("apps")
	before, _ := e.secret("apps")
	if before.UID == "" {
		t.Fatal("test setup: no UID assigned")
	}

	// Nothing due yet: a resync writes nothing.
	e.client.ClearActions()
	e.sync("apps")
	for _, a := range e.client.Actions() {
		if a.GetVerb() == "update" || a.GetVerb() == "create" {
			t.Fatalf("resync with unchanged tokens wrote: %v", a)
		}
	}

	e.aws.set(2, false)
	e.clk.Step(6 * time.Hour) // half the 12h life
	e.ctrl.Refresh(context.Background())
	e.sync("apps")
	after, _ := e.secret("apps")
	e.wantCreds(after, 2)
	if after.UID != before.UID {
		t.Fatalf("UID changed %s -> %s: the Secret was replaced, not updated", before.UID, after.UID)
	}
	for _, a := range e.client.Actions() {
		if a.GetResource().Resource == "secrets" && (a.GetVerb() == "delete" || a.GetVerb() == "create") {
			t.Fatalf("refresh did %s on the Secret", a.GetVerb())
		}
	}
	if v := testutil.ToFloat64(e.metrics.Refreshes.WithLabelValues(registries[0])); v != 2 {
		t.Fatalf("refreshes_total %v, want 2", v)
	}
}

func TestNamespaceThatStopsMatchingLosesOnlyOurSecret(t *testing.T) {
	foreign := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "legacy", Name: "ecr-pull-secret"},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{dockerconfig.Key: []byte(`{"auths":{}}`)},
	}
	e := newEnv(t, func(c *Config) { c.Selector = labels.SelectorFromSet(labels.Set{"ecr": "yes"}) },
		ns("apps", map[string]string{"ecr": "yes"}), ns("legacy", map[string]string{"ecr": "yes"}), foreign,
		sa("apps", "default", "team-registry"), sa("apps", "builder", "ecr-pull-secret"), sa("legacy", "default"))
	e.ctrl.Refresh(context.Background())
	e.sync("apps", "legacy")
	if _, ok := e.secret("apps"); !ok {
		t.Fatal("no Secret in a matching namespace")
	}
	// A Secret of that name that is not ours is left as it is, with an Event.
	if got, _ := e.secret("legacy"); !bytes.Equal(got.Data[dockerconfig.Key], foreign.Data[dockerconfig.Key]) {
		t.Fatal("an unmanaged Secret was overwritten")
	}
	if got := pullSecretNames(e.sa("legacy", "default")); len(got) != 0 {
		t.Fatalf("SA pointed at a Secret that is not ours: %v", got)
	}
	if evs := strings.Join(e.events(), "\n"); !strings.Contains(evs, ReasonNotManaged) {
		t.Fatalf("no %s event: %s", ReasonNotManaged, evs)
	}

	for _, name := range []string{"apps", "legacy"} {
		n, _ := e.client.CoreV1().Namespaces().Get(context.Background(), name, metav1.GetOptions{})
		n.Labels = nil
		if _, err := e.client.CoreV1().Namespaces().Update(context.Background(), n, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	e.sync("apps", "legacy")
	if _, ok := e.secret("apps"); ok {
		t.Fatal("our Secret stayed in a namespace that stopped matching")
	}
	if _, ok := e.secret("legacy"); !ok {
		t.Fatal("a Secret that is not ours was deleted")
	}
	if got := pullSecretNames(e.sa("apps", "default")); !reflect.DeepEqual(got, []string{"team-registry"}) {
		t.Fatalf("after detaching, default SA has %v", got)
	}
	if got := e.sa("apps", "default").Annotations[AttachedAnnotation]; got != "" {
		t.Fatalf("attached annotation left: %q", got)
	}
	// A reference the operator made themselves is theirs to remove.
	if got := pullSecretNames(e.sa("apps", "builder")); !reflect.DeepEqual(got, []string{"ecr-pull-secret"}) {
		t.Fatalf("operator's own reference removed: %v", got)
	}
}

func TestServiceAccountsAttachAndDetach(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.ServiceAccounts = []string{"default", "ci"} },
		ns("apps", nil), sa("apps", "default", "a", "b"), sa("apps", "ci"), sa("apps", "web", "a"))
	e.ctrl.Refresh(context.Background())
	e.sync("apps")
	for name, want := range map[string][]string{
		"default": {"a", "b", "ecr-pull-secret"},
		"ci":      {"ecr-pull-secret"},
		"web":     {"a"},
	} {
		if got := pullSecretNames(e.sa("apps", name)); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %v want %v", name, got, want)
		}
	}
	// Idempotent: a second pass updates nothing.
	e.client.ClearActions()
	e.sync("apps")
	for _, a := range e.client.Actions() {
		if a.GetVerb() == "update" {
			t.Fatalf("second sync updated %s", a.GetResource().Resource)
		}
	}
	// Restarted with "ci" no longer selected: only ci loses the reference.
	cfg := e.cfg
	cfg.ServiceAccounts = []string{"default"}
	e.build(cfg)
	e.ctrl.Refresh(context.Background())
	e.sync("apps")
	for name, want := range map[string][]string{
		"default": {"a", "b", "ecr-pull-secret"},
		"ci":      nil,
		"web":     {"a"},
	} {
		if got := pullSecretNames(e.sa("apps", name)); !reflect.DeepEqual(got, want) {
			t.Errorf("after detach %s: %v want %v", name, got, want)
		}
	}
}

func TestDenialLeavesSecretAndSaysWhy(t *testing.T) {
	e := newEnv(t, nil, ns("apps", nil), sa("apps", "default"))
	e.ctrl.Refresh(context.Background())
	e.sync("apps")
	before, _ := e.secret("apps")
	e.events()

	e.aws.set(2, true)
	e.clk.Step(6 * time.Hour)
	e.client.ClearActions()
	next := e.ctrl.Refresh(context.Background())
	e.sync("apps")

	after, _ := e.secret("apps")
	if !reflect.DeepEqual(before.Data, after.Data) || after.UID != before.UID {
		t.Fatal("a denied refresh changed the Secret")
	}
	for _, a := range e.client.Actions() {
		if a.GetResource().Resource == "secrets" && a.GetVerb() != "get" && a.GetVerb() != "list" {
			t.Fatalf("denied refresh did %s on a Secret", a.GetVerb())
		}
	}
	evs := e.events()
	if len(evs) != len(registries) {
		t.Fatalf("want one Warning event per failed registry on the Secret, got %q", evs)
	}
	for _, ev := range evs {
		if !strings.HasPrefix(ev, "Warning "+ReasonTokenRefreshFailed) || !strings.Contains(ev, "denied: missing permission") || !strings.Contains(ev, "valid until") {
			t.Fatalf("event does not say why: %q", ev)
		}
	}
	for _, r := range registries {
		if v := testutil.ToFloat64(e.metrics.RefreshFailures.WithLabelValues(r, "access_denied")); v != 1 {
			t.Fatalf("%s: refresh_failures_total{reason=access_denied} = %v", r, v)
		}
	}
	if d := next.Sub(e.clk.Now()); d != 10*time.Second {
		t.Fatalf("next try after %s, want the first backoff step 10s", d)
	}
	// Fixed in IAM: the next try succeeds and the Secret is updated in place.
	e.aws.set(3, false)
	e.clk.SetTime(next)
	e.ctrl.Refresh(context.Background())
	e.sync("apps")
	fixed, _ := e.secret("apps")
	e.wantCreds(fixed, 3)
	if fixed.UID != before.UID {
		t.Fatal("UID changed on recovery")
	}
}

// A replica that takes the lease starts with no tokens; if one registry is
// denied to it, that registry's entry in the Secret must survive the update
// that refreshes the others.
func TestNewLeaderKeepsEntriesItCannotRefresh(t *testing.T) {
	e := newEnv(t, nil, ns("apps", nil), sa("apps", "default"))
	e.ctrl.Refresh(context.Background())
	e.sync("apps")
	before, _ := e.secret("apps")

	e.build(e.cfg) // the new leader: same cluster, empty token store
	e.aws.mu.Lock()
	e.aws.gen, e.aws.denyHost = 2, registries[1]
	e.aws.mu.Unlock()
	e.ctrl.Refresh(context.Background())
	e.sync("apps")
	after, _ := e.secret("apps")
	got, err := dockerconfig.Unmarshal(after.Data[dockerconfig.Key])
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range registries {
		want := fmt.Sprintf("secret-2-%s", h)
		if h == registries[1] {
			want = fmt.Sprintf("secret-1-%s", h)
		}
		if got[h].Password != want {
			t.Errorf("%s: password %q, want %q", h, got[h].Password, want)
		}
	}
	if after.UID != before.UID {
		t.Fatal("UID changed")
	}
}

func TestTokensNeverLogged(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.RestartImagePullBackOff = true }, ns("apps", nil), sa("apps", "default"))
	e.ctrl.Refresh(context.Background())
	e.sync("apps")
	e.aws.set(2, true)
	e.clk.Step(6 * time.Hour)
	e.ctrl.Refresh(context.Background())
	if e.logs.Len() == 0 {
		t.Fatal("nothing logged: the check below would prove nothing")
	}
	out := e.logs.String() + strings.Join(e.events(), "\n")
	if strings.Contains(out, "secret-1-") {
		t.Fatalf("a password reached the logs or events:\n%s", out)
	}
}

func stuckPod(name, image, reason string, owned bool, saName string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: name, UID: types.UID("pod-" + name)},
		Spec:       corev1.PodSpec{ServiceAccountName: saName, Containers: []corev1.Container{{Name: "c", Image: image}}},
		Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{
			Name: "c", Image: image, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason}},
		}}},
	}
	if reason == "" {
		p.Status.ContainerStatuses[0].State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
	}
	if owned {
		yes := true
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "rs", UID: "rs-uid", Controller: &yes}}
	}
	return p
}

func TestRestartImagePullBackOffDeletesOnlyOwnedPodsOnManagedRegistries(t *testing.T) {
	ecr := registries[0] + "/app:1"
	pods := []runtime.Object{
		stuckPod("owned-backoff", ecr, "ImagePullBackOff", true, ""),
		stuckPod("owned-errpull", registries[3]+"/x/y:1", "ErrImagePull", true, "default"),
		stuckPod("bare", ecr, "ImagePullBackOff", false, ""),
		stuckPod("dockerhub", "docker.io/library/nginx:1", "ImagePullBackOff", true, ""),
		stuckPod("running", ecr, "", true, ""),
		stuckPod("other-sa", ecr, "ImagePullBackOff", true, "builder"),
		stuckPod("other-account", "999999999999.dkr.ecr.us-east-1.amazonaws.com/app:1", "ImagePullBackOff", true, ""),
	}
	for _, on := range []bool{false, true} {
		t.Run(fmt.Sprintf("option=%v", on), func(t *testing.T) {
			objs := append([]runtime.Object{ns("apps", nil), sa("apps", "default")}, pods...)
			e := newEnv(t, func(c *Config) { c.RestartImagePullBackOff = on }, objs...)
			e.ctrl.Refresh(context.Background())
			e.sync("apps")
			list, err := e.client.CoreV1().Pods("apps").List(context.Background(), metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			left := map[string]bool{}
			for _, p := range list.Items {
				left[p.Name] = true
			}
			want := map[string]bool{"bare": true, "dockerhub": true, "running": true, "other-sa": true, "other-account": true}
			if !on {
				want["owned-backoff"], want["owned-errpull"] = true, true
			}
			if !reflect.DeepEqual(left, want) {
				t.Fatalf("pods left %v, want %v", left, want)
			}
		})
	}
}

// TestRunFollowsNamespacesCreatedLater runs the whole controller, informers
// included, against the fake API: a namespace and ServiceAccount created
// after start get the Secret and the reference, and relabelling a
// namespace out of the selector removes it.
func TestRunFollowsNamespacesCreatedLater(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Selector = labels.SelectorFromSet(labels.Set{"ecr": "yes"}) })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.ctrl.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	c := e.client.CoreV1()
	if _, err := c.Namespaces().Create(ctx, ns("late", map[string]string{"ecr": "yes"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Namespaces().Create(ctx, ns("unselected", nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ServiceAccounts("late").Create(ctx, sa("late", "default"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the late namespace's default ServiceAccount references the Secret", func() bool {
		_, ok := e.secret("late")
		s, err := c.ServiceAccounts("late").Get(ctx, "default", metav1.GetOptions{})
		return ok && err == nil && reflect.DeepEqual(pullSecretNames(s), []string{"ecr-pull-secret"})
	})
	if _, ok := e.secret("unselected"); ok {
		t.Fatal("Secret in an unselected namespace")
	}
	n, _ := c.Namespaces().Get(ctx, "late", metav1.GetOptions{})
	n.Labels = nil
	if _, err := c.Namespaces().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the Secret leaves the relabelled namespace", func() bool {
		_, ok := e.secret("late")
		return !ok
	})
}

// A resync of namespaces that need nothing is answered from the informer
// caches, without API calls; a new token makes the same sync write.
func TestResyncOfSyncedNamespacesCallsNoAPI(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Namespaces = []string{"apps"} },
		ns("apps", nil), ns("other", nil), sa("apps", "default", "x"), sa("apps", "web"), sa("other", "default"))
	ctx, cancel := context.WithCancel(context.Background())
	stop, err := e.ctrl.startInformers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); stop() }()
	// RBAC grants list/watch on Secrets only by name: every Secret list or
	// watch must carry the metadata.name field selector, or the API server
	// refuses it.
	secretReads := 0
	for _, a := range e.client.Actions() {
		if a.GetResource().Resource != "secrets" || (a.GetVerb() != "list" && a.GetVerb() != "watch") {
			continue
		}
		secretReads++
		var f fields.Selector
		switch a := a.(type) {
		case k8stesting.ListAction:
			f = a.GetListRestrictions().Fields
		case k8stesting.WatchAction:
			f = a.GetWatchRestrictions().Fields
		}
		if name, ok := f.RequiresExactMatch("metadata.name"); !ok || name != "ecr-pull-secret" {
			t.Fatalf("%s of Secrets without the name field selector (%v): RBAC would refuse it", a.GetVerb(), f)
		}
	}
	if secretReads == 0 {
		t.Fatal("the informers never listed Secrets: the check above proved nothing")
	}
	e.ctrl.Refresh(ctx)
	e.sync("apps", "other")
	eventually(t, "the caches see the written Secret and ServiceAccount", func() bool {
		return e.ctrl.inSync("apps", true)
	})
	e.client.ClearActions()
	e.sync("apps", "other")
	if acts := e.client.Actions(); len(acts) != 0 {
		t.Fatalf("resync of synced namespaces called the API %d times, first: %v", len(acts), acts[0])
	}

	e.aws.set(2, false)
	e.clk.Step(6 * time.Hour)
	e.ctrl.Refresh(ctx)
	e.sync("apps")
	s, _ := e.secret("apps")
	e.wantCreds(s, 2)
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	// Generous: the informers run on a shared, loaded machine. This waits
	// for a state, it does not time anything.
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 60*time.Second, true,
		func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		t.Fatalf("never: %s", what)
	}
}
