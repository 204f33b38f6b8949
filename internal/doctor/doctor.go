// Package doctor walks the chain an ECR image pull depends on (the image
// name, the kubelet's provider wiring, AWS credentials, the network paths to
// ECR and its S3 layer bucket, the authorization token, the registry and the
// installed plugin itself) and says which link is broken and how to fix it.
//
// Every check that can still run does: a failed link only skips the checks
// that need its result. Nothing it prints carries a password or token.
package doctor

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"time"

	"github.com/kubecred/ecr-credential-provider/internal/ecrhost"
)

// Status is the outcome of one check.
type Status string

// The outcomes a check can have.
const (
	StatusOK   Status = "ok"
	StatusFail Status = "fail"
	StatusSkip Status = "skip"
)

// Check IDs, stable for --json consumers.
const (
	CheckImage          = "image"
	CheckKubelet        = "kubelet"
	CheckProviderConfig = "provider-config"
	CheckProviderMatch  = "provider-match"
	CheckProviderBinary = "provider-binary"
	CheckCredentials    = "credentials"
	CheckIdentity       = "identity"
	CheckNetECRAPI      = "network-ecr-api"
	CheckNetRegistry    = "network-registry"
	CheckNetLayers      = "network-layers"
	CheckAuthToken      = "auth-token"
	CheckRegistry       = "registry-auth"
	CheckManifest       = "manifest"
	CheckLayerDownload  = "layer-download"
	CheckPlugin         = "plugin"

	// With Options.ServiceAccount: the per-pod role path.
	CheckTokenAttributes = "token-attributes"
	CheckAudienceRBAC    = "audience-rbac"
	CheckServiceAccount  = "service-account"
	CheckWebIdentity     = "web-identity"
	CheckPodAuthToken    = "pod-auth-token"
)

// Check is the result of one link of the chain.
type Check struct {
	ID     string `json:"id"`
	Title  string `json:"title"`
	Status Status `json:"status"`
	// Summary is one line: what was found, what failed, or why skipped.
	Summary string `json:"summary"`
	// Remedy says what to do about a failure.
	Remedy string `json:"remedy,omitempty"`
	// Notes are facts worth knowing even when the check passed.
	Notes []string `json:"notes,omitempty"`
	// Policy is a policy document to apply, when the remedy needs one.
	Policy string `json:"policy,omitempty"`
	// Advisory marks a failure a pull survives (ECR Public pulls fall back
	// to anonymous access when no token can be had).
	Advisory bool `json:"advisory,omitempty"`
	// Facts are the check's findings as key/value pairs for automation.
	Facts map[string]string `json:"facts,omitempty"`
}

// Report is everything the doctor found about one image.
type Report struct {
	Image string `json:"image"`
	// OK is true only when a pull of the image would work.
	OK      bool    `json:"ok"`
	Verdict string  `json:"verdict"`
	Checks  []Check `json:"checks"`
}

// Find returns the check with the given ID.
func (r *Report) Find(id string) (Check, bool) {
	for _, c := range r.Checks {
		if c.ID == id {
			return c, true
		}
	}
	return Check{}, false
}

// Resolver looks names up; *net.Resolver is one. Tests inject a fake so no
// real name is ever resolved.
type Resolver interface {
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
}

// Dialer opens connections; *net.Dialer is one.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Options say what to check and how. Only Image is required.
type Options struct {
	Image string
	// ConfigPath is a CredentialProviderConfig to check instead of the one
	// the running kubelet was started with.
	ConfigPath string
	// BinDir is the provider bin dir to check instead of the kubelet's.
	BinDir string
	// RegistryEndpoint replaces https://<registry host> (a private mirror,
	// or a test registry).
	RegistryEndpoint string
	// RunPlugin runs the installed plugin even when no kubelet was found
	// (ConfigPath and BinDir must then say where it is).
	RunPlugin bool
	// CheckTimeout bounds each network step and AWS call; the caller's
	// context bounds the whole run. Default 5s.
	CheckTimeout time.Duration
	// PluginTimeout bounds the plugin run, as the kubelet's one minute does.
	// Default 1m (always also bounded by the context).
	PluginTimeout time.Duration
	// ProcRoot is where processes are listed (default /proc) and Root the
	// filesystem root their paths are relative to (default /).
	ProcRoot string
	Root     string
	Resolver Resolver
	Dialer   Dialer
	// RootCAs verifies TLS; nil means the system pool.
	RootCAs *x509.CertPool
	// NewAWS builds the AWS side for a registry; nil means the SDK's default
	// chain (see NewSDK).
	NewAWS func(ctx context.Context, reg ecrhost.Registry) (AWS, error)
	// ServiceAccount ("NAMESPACE/NAME") adds the checks of the per-pod role
	// path for that service account's pods.
	ServiceAccount string
	// Kubeconfig is the kubeconfig to ask the API server with, as the node
	// sees the path; "" is the running kubelet's, else the usual places.
	Kubeconfig string
	// ServiceAccountToken is a token for ServiceAccount (kubectl create
	// token), for when the node may not request one, as it usually may not.
	ServiceAccountToken string
	// TrustPolicy is the role's trust policy document, so that a refusal
	// names the failing condition (AWS does not say which).
	TrustPolicy []byte
	// NewPodAWS builds the AWS side for a registry as a pod's role: its
	// Credentials assume roleARN with the service account token, as the
	// plugin does. nil means the SDK's default chain (see NewPodSDK).
	NewPodAWS func(ctx context.Context, reg ecrhost.Registry, roleARN, token string) (AWS, error)
	// Getenv and Environ read the doctor's environment; nil means os's.
	Getenv  func(string) string
	Environ func() []string
}

func (o *Options) defaults() {
	if o.CheckTimeout <= 0 {
		o.CheckTimeout = 5 * time.Second
	}
	if o.PluginTimeout <= 0 {
		o.PluginTimeout = time.Minute
	}
	if o.ProcRoot == "" {
		o.ProcRoot = "/proc"
	}
	if o.Root == "" {
		o.Root = "/"
	}
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	if o.Dialer == nil {
		o.Dialer = &net.Dialer{}
	}
	if o.NewAWS == nil {
		o.NewAWS = func(ctx context.Context, reg ecrhost.Registry) (AWS, error) {
			return NewSDK(ctx, reg, o.CheckTimeout)
		}
	}
	if o.NewPodAWS == nil {
		o.NewPodAWS = func(ctx context.Context, reg ecrhost.Registry, roleARN, token string) (AWS, error) {
			return NewPodSDK(ctx, reg, roleARN, token, o.CheckTimeout)
		}
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.Environ == nil {
		o.Environ = os.Environ
	}
}

// ErrNoImage is returned by Run for an empty image.
var ErrNoImage = errors.New("no image given: pass the image a pod fails to pull, e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com/app:v1")
