// Package refresher runs ecr-pull-secrets: a controller that keeps a
// kubernetes.io/dockerconfigjson Secret with fresh ECR credentials in the
// selected namespaces and attaches it to their ServiceAccounts, for clusters
// whose kubelet cannot run the credential provider plugin. Run is the whole
// program; cmd/ecr-pull-secrets only parses flags into a Config.
//
// AWS credentials and endpoints come from the SDK's default chain and its
// environment, so a test points the refresher at internal/awsemu with the
// emulator's Env (AWS_ENDPOINT_URL_ECR and friends), exactly as for the
// plugin; short lease and retry settings (--leader-elect-lease-duration,
// --min-retry) make failover and backoff quick to observe.
package refresher

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"

	"github.com/kubecred/ecr-credential-provider/internal/ecrhost"
	"github.com/kubecred/ecr-credential-provider/internal/token"
	"github.com/kubecred/ecr-credential-provider/refresher/internal/controller"
	"github.com/kubecred/ecr-credential-provider/refresher/internal/credentials"
	"github.com/kubecred/ecr-credential-provider/refresher/internal/metrics"
)

// Version is set at link time by the release (-ldflags "-X
// ...refresher.Version=v1.2.3"); empty in other builds.
var Version string

// Defaults.
const (
	DefaultSecretName     = "ecr-pull-secret"
	DefaultServiceAccount = "default"
	DefaultLeaseName      = "ecr-pull-secrets"
	DefaultLeaseDuration  = 15 * time.Second
	DefaultRenewDeadline  = 10 * time.Second
	DefaultRetryPeriod    = 2 * time.Second
)

// Config is the refresher's whole configuration. The zero value of each
// optional field takes its default.
type Config struct {
	// Kubeconfig is a kubeconfig file; empty means in-cluster. RestConfig,
	// when set, is used instead of either.
	Kubeconfig string
	RestConfig *rest.Config
	// Client, when set, is used instead of building one (tests).
	Client kubernetes.Interface

	// Registries are ECR registry hosts (private in any partition, FIPS or
	// dual-stack, or public.ecr.aws).
	Registries []string
	SecretName string
	// Namespaces and NamespaceSelector (a label selector) choose the
	// namespaces; at most one may be set, and neither means all.
	Namespaces        []string
	NamespaceSelector string
	// ServiceAccounts get the Secret in imagePullSecrets; nil means
	// "default", an empty non-nil slice none.
	ServiceAccounts         []string
	RestartImagePullBackOff bool

	// MetricsAddr serves /metrics and /healthz; empty serves nothing.
	MetricsAddr string

	// LeaderElection off runs as the only writer (for one replica or tests).
	LeaderElection bool
	// LeaseNamespace defaults to the namespace the pod runs in.
	LeaseNamespace string
	LeaseName      string
	// Identity names this replica in the Lease; default host name plus a
	// random suffix.
	Identity      string
	LeaseDuration time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration

	// MinRetry and MaxRetry bound the backoff after a failed fetch.
	MinRetry time.Duration
	MaxRetry time.Duration
	// ResyncPeriod re-reconciles every namespace this often.
	ResyncPeriod time.Duration

	// AWS tunes the token fetcher; its HTTPClient lets tests reach an
	// emulator without touching the default credential chain.
	AWS    token.Options
	Logger *slog.Logger
}

// validate checks the configuration and fills defaults, returning the
// parsed registries and namespace selector.
func (c *Config) validate() ([]ecrhost.Registry, labels.Selector, error) {
	if c.SecretName == "" {
		c.SecretName = DefaultSecretName
	}
	if c.ServiceAccounts == nil {
		c.ServiceAccounts = []string{DefaultServiceAccount}
	}
	if c.LeaseName == "" {
		c.LeaseName = DefaultLeaseName
	}
	if c.LeaseDuration <= 0 {
		c.LeaseDuration = DefaultLeaseDuration
	}
	if c.RenewDeadline <= 0 {
		c.RenewDeadline = DefaultRenewDeadline
	}
	if c.RetryPeriod <= 0 {
		c.RetryPeriod = DefaultRetryPeriod
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	if len(c.Registries) == 0 {
		return nil, nil, errors.New("no registries: name at least one ECR registry host, e.g. --registry=123456789012.dkr.ecr.us-east-1.amazonaws.com")
	}
	var regs []ecrhost.Registry
	seen := map[string]bool{}
	for _, h := range c.Registries {
		r, err := credentials.ParseRegistry(h)
		if err != nil {
			return nil, nil, err
		}
		if !seen[strings.ToLower(r.Host)] {
			seen[strings.ToLower(r.Host)] = true
			regs = append(regs, r)
		}
	}
	if len(c.Namespaces) > 0 && c.NamespaceSelector != "" {
		return nil, nil, errors.New("both a namespace list and a namespace selector are set: use one (neither selects every namespace)")
	}
	var sel labels.Selector
	if c.NamespaceSelector != "" {
		s, err := labels.Parse(c.NamespaceSelector)
		if err != nil {
			return nil, nil, fmt.Errorf("namespace selector %q: %w", c.NamespaceSelector, err)
		}
		sel = s
	}
	if c.LeaderElection && c.LeaseNamespace == "" {
		c.LeaseNamespace = podNamespace()
		if c.LeaseNamespace == "" {
			return nil, nil, errors.New("leader election needs the Lease's namespace: set --leader-elect-namespace (or POD_NAMESPACE)")
		}
	}
	if c.Identity == "" {
		host, _ := os.Hostname()
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		c.Identity = host + "_" + hex.EncodeToString(b)
	}
	return regs, sel, nil
}

func podNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func (c *Config) restConfig() (*rest.Config, error) {
	if c.RestConfig != nil {
		return c.RestConfig, nil
	}
	if c.Kubeconfig != "" {
		return clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	}
	rc, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("not in a cluster and no --kubeconfig given: %w", err)
	}
	return rc, nil
}

