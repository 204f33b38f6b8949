package main

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kubecred/ecr-credential-provider/refresher/internal/manifests"
)

func TestFlags(t *testing.T) {
	c, err := parse([]string{
		"--registry=123456789012.dkr.ecr.eu-west-1.amazonaws.com,public.ecr.aws",
		"--registry", "210987654321.dkr.ecr.cn-north-1.amazonaws.com.cn",
		"--namespaces=a, b", "--service-accounts=", "--restart-image-pull-backoff",
		"--leader-elect-lease-duration=3s", "--min-retry=1s",
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"123456789012.dkr.ecr.eu-west-1.amazonaws.com", "public.ecr.aws", "210987654321.dkr.ecr.cn-north-1.amazonaws.com.cn"}; !reflect.DeepEqual(c.Registries, want) {
		t.Errorf("registries %v", c.Registries)
	}
	if !reflect.DeepEqual(c.Namespaces, []string{"a", "b"}) {
		t.Errorf("namespaces %v", c.Namespaces)
	}
	if c.ServiceAccounts == nil || len(c.ServiceAccounts) != 0 {
		t.Errorf("--service-accounts= should select none, got %#v", c.ServiceAccounts)
	}
	if !c.RestartImagePullBackOff || !c.LeaderElection || c.LeaseDuration != 3*time.Second || c.MinRetry != time.Second {
		t.Errorf("flags not applied: %+v", c)
	}
	d, err := parse(nil)
	if err != nil || d.ServiceAccounts != nil || d.SecretName != "ecr-pull-secret" || d.MetricsAddr != ":8080" {
		t.Errorf("defaults: %+v %v", d, err)
	}
	if _, err := parse([]string{"stray"}); err == nil {
		t.Error("a positional argument was accepted")
	}
}

// TestChartArgsParse renders the chart's Deployment and parses its args with
// this binary's flags, so a flag the chart passes cannot be one the binary
// does not have.
func TestChartArgsParse(t *testing.T) {
	out, err := manifests.Render("../../../deploy/charts/ecr-pull-secrets", map[string]any{
		"registries": []any{"public.ecr.aws"}, "namespaceSelector": "team=a", "restartImagePullBackOff": true,
		"extraArgs": []any{"--min-retry=30s"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var args []string
	inArgs := false
	for _, line := range strings.Split(out, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "args:":
			inArgs = true
		case inArgs && strings.HasPrefix(trimmed, "- "):
			args = append(args, strings.TrimPrefix(trimmed, "- "))
		case inArgs && !strings.HasPrefix(trimmed, "#"):
			inArgs = false
		}
	}
	if len(args) < 5 {
		t.Fatalf("found no args in the rendered Deployment: %v", args)
	}
	c, err := parse(args)
	if err != nil {
		t.Fatalf("the binary rejects the chart's args %v: %v", args, err)
	}
	if !c.RestartImagePullBackOff || c.NamespaceSelector != "team=a" || c.MinRetry != 30*time.Second || c.LeaseName != "ecr-pull-secrets" {
		t.Fatalf("args did not carry the values: %+v", c)
	}
}
