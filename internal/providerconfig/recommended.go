package providerconfig

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kubecred/ecr-credential-provider/internal/ecrhost"
	"github.com/kubecred/ecr-credential-provider/internal/lazyregexp"
	"github.com/kubecred/ecr-credential-provider/internal/plugin"
	"github.com/kubecred/ecr-credential-provider/internal/protocol"
)

// DefaultName is the provider name the kubelet must find in its bin dir.
const DefaultName = "ecr-credential-provider"

// DefaultCacheDuration is how long the kubelet keeps a token when the plugin
// sends no cacheDuration: ECR authorization tokens are valid for 12 hours.
const DefaultCacheDuration = 12 * time.Hour

// RecommendedOptions shapes the config Recommended writes. Zero values take
// the defaults: name ecr-credential-provider, plugin API v1, 12h cache.
type RecommendedOptions struct {
	// Public adds ECR Public's hosts to matchImages.
	Public bool
	// Name is the provider (and executable) name.
	Name string
	// APIVersion is the plugin API version, credentialprovider.kubelet.k8s.io/v1
	// unless the kubelet is too old for it.
	APIVersion string
	// CacheDuration is defaultCacheDuration; 0 means 12h. Use a negative
	// value for an explicit 0 (no kubelet caching).
	CacheDuration time.Duration
	Args          []string
	// Env is the plugin's environment (AWS_PROFILE, HTTPS_PROXY...): names
	// must be environment variable names, each given once.
	Env []ExecEnvVar

	// PerPodRoles adds tokenAttributes, so that the kubelet sends the plugin
	// each pod's service account token and role annotation (KEP-4412).
	PerPodRoles bool
	// Audience is the audience of those tokens; "" is DefaultAudience.
	Audience string
	// RoleAnnotations are the annotation keys that name a pod's role; nil is
	// the plugin's default. Keys given here also go to args, so the plugin
	// reads the same keys the kubelet passes.
	RoleAnnotations []string
	// KubeletVersion is the kubelet the config is for (zero: the newest),
	// and ServiceAccountTokenGate its
	// KubeletServiceAccountTokenForCredentialProviders gate (nil: the
	// version's default). Only PerPodRoles depends on them.
	KubeletVersion          Version
	ServiceAccountTokenGate *bool
}

// DefaultAudience is the audience of the service account tokens for
// per-pod roles: the client ID an IAM OIDC provider is created with, and
// the one STS expects by default.
const DefaultAudience = "sts.amazonaws.com"