func (c *Config) client() (kubernetes.Interface, error) {
	if c.Client != nil {
		return c.Client, nil
	}
	rc, err := c.restConfig()
	if err != nil {
		return nil, err
	}
	rc = rest.CopyConfig(rc)
	rc.UserAgent = "ecr-pull-secrets"
	// client-go's default 5 QPS would spread a refresh of a few hundred
	// namespaces (a Secret update each) over minutes.
	if rc.QPS == 0 {
		rc.QPS, rc.Burst = 20, 40
	}
	return kubernetes.NewForConfig(rc)
}

// Run runs the refresher until ctx ends (returning nil) or it loses the
// lease or fails (returning why). Only the replica holding the Lease writes.
func Run(ctx context.Context, cfg Config) error {
	regs, sel, err := cfg.validate()
	if err != nil {
		return err
	}
	log := cfg.Logger
	client, err := cfg.client()
	if err != nil {
		return err
	}

	clk := clock.RealClock{}
	fetcher := token.New(cfg.AWS)
	creds := credentials.New(credentials.AWS{Fetcher: fetcher}, regs, credentials.Options{
		MinRetry: cfg.MinRetry, MaxRetry: cfg.MaxRetry, Clock: clk,
	})
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := metrics.New(reg, creds.Expiries, clk.Now)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if cfg.MetricsAddr != "" {
		if err := serveMetrics(ctx, cfg.MetricsAddr, reg, log); err != nil {
			return err
		}
	}

	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	defer broadcaster.Shutdown()
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	rec := broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "ecr-pull-secrets"})

	ctrl := controller.New(client, controller.Config{
		SecretName:              cfg.SecretName,
		Registries:              regs,
		Namespaces:              cfg.Namespaces,
		Selector:                sel,
		ServiceAccounts:         cfg.ServiceAccounts,
		RestartImagePullBackOff: cfg.RestartImagePullBackOff,
		ResyncPeriod:            cfg.ResyncPeriod,
	}, creds, m, rec, clk, log)

	log.Info("starting", "registries", cfg.Registries, "secret", cfg.SecretName, "namespaces", cfg.Namespaces,
		"namespaceSelector", cfg.NamespaceSelector, "serviceAccounts", cfg.ServiceAccounts,
		"restartImagePullBackOff", cfg.RestartImagePullBackOff, "leaderElection", cfg.LeaderElection, "identity", cfg.Identity)
	if !cfg.LeaderElection {
		m.Leader.Set(1)
		return ctrl.Run(ctx)
	}

	// The elector calls OnStartedLeading on its own goroutine; Run waits
	// for the controller to stop before returning.
	var started atomic.Bool
	runErr := make(chan error, 1)
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: cfg.LeaseNamespace, Name: cfg.LeaseName},
			Client:     client.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: cfg.Identity},
		},
		LeaseDuration:   cfg.LeaseDuration,
		RenewDeadline:   cfg.RenewDeadline,
		RetryPeriod:     cfg.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            cfg.LeaseName,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				log.Info("became leader", "identity", cfg.Identity, "lease", cfg.LeaseNamespace+"/"+cfg.LeaseName)
				m.Leader.Set(1)
				started.Store(true)
				runErr <- ctrl.Run(ctx)
			},
			OnStoppedLeading: func() {
				m.Leader.Set(0)
				log.Info("stopped leading", "identity", cfg.Identity)
			},
			OnNewLeader: func(id string) {
				if id != cfg.Identity {
					log.Info("another replica leads", "leader", id)
				}
			},
		},
	})
	if err != nil {
		return err
	}
	le.Run(ctx)
	if started.Load() {
		if err := <-runErr; err != nil {
			return err
		}
	}
	if ctx.Err() == nil {
		// The lease was lost while running: exit so that the pod restarts
		// clean rather than write with a stale view.
		return errors.New("lost the leader lease")
	}
	return nil
}

func serveMetrics(ctx context.Context, addr string, reg *prometheus.Registry, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics address %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("serving metrics", "addr", ln.Addr().String())
	return nil
}
