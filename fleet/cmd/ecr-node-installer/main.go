// Command ecr-node-installer runs in the fleet installer's DaemonSet: on
// each node it installs (or uninstalls) ecr-credential-provider in the host
// root, restarts the kubelet only when something changed, and reports the
// node Ready only once its kubelet came back and the plugin answered. It is
// also the DaemonSet's readiness probe and, as a Helm pre-delete hook, the
// removal that uninstalls from every node before the DaemonSet goes.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/record"

	"github.com/kubecred/ecr-credential-provider/fleet/internal/agent"
	"github.com/kubecred/ecr-credential-provider/fleet/internal/removal"
	"github.com/kubecred/ecr-credential-provider/fleet/internal/rollout"
)

// Version is linked in by the release (-X main.Version=...).
var Version = "dev"

const usage = `Usage:
  ecr-node-installer run [flags]      install (or uninstall, or dry-run) on this pod's node, then wait
  ecr-node-installer ready [flags]    exit 0 once the node passed (the readiness probe)
  ecr-node-installer remove [flags]   uninstall on every node of the DaemonSet, one at a time (the pre-delete hook)
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var err error
	switch os.Args[1] {
	case "run":
		err = run(ctx, os.Args[2:])
	case "ready":
		fs := flag.NewFlagSet("ready", flag.ExitOnError)
		file := fs.String("ready-file", defaultReadyFile, "the file run writes once the node passed")
		fs.Parse(os.Args[2:]) //nolint:errcheck // ExitOnError
		err = agent.Ready(*file)
	case "remove":
		err = remove(ctx, os.Args[2:])
	case "version", "--version":
		fmt.Println("ecr-node-installer " + Version)
		return
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "ecr-node-installer: unknown command %q\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "ecr-node-installer: %v\n", err)
		os.Exit(1)
	}
}

// defaultReadyFile is on the chart's emptyDir: the image has no /tmp.
const defaultReadyFile = "/run/ecr-node-installer/ready"

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(s string) error { *l = append(*l, s); return nil }

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s %s\n", time.Now().UTC().Format(time.RFC3339), fmt.Sprintf(format, args...))
}

func run(ctx context.Context, args []string) error {
	var c agent.Config
	var mode, kubeconfig string
	var roleAnnotations, registryMap, pullThroughCache, env list
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.StringVar(&mode, "mode", envOr(removal.ModeEnv, "install"), "install, uninstall or dry-run (env "+removal.ModeEnv+")")
	fs.StringVar(&c.NodeName, "node-name", os.Getenv("NODE_NAME"), "this pod's node (env NODE_NAME, from the downward API)")
	fs.StringVar(&c.HostRoot, "host-root", "/host", "where the host's root filesystem is mounted")
	fs.StringVar(&c.Binary, "binary", "/ecr-credential-provider", "the plugin binary to install")
	fs.StringVar(&c.Distro, "distro", "", "kubeadm, k3s, rke2, systemd or eks (default: detected)")
	fs.BoolVar(&c.Public, "public", false, "also match ECR Public images")
	fs.BoolVar(&c.ReplaceEKSBinary, "replace-eks-binary", false, "on EKS nodes, replace the AMI's binary (install --force); otherwise EKS nodes are reported on only")
	fs.BoolVar(&c.PerPodRoles, "per-pod-roles", false, "let pods pull with their service account's IAM role")
	fs.StringVar(&c.Audience, "audience", "", "with --per-pod-roles: the token audience (default sts.amazonaws.com)")
	fs.Var(&roleAnnotations, "role-annotation", "with --per-pod-roles: a service account annotation naming the role (repeatable)")
	fs.Var(&registryMap, "registry-map", "SOURCE=ECR-REGISTRY[/PREFIX] for the plugin (repeatable)")
	fs.Var(&pullThroughCache, "pull-through-cache", "SOURCE=ECR-REGISTRY/PREFIX: as install --pull-through-cache, the map and the runtime's mirror with no fallback (repeatable)")
	fs.Var(&env, "env", "KEY=VALUE for the plugin's environment (repeatable)")
	fs.StringVar(&c.CheckImage, "check-image", "", "an ECR image the credential check asks the installed plugin for (default: no check)")
	fs.DurationVar(&c.Timeout, "timeout", 3*time.Minute, "how long to wait for the kubelet after a restart")
	fs.StringVar(&c.ReadyFile, "ready-file", defaultReadyFile, "written once the node passed")
	fs.BoolVar(&c.Retry, "retry", false, "try a configuration again that already failed on this node")
	fs.StringVar(&kubeconfig, "kubeconfig", "", "a kubeconfig (default: in-cluster)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	if c.Mode, err = rollout.ParseMode(mode); err != nil {
		return err
	}
	if c.NodeName == "" {
		return fmt.Errorf("no node name: set NODE_NAME from the downward API (fieldRef spec.nodeName) or pass --node-name")
	}
	c.RoleAnnotations, c.RegistryMap, c.PullThroughCache, c.Env = roleAnnotations, registryMap, pullThroughCache, env
	out, err := exec.CommandContext(ctx, c.Binary, "version").Output()
	if err != nil {
		return fmt.Errorf("%s version: %w", c.Binary, err)
	}
	c.Version = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(out)), "ecr-credential-provider "))

	kube, err := client(kubeconfig)
	if err != nil {
		return err
	}
	b := record.NewBroadcaster()
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: kube.CoreV1().Events("")})
	defer b.Shutdown()
	events := b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "ecr-node-installer", Host: c.NodeName})

	o, err := agent.Run(ctx, c, kube, events, logf)
	if err != nil {
		return err
	}
	if !o.Ready {
		logf("not Ready: the rolling update stops here until this node passes")
	}
	// The pod stays, Ready or not, so the DaemonSet's rollout sees this
	// node's result; it never undoes anything when it is stopped.
	<-ctx.Done()
	return nil
}

func remove(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("remove", flag.ContinueOnError)
	ns := fs.String("namespace", os.Getenv("POD_NAMESPACE"), "the DaemonSet's namespace (env POD_NAMESPACE)")
	name := fs.String("daemonset", "", "the installer DaemonSet's name")
	kubeconfig := fs.String("kubeconfig", "", "a kubeconfig (default: in-cluster)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *ns == "" || *name == "" {
		return fmt.Errorf("remove needs --namespace and --daemonset")
	}
	kube, err := client(*kubeconfig)
	if err != nil {
		return err
	}
	return removal.Remove(ctx, kube, *ns, *name, logf)
}

func client(kubeconfig string) (kubernetes.Interface, error) {
	var cfg *rest.Config
	var err error
	if kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	} else {
		cfg, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, err
	}
	cfg.UserAgent = "ecr-node-installer"
	return kubernetes.NewForConfig(cfg)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