// Recommended returns a kubelet.config.k8s.io/v1 CredentialProviderConfig in
// YAML that covers every ECR host form of every partition (and ECR Public
// with Public), commented so a reader knows why each choice was made.
func Recommended(o RecommendedOptions) ([]byte, error) {
	name := o.Name
	if name == "" {
		name = DefaultName
	}
	if err := validName(name); err != nil {
		return nil, fmt.Errorf("provider name %q: %v", name, err)
	}
	apiVersion := o.APIVersion
	if apiVersion == "" {
		apiVersion = protocol.V1
	}
	if !knownPluginAPIVersion(apiVersion) {
		return nil, fmt.Errorf("plugin apiVersion %q is not one the kubelet knows; use %s", apiVersion, protocol.V1)
	}
	if err := checkEnv(o.Env); err != nil {
		return nil, err
	}
	var roleKeys []string
	if o.PerPodRoles {
		if apiVersion != protocol.V1 {
			return nil, fmt.Errorf("per-pod roles need plugin apiVersion %s (the kubelet sends service account tokens only with it), not %s", protocol.V1, apiVersion)
		}
		if err := TokenAttributesSupported(o.KubeletVersion, o.ServiceAccountTokenGate); err != nil {
			return nil, err
		}
		if roleKeys = o.RoleAnnotations; len(roleKeys) == 0 {
			roleKeys = []string{plugin.DefaultRoleAnnotation}
		}
		for _, k := range roleKeys {
			if errs := qualifiedNameErrors(strings.ToLower(k)); len(errs) > 0 {
				return nil, fmt.Errorf("role annotation key %q is invalid: %s", k, strings.Join(errs, "; "))
			}
		}
		if dup := firstDuplicate(roleKeys); dup != "" {
			return nil, fmt.Errorf("role annotation key %q is given twice", dup)
		}
	} else if o.Audience != "" || len(o.RoleAnnotations) > 0 {
		return nil, fmt.Errorf("an audience or role annotation only applies with per-pod roles: add --per-pod-roles")
	}
	audience := o.Audience
	if audience == "" {
		audience = DefaultAudience
	}
	args := o.Args
	for _, k := range o.RoleAnnotations {
		args = append(args[:len(args):len(args)], "--role-annotation="+k)
	}
	d := o.CacheDuration
	switch {
	case d == 0:
		d = DefaultCacheDuration
	case d < 0:
		d = 0
	}

	var b bytes.Buffer
	b.WriteString("# CredentialProviderConfig for the kubelet's --image-credential-provider-config.\n")
	b.WriteString("# Written by 'ecr-credential-provider config print'; check it with 'config validate'.\n")
	// The file's own apiVersion follows the plugin's: a kubelet that speaks
	// only v1alpha1 (1.20 to 1.23) or v1beta1 (to 1.25) reads only that.
	_, fileVersion, _ := strings.Cut(apiVersion, "/")
	fmt.Fprintf(&b, "apiVersion: %s/%s\n", Group, fileVersion)
	fmt.Fprintf(&b, "kind: %s\n", Kind)
	b.WriteString("providers:\n")
	b.WriteString("  # The kubelet runs <--image-credential-provider-bin-dir>/<name>.\n")
	fmt.Fprintf(&b, "  - name: %s\n", yamlString(name))
	b.WriteString("    # Each '*' matches exactly one DNS label, so every ECR host form needs\n")
	b.WriteString("    # its own pattern: FIPS, dual-stack and each partition's DNS suffix.\n")
	b.WriteString("    matchImages:\n")
	for _, p := range ecrhost.MatchImages(o.Public) {
		fmt.Fprintf(&b, "      - %s\n", yamlString(p))
	}
	b.WriteString("    # ECR authorization tokens are valid for 12 hours. The plugin also sends\n")
	b.WriteString("    # its own cacheDuration (half the token's life); this is only the\n")
	b.WriteString("    # fallback, and longer would make the kubelet reuse expired tokens.\n")
	fmt.Fprintf(&b, "    defaultCacheDuration: %s\n", yamlString(shortDuration(d)))
	fmt.Fprintf(&b, "    apiVersion: %s\n", yamlString(apiVersion))
	if len(args) > 0 {
		b.WriteString("    args:\n")
		for _, a := range args {
			fmt.Fprintf(&b, "      - %s\n", yamlString(a))
		}
	}
	if len(o.Env) > 0 {
		b.WriteString("    env:\n")
		for _, e := range o.Env {
			fmt.Fprintf(&b, "      - name: %s\n        value: %s\n", yamlString(e.Name), yamlString(e.Value))
		}
	}
	if o.PerPodRoles {
		b.WriteString("    # Per-pod IAM roles: the kubelet requests a token for the pod's service\n")
		b.WriteString("    # account with this audience (nodes need RBAC for it: see\n")
		b.WriteString("    # 'ecr-credential-provider rbac') and passes it with the annotations\n")
		b.WriteString("    # below; the plugin assumes the annotated role with it. Pods whose\n")
		b.WriteString("    # service account has no role annotation keep the node's credentials.\n")
		b.WriteString("    tokenAttributes:\n")
		fmt.Fprintf(&b, "      serviceAccountTokenAudience: %s\n", yamlString(audience))
		if o.KubeletVersion.orNewest().Minor >= 34 {
			b.WriteString("      # One set of credentials per service account, not per token.\n")
			b.WriteString("      cacheType: ServiceAccount\n")
		}
		b.WriteString("      requireServiceAccount: false\n")
		b.WriteString("      optionalServiceAccountAnnotationKeys:\n")
		for _, k := range roleKeys {
			fmt.Fprintf(&b, "        - %s\n", yamlString(k))
		}
	}
	return b.Bytes(), nil
}

