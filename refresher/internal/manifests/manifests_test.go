package manifests

import (
	"os"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

const chartDir = "../../../deploy/charts/ecr-pull-secrets"

func TestCommittedManifestsMatchChart(t *testing.T) {
	want, err := Render(chartDir, PlainOverrides())
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../../../deploy/manifests/ecr-pull-secrets.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatal("deploy/manifests/ecr-pull-secrets.yaml differs from the rendered chart: run `make refresher-manifests`")
	}
}

// docs renders the chart and returns its objects keyed by kind/name.
func docs(t *testing.T, overrides map[string]any) map[string]map[string]any {
	t.Helper()
	s, err := Render(chartDir, overrides)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]any{}
	for _, d := range strings.Split(s, "\n---\n") {
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(d), &obj); err != nil {
			t.Fatalf("%v in\n%s", err, d)
		}
		if obj == nil {
			continue
		}
		md, _ := obj["metadata"].(map[string]any)
		out[obj["kind"].(string)+"/"+md["name"].(string)] = obj
	}
	return out
}

func rules(t *testing.T, objs map[string]map[string]any, key string) []map[string]any {
	t.Helper()
	o, ok := objs[key]
	if !ok {
		t.Fatalf("no %s rendered", key)
	}
	var out []map[string]any
	for _, r := range o["rules"].([]any) {
		out = append(out, r.(map[string]any))
	}
	return out
}

func grants(rs []map[string]any, resource, verb string) (limited, granted bool) {
	for _, r := range rs {
		for _, res := range r["resources"].([]any) {
			if res != resource {
				continue
			}
			for _, v := range r["verbs"].([]any) {
				if v == verb {
					granted = true
					if r["resourceNames"] == nil {
						return false, true
					}
					limited = true
				}
			}
		}
	}
	return limited, granted
}

func TestRBACIsLeastPrivilege(t *testing.T) {
	off := rules(t, docs(t, nil), "ClusterRole/ecr-pull-secrets")
	if _, ok := grants(off, "pods", "delete"); ok {
		t.Fatal("pods delete granted with restartImagePullBackOff off")
	}
	for _, verb := range []string{"get", "list", "watch", "update", "delete"} {
		limited, ok := grants(off, "secrets", verb)
		if !ok || !limited {
			t.Errorf("secrets %s: granted=%v, limited to the Secret's name=%v", verb, ok, limited)
		}
	}
	for _, verb := range []string{"list", "watch", "get"} {
		if _, ok := grants(off, "namespaces", verb); !ok {
			t.Errorf("namespaces %s not granted", verb)
		}
	}
	on := rules(t, docs(t, map[string]any{"restartImagePullBackOff": true}), "ClusterRole/ecr-pull-secrets")
	for _, verb := range []string{"list", "delete"} {
		if _, ok := grants(on, "pods", verb); !ok {
			t.Errorf("pods %s not granted with restartImagePullBackOff on", verb)
		}
	}
	if _, ok := grants(on, "pods", "watch"); ok {
		t.Error("pods watch granted: the controller only lists")
	}
	role := rules(t, docs(t, nil), "Role/ecr-pull-secrets-leader-election")
	if limited, ok := grants(role, "leases", "update"); !ok || !limited {
		t.Error("leases update not limited to the controller's Lease")
	}
}

func TestValuesReachTheDeployment(t *testing.T) {
	objs := docs(t, map[string]any{
		"registries":        []any{"123456789012.dkr.ecr.eu-west-1.amazonaws.com", "public.ecr.aws"},
		"namespaceSelector": "team=a",
		"serviceAccounts":   []any{"default", "ci"},
		"aws":               map[string]any{"region": "eu-west-1"},
		"serviceAccount":    map[string]any{"annotations": map[string]any{"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/r"}},
		"image":             map[string]any{"repository": "example.com/ecr-pull-secrets", "tag": "v9"},
	})
	dep := objs["Deployment/ecr-pull-secrets"]
	spec := dep["spec"].(map[string]any)
	if spec["replicas"].(float64) != 2 {
		t.Fatalf("replicas %v", spec["replicas"])
	}
	c := spec["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
	args := map[string]bool{}
	for _, a := range c["args"].([]any) {
		args[a.(string)] = true
	}
	for _, want := range []string{
		"--registry=123456789012.dkr.ecr.eu-west-1.amazonaws.com", "--registry=public.ecr.aws",
		"--namespace-selector=team=a", "--service-accounts=default,ci", "--secret-name=ecr-pull-secret",
	} {
		if !args[want] {
			t.Errorf("args lack %s: %v", want, c["args"])
		}
	}
	if c["image"] != "example.com/ecr-pull-secrets:v9" {
		t.Errorf("image %v", c["image"])
	}
	// By default, the image the release builds, at the release's tag.
	def := docs(t, nil)["Deployment/ecr-pull-secrets"]["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
	if def["image"] != "ghcr.io/kubecred/ecr-pull-secrets:v0.1.0" {
		t.Errorf("default image %v, want the release's ghcr.io/kubecred/ecr-pull-secrets:v<appVersion>", def["image"])
	}
	sa := objs["ServiceAccount/ecr-pull-secrets"]["metadata"].(map[string]any)
	if sa["annotations"].(map[string]any)["eks.amazonaws.com/role-arn"] == nil {
		t.Error("IRSA annotation not on the ServiceAccount")
	}
	if _, err := Render(chartDir, map[string]any{"namespaces": []any{"a"}, "namespaceSelector": "x=y"}); err == nil {
		t.Error("both namespaces and a selector rendered")
	}
}

// TestObjectsDecodeStrictly decodes every rendered object into its
// Kubernetes type, rejecting unknown or misplaced fields, for the default
// values and with every option on.
func TestObjectsDecodeStrictly(t *testing.T) {
	for name, overrides := range map[string]map[string]any{
		"plain": PlainOverrides(),
		"all options": {
			"registries": []any{"public.ecr.aws"}, "namespaces": []any{"a", "b"}, "restartImagePullBackOff": true,
			"aws":            map[string]any{"region": "eu-west-1", "env": map[string]any{"AWS_USE_FIPS_ENDPOINT": "true"}},
			"extraArgs":      []any{"--min-retry=30s"},
			"nodeSelector":   map[string]any{"kubernetes.io/os": "linux"},
			"tolerations":    []any{map[string]any{"key": "k", "operator": "Exists"}},
			"podAnnotations": map[string]any{"a": "b"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			s, err := Render(chartDir, overrides)
			if err != nil {
				t.Fatal(err)
			}
			dec := serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()
			kinds := map[string]bool{}
			for _, d := range strings.Split(s, "\n---\n") {
				if !strings.Contains(d, "kind:") {
					continue
				}
				_, gvk, err := dec.Decode([]byte(d), nil, nil)
				if err != nil {
					t.Fatalf("%v in\n%s", err, d)
				}
				kinds[gvk.Kind] = true
			}
			for _, k := range []string{"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Deployment"} {
				if !kinds[k] {
					t.Errorf("no %s rendered", k)
				}
			}
		})
	}
}

// TestEveryChartsManifestsMatch: each committed plain manifest is its
// chart rendered with the defaults, hooks left out.
func TestEveryChartsManifestsMatch(t *testing.T) {
	for _, c := range Charts {
		want, err := RenderRelease("../../../"+c.Dir, c.Release, c.Namespace, c.Header, c.Overrides)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile("../../../" + c.Out)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Errorf("%s differs from the rendered chart: run `make manifests`", c.Out)
		}
		if strings.Contains(want, "helm.sh/hook") {
			t.Errorf("%s holds a Helm hook", c.Out)
		}
	}
}
