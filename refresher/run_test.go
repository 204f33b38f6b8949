package refresher

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubecred/ecr-credential-provider/internal/awsemu"
	"github.com/kubecred/ecr-credential-provider/refresher/internal/dockerconfig"
)

// TestRunTwoReplicasOneWriter runs two replicas with leader election on one
// (fake) API and the AWS emulator behind the real SDK: one takes the Lease
// and writes the Secret; when it stops, the other takes over and fetches.
func TestRunTwoReplicasOneWriter(t *testing.T) {
	emu, err := awsemu.Start(awsemu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	env, err := emu.IsolatedEnv(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	for _, kv := range env {
		if k, v, _ := strings.Cut(kv, "="); k != "PATH" {
			t.Setenv(k, v)
		}
	}
	host := emu.Account() + ".dkr.ecr.us-west-2.amazonaws.com"
	client := fake.NewClientset(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "infra"}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "default"}},
	)
	ports := map[string]string{}
	replica := func(id string) (context.CancelFunc, chan error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[id] = ln.Addr().String()
		ln.Close()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- Run(ctx, Config{
				Client: client, Registries: []string{host}, Namespaces: []string{"apps"},
				LeaderElection: true, LeaseNamespace: "infra", Identity: id,
				LeaseDuration: 2 * time.Second, RenewDeadline: time.Second, RetryPeriod: 100 * time.Millisecond,
				MetricsAddr: ports[id],
				Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
			})
		}()
		return cancel, done
	}
	holder := func() string {
		l, err := client.CoordinationV1().Leases("infra").Get(context.Background(), DefaultLeaseName, metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil {
			return ""
		}
		return *l.Spec.HolderIdentity
	}
	secretPassword := func() string {
		s, err := client.CoreV1().Secrets("apps").Get(context.Background(), DefaultSecretName, metav1.GetOptions{})
		if err != nil {
			return ""
		}
		creds, err := dockerconfig.Unmarshal(s.Data[dockerconfig.Key])
		if err != nil {
			return ""
		}
		return creds[host].Password
	}

	cancelA, doneA := replica("a")
	waitFor(t, "replica a leads and writes the Secret", func() bool {
		return holder() == "a" && secretPassword() == emu.PasswordFor(emu.InstanceARN())
	})
	metrics := scrape(t, ports["a"])
	if !strings.Contains(metrics, "\necr_pull_secrets_leader 1\n") {
		t.Error("leader's /metrics does not say it leads")
	}
	gauge := `ecr_pull_secrets_token_expiry_seconds{registry="` + host + `"} `
	_, rest, ok := strings.Cut(metrics, gauge)
	left, err := strconv.ParseFloat(strings.Fields(rest + " x")[0], 64)
	if !ok || err != nil || left < 11*3600 || left > 12*3600 {
		t.Errorf("token expiry gauge %q: want the emulator's 12h token, counting down", strings.Fields(rest + " x")[0])
	}
	cancelB, doneB := replica("b")
	defer func() {
		cancelB()
		if err := <-doneB; err != nil {
			t.Error(err)
		}
	}()
	fetchesByA := emu.Stats().Op(awsemu.TargetECR, "GetAuthorizationToken").Requests
	s, _ := client.CoreV1().Secrets("apps").Get(context.Background(), DefaultSecretName, metav1.GetOptions{})
	uid := s.UID

	cancelA() // releases the Lease on the way out
	if err := <-doneA; err != nil {
		t.Fatalf("replica a: %v", err)
	}
	waitFor(t, "replica b takes the Lease and fetches a token", func() bool {
		return holder() == "b" && emu.Stats().Op(awsemu.TargetECR, "GetAuthorizationToken").Requests > fetchesByA
	})
	if s, _ := client.CoreV1().Secrets("apps").Get(context.Background(), DefaultSecretName, metav1.GetOptions{}); s.UID != uid {
		t.Fatal("the new leader replaced the Secret")
	}
	if _, err := client.CoreV1().Secrets("infra").Get(context.Background(), DefaultSecretName, metav1.GetOptions{}); err == nil {
		t.Fatal("Secret written in an unselected namespace")
	}
}

func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	// Waits for a state on a loaded machine; it times nothing.
	if err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 90*time.Second, true,
		func(context.Context) (bool, error) { return cond(), nil }); err != nil {
		t.Fatalf("never: %s", what)
	}
}