// TokenAttributesSupported says whether kubelet v (zero: the newest) with
// the KubeletServiceAccountTokenForCredentialProviders gate set to gate
// (nil: its default) reads tokenAttributes, and if not, what to do.
func TokenAttributesSupported(v Version, gate *bool) error {
	v = v.orNewest()
	const gateName = "KubeletServiceAccountTokenForCredentialProviders"
	if !v.hasTokenAttributes() {
		return fmt.Errorf("kubelet %s cannot pass service account tokens to a credential provider (tokenAttributes came in v1.33): upgrade the kubelet to v1.34 or later, or leave out per-pod roles so every pod pulls with the node's credentials", v)
	}
	on := v.tokenGateDefault()
	if gate != nil {
		on = *gate
	}
	if !on {
		why := "it is off by default in v1.33"
		if gate != nil {
			why = "it is turned off"
		}
		return fmt.Errorf("kubelet %s reads tokenAttributes only with the feature gate %s (%s): start the kubelet with --feature-gates=%s=true and pass the same --feature-gates here, or upgrade the kubelet to v1.34 or later", v, gateName, why, gateName)
	}
	return nil
}

// ParseEnv reads KEY=VALUE pairs into the provider's env list, refusing
// what the plugin could not be started with as meant.
func ParseEnv(pairs []string) ([]ExecEnvVar, error) {
	var env []ExecEnvVar
	for _, kv := range pairs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("env %q is not KEY=VALUE (write KEY= for an empty value)", kv)
		}
		env = append(env, ExecEnvVar{Name: k, Value: v})
	}
	return env, checkEnv(env)
}

// checkEnv refuses names that are no environment variable's (the kubelet
// passes them on unchecked, and a shell could not even name them) and a name
// given twice, where only one value would reach the plugin.
func checkEnv(env []ExecEnvVar) error {
	names := make([]string, len(env))
	for i, e := range env {
		if !envNameRe.MatchString(e.Name) {
			return fmt.Errorf("env name %q is not an environment variable name: use letters, digits and '_', not starting with a digit", e.Name)
		}
		if slices.Contains(secretEnv, e.Name) {
			return fmt.Errorf("env %s would put a secret in the provider config, which every user on the node can read: put the key in a credentials file only root reads (mode 0600) and pass AWS_SHARED_CREDENTIALS_FILE and AWS_PROFILE instead", e.Name)
		}
		names[i] = e.Name
	}
	if dup := firstDuplicate(names); dup != "" {
		return fmt.Errorf("env %s is given twice: give each variable once", dup)
	}
	return nil
}

// secretEnv are the AWS settings that are secrets themselves.
var secretEnv = []string{"AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}

var envNameRe = lazyregexp.New(`^[A-Za-z_][A-Za-z0-9_]*$`)

func firstDuplicate(list []string) string {
	seen := map[string]bool{}
	for _, s := range list {
		if seen[s] {
			return s
		}
		seen[s] = true
	}
	return ""
}

// yamlString quotes s as a YAML double-quoted scalar when a plain scalar
// could be read as something else ('*' starts an alias, "12h0m0s" is safe,
// "true" or "0" would not be strings). JSON's string syntax is valid YAML.
func yamlString(s string) string {
	plain := s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '/' || r == '_')
	}) < 0
	if plain && s[0] >= 'a' && s[0] <= 'z' {
		switch strings.ToLower(s) {
		case "true", "false", "yes", "no", "on", "off", "y", "n", "null":
		default:
			return s
		}
	}
	q, _ := jsonString(s)
	return q
}

// shortDuration writes 12h rather than time's 12h0m0s: the same value for
// time.ParseDuration, and what a person would write.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
