package main

import (
	"reflect"
	"testing"
	"time"
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
