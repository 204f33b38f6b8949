package manifests

import (
	"encoding/json"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chartutil"
	"sigs.k8s.io/yaml"

	"github.com/kubecred/ecr-credential-provider/internal/noderbac"
)

const installerChart = "../../../deploy/charts/ecr-credential-provider"

func renderInstaller(t *testing.T, overrides map[string]any) (map[string]map[string]any, error) {
	t.Helper()
	s, err := RenderRelease(installerChart, "ecp", "kube-system", "", overrides)
	if err != nil {
		return nil, err
	}
	out := map[string]map[string]any{}
	for _, d := range strings.Split(s, "\n---\n") {
		var obj map[string]any
		if err := yamlUnmarshal(d, &obj); err != nil {
			t.Fatalf("%v in\n%s", err, d)
		}
		if obj == nil {
			continue
		}
		md, _ := obj["metadata"].(map[string]any)
		out[obj["kind"].(string)+"/"+md["name"].(string)] = obj
	}
	return out, nil
}

func installerContainer(t *testing.T, objs map[string]map[string]any) map[string]any {
	t.Helper()
	ds, ok := objs["DaemonSet/ecp-ecr-credential-provider"]
	if !ok {
		t.Fatalf("no DaemonSet rendered; have %v", keys(objs))
	}
	spec := ds["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
	return spec["containers"].([]any)[0].(map[string]any)
}

func keys(m map[string]map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func stringsOf(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

// TestInstallerChartValues: each value reaches the installer as the flag
// it means, with values holding YAML's special characters intact, and a
// mode the installer does not know fails the render.
func TestInstallerChartValues(t *testing.T) {
	objs, err := renderInstaller(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := installerContainer(t, objs)
	if got := strings.Join(stringsOf(c["args"]), " "); got != "--host-root=/host --timeout=3m" {
		t.Errorf("default args: %s", got)
	}
	if _, ok := objs["ClusterRole/"+noderbac.ClusterRoleName]; ok {
		t.Error("the token audience RBAC is rendered without perPodRoles")
	}

	objs, err = renderInstaller(t, map[string]any{
		"public": true, "distro": "k3s", "checkImage": "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:1",
		"registryMap":      []any{"registry.example.com=123456789012.dkr.ecr.eu-west-1.amazonaws.com"},
		"pullThroughCache": []any{"docker.io=123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub"},
		"env":              map[string]any{"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "a, b #c"},
		"perPodRoles":      map[string]any{"enabled": true, "audience": "sts.amazonaws.com", "roleAnnotations": []any{"example.com/role"}},
		"eks":              map[string]any{"replaceBinary": true},
		"mode":             "dry-run",
	})
	if err != nil {
		t.Fatal(err)
	}
	c = installerContainer(t, objs)
	want := []string{"--host-root=/host", "--timeout=3m", "--distro=k3s", "--public", "--replace-eks-binary",
		"--per-pod-roles", "--audience=sts.amazonaws.com", "--role-annotation=example.com/role",
		"--registry-map=registry.example.com=123456789012.dkr.ecr.eu-west-1.amazonaws.com",
		"--pull-through-cache=docker.io=123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub",
		"--env=HTTPS_PROXY=http://proxy:3128", "--env=NO_PROXY=a, b #c",
		"--check-image=123456789012.dkr.ecr.us-east-1.amazonaws.com/app:1"}
	if got := stringsOf(c["args"]); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("args:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	env, _ := json.Marshal(c["env"])
	if !strings.Contains(string(env), `{"name":"ECR_NODE_INSTALLER_MODE","value":"dry-run"}`) {
		t.Errorf("mode env: %s", env)
	}

	if _, err := renderInstaller(t, map[string]any{"mode": "remove"}); err == nil || !strings.Contains(err.Error(), "want install, uninstall or dry-run") {
		t.Errorf("an unknown mode: %v", err)
	}
}

// TestInstallerChartTokenAudienceIsNoderbac: the chart's per-pod RBAC is
// exactly what `ecr-credential-provider rbac` prints.
func TestInstallerChartTokenAudienceIsNoderbac(t *testing.T) {
	objs, err := renderInstaller(t, map[string]any{"perPodRoles": map[string]any{"enabled": true, "audience": "example.com/aud"}})
	if err != nil {
		t.Fatal(err)
	}
	role, binding, err := noderbac.Objects("example.com/aud")
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]any{"ClusterRole/" + noderbac.ClusterRoleName: role, "ClusterRoleBinding/" + noderbac.ClusterRoleName: binding} {
		got, ok := objs[key]
		if !ok {
			t.Fatalf("no %s rendered", key)
		}
		var wantMap map[string]any
		b, _ := json.Marshal(want)
		json.Unmarshal(b, &wantMap) //nolint:errcheck
		gb, _ := json.Marshal(got)
		wb, _ := json.Marshal(wantMap)
		if string(gb) != string(wb) {
			t.Errorf("%s:\n chart    %s\n noderbac %s", key, gb, wb)
		}
	}
}

func yamlUnmarshal(s string, v any) error { return yaml.Unmarshal([]byte(s), v) }

// TestInstallerChartNodePolicy: by default the chart binds a policy that
// matches the installer's own service account (so the names agree with
// the ServiceAccount it renders); false leaves it out; a cluster older than
// 1.30 gets an error that names the value to set, not a half install.
func TestInstallerChartNodePolicy(t *testing.T) {
	objs, err := renderInstaller(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	const name = "ecp-ecr-credential-provider"
	if _, ok := objs["ServiceAccount/"+name]; !ok {
		t.Fatalf("no ServiceAccount %s rendered; have %v", name, keys(objs))
	}
	for policyName, resource := range map[string]string{name + "-own-node": "nodes", name + "-own-events": "events"} {
		policy, ok := objs["ValidatingAdmissionPolicy/"+policyName]
		binding, ok2 := objs["ValidatingAdmissionPolicyBinding/"+policyName]
		if !ok || !ok2 {
			t.Fatalf("no policy and binding %s rendered; have %v", policyName, keys(objs))
		}
		spec := policy["spec"].(map[string]any)
		cond := spec["matchConditions"].([]any)[0].(map[string]any)["expression"].(string)
		if want := `"system:serviceaccount:kube-system:` + name + `"`; !strings.Contains(cond, want) {
			t.Errorf("%s matches %s, not the installer's service account %s", policyName, cond, want)
		}
		rules := spec["matchConstraints"].(map[string]any)["resourceRules"].([]any)
		if got := stringsOf(rules[0].(map[string]any)["resources"]); len(rules) != 1 || len(got) != 1 || got[0] != resource {
			t.Errorf("%s applies to %v, want %s", policyName, rules, resource)
		}
		if spec["failurePolicy"] != "Fail" {
			t.Errorf("%s: failurePolicy %v: a policy that fails open protects nothing", policyName, spec["failurePolicy"])
		}
		bspec := binding["spec"].(map[string]any)
		if bspec["policyName"] != policyName || strings.Join(stringsOf(bspec["validationActions"]), ",") != "Deny" {
			t.Errorf("binding spec %v: want %s, with Deny", bspec, policyName)
		}
	}

	objs, err = renderInstaller(t, map[string]any{"nodePolicy": map[string]any{"enabled": false}})
	if err != nil {
		t.Fatal(err)
	}
	for k := range objs {
		if strings.HasPrefix(k, "ValidatingAdmissionPolicy") {
			t.Errorf("nodePolicy.enabled=false still renders %s", k)
		}
	}

	old := chartutil.KubeVersion{Version: "v1.29.4", Major: "1", Minor: "29"}
	if _, err := renderRelease(installerChart, "ecp", "kube-system", "", nil, old); err == nil || !strings.Contains(err.Error(), "nodePolicy.enabled=false") || !strings.Contains(err.Error(), "v1.29.4") {
		t.Errorf("rendering for v1.29.4: %v; want an error naming the version and nodePolicy.enabled=false", err)
	}
	if _, err := renderRelease(installerChart, "ecp", "kube-system", "", map[string]any{"nodePolicy": map[string]any{"enabled": false}}, old); err != nil {
		t.Errorf("rendering for v1.29.4 without the policy: %v", err)
	}
}
