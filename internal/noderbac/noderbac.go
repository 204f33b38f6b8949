// Package noderbac holds the RBAC that lets the kubelets of a cluster
// request service account tokens for the plugin's audience: without it the
// API server (NodeRestriction, ServiceAccountNodeAudienceRestriction)
// refuses the token, the kubelet never calls the plugin, and the pull gets
// a 401.
package noderbac

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"sigs.k8s.io/yaml"
)

// The names the manifest uses, and what the API server checks: a node may
// request a token for audience A when it is allowed Verb on resource A in
// the core API group.
const (
	ClusterRoleName = "ecr-credential-provider-token-audience"
	Verb            = "request-serviceaccounts-token-audience"
	NodesGroup      = "system:nodes"
)

// Apply is the command line that installs the manifest.
const Apply = "ecr-credential-provider rbac | kubectl apply -f -"

// The objects are written from these minimal mirrors of rbac.authorization.k8s.io/v1,
// so the plugin binary links no Kubernetes package.
type (
	meta struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels,omitempty"`
	}
	// PolicyRule is one rule of a ClusterRole.
	PolicyRule struct {
		APIGroups []string `json:"apiGroups"`
		Resources []string `json:"resources"`
		Verbs     []string `json:"verbs"`
	}
	// ClusterRole mirrors rbac.authorization.k8s.io/v1 ClusterRole.
	ClusterRole struct {
		APIVersion string       `json:"apiVersion"`
		Kind       string       `json:"kind"`
		Metadata   meta         `json:"metadata"`
		Rules      []PolicyRule `json:"rules"`
	}
	// Subject is who a binding grants the role to.
	Subject struct {
		APIGroup string `json:"apiGroup"`
		Kind     string `json:"kind"`
		Name     string `json:"name"`
	}
	// RoleRef names the bound role.
	RoleRef struct {
		APIGroup string `json:"apiGroup"`
		Kind     string `json:"kind"`
		Name     string `json:"name"`
	}
	// ClusterRoleBinding mirrors rbac.authorization.k8s.io/v1 ClusterRoleBinding.
	ClusterRoleBinding struct {
		APIVersion string    `json:"apiVersion"`
		Kind       string    `json:"kind"`
		Metadata   meta      `json:"metadata"`
		Subjects   []Subject `json:"subjects"`
		RoleRef    RoleRef   `json:"roleRef"`
	}
)

const (
	rbacGroup   = "rbac.authorization.k8s.io"
	rbacVersion = rbacGroup + "/v1"
)

// Objects returns the ClusterRole and its binding to every node for audience.
func Objects(audience string) (ClusterRole, ClusterRoleBinding, error) {
	if strings.TrimSpace(audience) == "" {
		return ClusterRole{}, ClusterRoleBinding{}, errors.New("the audience is empty: give the tokenAttributes.serviceAccountTokenAudience of the provider config (default sts.amazonaws.com)")
	}
	if strings.ContainsAny(audience, "\x00\n\r") {
		return ClusterRole{}, ClusterRoleBinding{}, fmt.Errorf("audience %q has control characters", audience)
	}
	m := meta{Name: ClusterRoleName, Labels: map[string]string{"app.kubernetes.io/name": "ecr-credential-provider"}}
	role := ClusterRole{APIVersion: rbacVersion, Kind: "ClusterRole", Metadata: m,
		Rules: []PolicyRule{{APIGroups: []string{""}, Resources: []string{audience}, Verbs: []string{Verb}}}}
	binding := ClusterRoleBinding{APIVersion: rbacVersion, Kind: "ClusterRoleBinding", Metadata: m,
		Subjects: []Subject{{APIGroup: rbacGroup, Kind: "Group", Name: NodesGroup}},
		RoleRef:  RoleRef{APIGroup: rbacGroup, Kind: "ClusterRole", Name: ClusterRoleName}}
	return role, binding, nil
}

// Manifest returns Objects as a two-document YAML stream for kubectl apply.
func Manifest(audience string) ([]byte, error) {
	role, binding, err := Objects(audience)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Lets every kubelet (group %s) request service account tokens with\n", NodesGroup)
	fmt.Fprintf(&b, "# audience %q for ecr-credential-provider's per-pod roles.\n", audience)
	fmt.Fprintf(&b, "# Apply with: %s\n", Apply)
	for i, obj := range []any{role, binding} {
		y, err := yaml.Marshal(obj)
		if err != nil {
			return nil, err
		}
		if i > 0 {
			b.WriteString("---\n")
		}
		b.Write(y)
	}
	return b.Bytes(), nil
}
