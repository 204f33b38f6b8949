// Package providerconfig reads, checks and writes the kubelet's
// CredentialProviderConfig, and decides which providers the kubelet would
// call for an image, using the kubelet's own decoding and matching rules so
// that what it accepts and matches is what the kubelet accepts and matches.
package providerconfig

import "github.com/kubecred/ecr-credential-provider/internal/protocol"

// Group is the API group of the CredentialProviderConfig file format.
const Group = "kubelet.config.k8s.io"

// Kind is the only kind a CredentialProviderConfig file may declare.
const Kind = "CredentialProviderConfig"

// CredentialProviderConfig mirrors kubelet.config.k8s.io/v1
// CredentialProviderConfig; v1alpha1 and v1beta1 have the same fields except
// tokenAttributes, which only v1 has.
type CredentialProviderConfig struct {
	APIVersion string               `json:"apiVersion,omitempty"`
	Kind       string               `json:"kind,omitempty"`
	Providers  []CredentialProvider `json:"providers"`
}

// CredentialProvider is one exec plugin entry of the config.
type CredentialProvider struct {
	Name                 string                         `json:"name"`
	MatchImages          []string                       `json:"matchImages"`
	DefaultCacheDuration *Duration                      `json:"defaultCacheDuration"`
	APIVersion           string                         `json:"apiVersion"`
	Args                 []string                       `json:"args,omitempty"`
	Env                  []ExecEnvVar                   `json:"env,omitempty"`
	TokenAttributes      *ServiceAccountTokenAttributes `json:"tokenAttributes,omitempty"`

	// File is the file this provider was read from, so that findings about
	// a merged directory name the file the user has to edit.
	File string `json:"-"`
	// Index is the provider's position in File's providers list.
	Index int `json:"-"`
}

// ServiceAccountTokenAttributes mirrors the kubelet's tokenAttributes
// (KEP-4412: the plugin receives a service account token of the pod).
type ServiceAccountTokenAttributes struct {
	ServiceAccountTokenAudience          string   `json:"serviceAccountTokenAudience"`
	CacheType                            string   `json:"cacheType"`
	RequireServiceAccount                *bool    `json:"requireServiceAccount"`
	RequiredServiceAccountAnnotationKeys []string `json:"requiredServiceAccountAnnotationKeys,omitempty"`
	OptionalServiceAccountAnnotationKeys []string `json:"optionalServiceAccountAnnotationKeys,omitempty"`
}

// ExecEnvVar is one environment variable the kubelet sets for the plugin.
type ExecEnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Duration is a Go duration string in JSON, as metav1.Duration is: the
// kubelet parses defaultCacheDuration with time.ParseDuration. It is the
// protocol's type, so the config and the response agree on the form.
type Duration = protocol.Duration
