package noderbac

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestManifestParses: each YAML document decodes, strictly, into the
// object the API server needs, for the default and other audiences.
func TestManifestParses(t *testing.T) {
	for _, aud := range []string{"sts.amazonaws.com", "https://ecr.example.com/aud", "yes", "a: b"} {
		out, err := Manifest(aud)
		if err != nil {
			t.Fatal(err)
		}
		docs := bytes.Split(out, []byte("\n---\n"))
		if len(docs) != 2 {
			t.Fatalf("%d documents, want 2:\n%s", len(docs), out)
		}
		var role ClusterRole
		var binding ClusterRoleBinding
		if err := yaml.UnmarshalStrict(docs[0], &role); err != nil {
			t.Fatalf("ClusterRole: %v\n%s", err, out)
		}
		if err := yaml.UnmarshalStrict(docs[1], &binding); err != nil {
			t.Fatalf("ClusterRoleBinding: %v\n%s", err, out)
		}
		wantRole := ClusterRole{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole",
			Metadata: meta{Name: "ecr-credential-provider-token-audience", Labels: map[string]string{"app.kubernetes.io/name": "ecr-credential-provider"}},
			Rules:    []PolicyRule{{APIGroups: []string{""}, Resources: []string{aud}, Verbs: []string{"request-serviceaccounts-token-audience"}}}}
		if !reflect.DeepEqual(role, wantRole) {
			t.Errorf("ClusterRole\n%+v\nwant\n%+v", role, wantRole)
		}
		wantBinding := ClusterRoleBinding{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRoleBinding", Metadata: wantRole.Metadata,
			Subjects: []Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "Group", Name: "system:nodes"}},
			RoleRef:  RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "ecr-credential-provider-token-audience"}}
		if !reflect.DeepEqual(binding, wantBinding) {
			t.Errorf("ClusterRoleBinding\n%+v\nwant\n%+v", binding, wantBinding)
		}
		// The core group is the empty string, which must survive YAML.
		var raw map[string]any
		if err := yaml.Unmarshal(docs[0], &raw); err != nil {
			t.Fatal(err)
		}
		groups := raw["rules"].([]any)[0].(map[string]any)["apiGroups"].([]any)
		if len(groups) != 1 || groups[0] != "" {
			t.Errorf("apiGroups %#v, want [\"\"]", groups)
		}
	}
}

func TestManifestRefuses(t *testing.T) {
	for _, aud := range []string{"", "  ", "a\nkind: Secret"} {
		if out, err := Manifest(aud); err == nil {
			t.Errorf("Manifest(%q) accepted:\n%s", aud, out)
		}
	}
	if _, err := Manifest(""); err == nil || !strings.Contains(err.Error(), "sts.amazonaws.com") {
		t.Errorf("the empty-audience error names no default: %v", err)
	}
}
