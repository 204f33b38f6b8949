package refresher

import (
	"context"
	"strings"
	"testing"
)

func TestConfigErrorsSayWhatToDo(t *testing.T) {
	for name, tc := range map[string]struct {
		cfg  Config
		want string
	}{
		"no registries":   {Config{}, "--registry="},
		"path in host":    {Config{Registries: []string{"123456789012.dkr.ecr.us-east-1.amazonaws.com/app"}}, "without a path"},
		"list and labels": {Config{Registries: []string{"public.ecr.aws"}, Namespaces: []string{"a"}, NamespaceSelector: "x=y"}, "use one"},
		"bad selector":    {Config{Registries: []string{"public.ecr.aws"}, NamespaceSelector: "x in ("}, "namespace selector"},
		"no cluster":      {Config{Registries: []string{"public.ecr.aws"}}, "--kubeconfig"},
		"no lease ns":     {Config{Registries: []string{"public.ecr.aws"}, LeaderElection: true}, "--leader-elect-namespace"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv("POD_NAMESPACE", "")
			t.Setenv("KUBERNETES_SERVICE_HOST", "")
			err := Run(context.Background(), tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	t.Setenv("POD_NAMESPACE", "kube-ecr")
	c := Config{Registries: []string{"public.ecr.aws", "PUBLIC.ECR.AWS", "123456789012.dkr.ecr.us-east-1.amazonaws.com"}, LeaderElection: true}
	regs, sel, err := c.validate()
	if err != nil {
		t.Fatal(err)
	}
	if len(regs) != 2 || sel != nil {
		t.Fatalf("registries %v (duplicates kept?) selector %v", regs, sel)
	}
	if c.SecretName != DefaultSecretName || len(c.ServiceAccounts) != 1 || c.ServiceAccounts[0] != "default" ||
		c.LeaseNamespace != "kube-ecr" || c.Identity == "" {
		t.Fatalf("defaults not applied: %+v", c)
	}
	none := Config{Registries: []string{"public.ecr.aws"}, ServiceAccounts: []string{}}
	if _, _, err := none.validate(); err != nil || len(none.ServiceAccounts) != 0 {
		t.Fatalf("an explicit empty ServiceAccounts list became %v (%v)", none.ServiceAccounts, err)
	}
}
