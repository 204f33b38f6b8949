package providerconfig

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/kubecred/ecr-credential-provider/internal/ecrhost"
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
	Env           []ExecEnvVar
}

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
	if len(o.Args) > 0 {
		b.WriteString("    args:\n")
		for _, a := range o.Args {
			fmt.Fprintf(&b, "      - %s\n", yamlString(a))
		}
	}
	if len(o.Env) > 0 {
		b.WriteString("    env:\n")
		for _, e := range o.Env {
			fmt.Fprintf(&b, "      - name: %s\n        value: %s\n", yamlString(e.Name), yamlString(e.Value))
		}
	}
	return b.Bytes(), nil
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
