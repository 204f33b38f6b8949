// Command ecr-pull-secrets keeps ECR pull Secrets fresh in a cluster whose
// kubelet cannot run the credential provider plugin. See package refresher.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	// The release's image holds the binary alone: with no system roots
	// there, TLS to AWS uses these (on a host with roots, the host's).
	_ "golang.org/x/crypto/x509roots/fallback"

	"github.com/kubecred/ecr-credential-provider/refresher"
)

func main() {
	if len(os.Args) == 2 && (os.Args[1] == "--version" || os.Args[1] == "-version") {
		fmt.Println("ecr-pull-secrets", version())
		return
	}
	cfg, err := parse(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "ecr-pull-secrets:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := refresher.Run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "ecr-pull-secrets:", err)
		os.Exit(1)
	}
}

// list is a flag that takes comma-separated values and may repeat.
type list struct {
	vals *[]string
	set  bool
}

func (l *list) String() string {
	if l.vals == nil {
		return ""
	}
	return strings.Join(*l.vals, ",")
}

func (l *list) Set(v string) error {
	if !l.set {
		*l.vals, l.set = []string{}, true
	}
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l.vals = append(*l.vals, s)
		}
	}
	return nil
}

func parse(args []string) (refresher.Config, error) {
	var c refresher.Config
	fs := flag.NewFlagSet("ecr-pull-secrets", flag.ContinueOnError)
	fs.Var(&list{vals: &c.Registries}, "registry", "ECR registry host to keep credentials for (repeat or comma-separate), e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com, public.ecr.aws")
	fs.StringVar(&c.SecretName, "secret-name", refresher.DefaultSecretName, "name of the kubernetes.io/dockerconfigjson Secret in each namespace")
	fs.Var(&list{vals: &c.Namespaces}, "namespaces", "namespaces to keep the Secret in (comma-separated); default all")
	fs.StringVar(&c.NamespaceSelector, "namespace-selector", "", "label selector choosing the namespaces instead of a list, e.g. ecr-pull=enabled")
	fs.Var(&list{vals: &c.ServiceAccounts}, "service-accounts", "ServiceAccounts to attach the Secret to in each namespace (comma-separated; empty for none)")
	fs.BoolVar(&c.RestartImagePullBackOff, "restart-image-pull-backoff", false, "after writing new credentials, delete pods with an owner controller stuck in ImagePullBackOff/ErrImagePull on a managed registry")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", ":8080", "address serving /metrics and /healthz; empty to disable")
	fs.StringVar(&c.Kubeconfig, "kubeconfig", "", "kubeconfig file; empty means in-cluster")
	fs.BoolVar(&c.LeaderElection, "leader-elect", true, "elect one writer among replicas through a Lease")
	fs.StringVar(&c.LeaseNamespace, "leader-elect-namespace", "", "namespace of the Lease; default the pod's own (POD_NAMESPACE)")
	fs.StringVar(&c.LeaseName, "leader-elect-lease-name", refresher.DefaultLeaseName, "name of the Lease")
	fs.StringVar(&c.Identity, "leader-elect-identity", "", "this replica's name in the Lease; default host name plus a random suffix")
	fs.DurationVar(&c.LeaseDuration, "leader-elect-lease-duration", refresher.DefaultLeaseDuration, "how long a lease holds without renewal before another replica may take it")
	fs.DurationVar(&c.RenewDeadline, "leader-elect-renew-deadline", refresher.DefaultRenewDeadline, "how long the leader retries renewing before it gives up leading")
	fs.DurationVar(&c.RetryPeriod, "leader-elect-retry-period", refresher.DefaultRetryPeriod, "interval between attempts to acquire or renew the lease")
	fs.DurationVar(&c.MinRetry, "min-retry", 0, "first retry delay after a failed token fetch (default 10s)")
	fs.DurationVar(&c.MaxRetry, "max-retry", 0, "longest retry delay after failed token fetches (default 5m)")
	fs.DurationVar(&c.ResyncPeriod, "resync-period", 0, "re-reconcile every namespace this often (default 10m)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q: every setting is a flag", fs.Args())
	}
	return c, nil
}

// version is the release's version, or the module version the go command
// recorded (v0.0.0-... or (devel)) in other builds.
func version() string {
	if refresher.Version != "" {
		return refresher.Version
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" {
		return info.Main.Version
	}
	return "(devel)"
}
