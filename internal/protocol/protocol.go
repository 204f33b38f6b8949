// Package protocol holds the kubelet's exec credential provider wire format:
// the CredentialProviderRequest the kubelet writes on stdin and the
// CredentialProviderResponse it expects back, in every apiVersion a kubelet
// can send (v1alpha1, v1beta1, v1).
//
// The types mirror k8s.io/kubelet/pkg/apis/credentialprovider field for field
// and in the same order, so that encoding/json prints the same bytes as the
// kubelet's own serializer. They are copied rather than imported because
// apimachinery adds megabytes and milliseconds to every plugin start.
package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// The apiVersions a kubelet may use, oldest first.
const (
	V1Alpha1 = "credentialprovider.kubelet.k8s.io/v1alpha1"
	V1Beta1  = "credentialprovider.kubelet.k8s.io/v1beta1"
	V1       = "credentialprovider.kubelet.k8s.io/v1"

	RequestKind  = "CredentialProviderRequest"
	ResponseKind = "CredentialProviderResponse"

	// Group is the API group every version above belongs to.
	Group = "credentialprovider.kubelet.k8s.io"
)

// Versions lists the supported apiVersions, oldest first.
var Versions = []string{V1Alpha1, V1Beta1, V1}

// CacheKeyType tells the kubelet how to key its in-memory copy of the response.
type CacheKeyType string

// The cache key types the kubelet understands.
const (
	CacheKeyImage    CacheKeyType = "Image"
	CacheKeyRegistry CacheKeyType = "Registry"
	CacheKeyGlobal   CacheKeyType = "Global"
)

// Request is a CredentialProviderRequest of any version. The service account
// fields exist only in v1 and stay empty for older versions.
type Request struct {
	Kind                      string            `json:"kind"`
	APIVersion                string            `json:"apiVersion"`
	Image                     string            `json:"image"`
	ServiceAccountToken       string            `json:"serviceAccountToken,omitempty"`
	ServiceAccountAnnotations map[string]string `json:"serviceAccountAnnotations,omitempty"`
}

// String never prints the service account token.
func (r Request) String() string {
	tok := ""
	if r.ServiceAccountToken != "" {
		tok = " serviceAccountToken=<redacted>"
	}
	return fmt.Sprintf("%s %s image=%q%s", r.APIVersion, r.Kind, r.Image, tok)
}

// AuthConfig is one registry's username and password.
type AuthConfig struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// String keeps passwords out of any %v formatting.
func (a AuthConfig) String() string { return fmt.Sprintf("{%s <redacted>}", a.Username) }

// Response is a CredentialProviderResponse. Field order and tags match the
// kubelet's types exactly: the v1 bytes are compared with upstream's.
type Response struct {
	Kind          string                `json:"kind,omitempty"`
	APIVersion    string                `json:"apiVersion,omitempty"`
	CacheKeyType  CacheKeyType          `json:"cacheKeyType"`
	CacheDuration *Duration             `json:"cacheDuration,omitempty"`
	Auth          map[string]AuthConfig `json:"auth,omitempty"`
}

// Duration marshals like metav1.Duration: a Go duration string.
type Duration struct{ time.Duration }

// MarshalJSON prints the duration as metav1.Duration does.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.Duration.String()) }

// UnmarshalJSON accepts only a string, as metav1.Duration does.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration must be a string such as \"12h\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MaxRequestBytes bounds what we read from stdin; a real request is a few
// kilobytes even with a service account token.
const MaxRequestBytes = 1 << 20

// ErrEmptyImage is returned for a request that names no image.
var ErrEmptyImage = errors.New("request has an empty image: the kubelet always sends one, so this request did not come from a kubelet")

// ReadRequest reads and decodes one request from r. Its errors name what was
// wrong in the input and never echo the input, which may hold a token.
func ReadRequest(r io.Reader) (Request, error) {
	data, err := ReadRequestBytes(r)
	if err != nil {
		return Request{}, err
	}
	return DecodeRequest(data)
}

// ReadRequestBytes reads a request's bytes from r, at most MaxRequestBytes.
// It returns what it read even with an error, for a caller that hands the
// bytes on to be read again.
func ReadRequestBytes(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxRequestBytes+1))
	if err != nil {
		return data, fmt.Errorf("reading the request from stdin: %w", err)
	}
	if len(data) > MaxRequestBytes {
		return data, fmt.Errorf("request on stdin is larger than %d bytes", MaxRequestBytes)
	}
	return data, nil
}

// DecodeRequest decodes a CredentialProviderRequest of any supported version.
func DecodeRequest(data []byte) (Request, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return Request{}, errors.New("no request on stdin: this command is run by the kubelet, which writes a CredentialProviderRequest JSON on stdin (try the 'doctor' subcommand to test by hand)")
	}
	var req Request
	if err := json.Unmarshal(data, &req); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return Request{}, fmt.Errorf("request on stdin is not valid JSON (at byte %d)", syn.Offset)
		}
		var typ *json.UnmarshalTypeError
		if errors.As(err, &typ) && typ.Field != "" {
			return Request{}, fmt.Errorf("request field %q has the wrong type: want a %s", typ.Field, typ.Type.Kind())
		}
		return Request{}, errors.New("request on stdin is not a JSON object")
	}
	if req.Kind != RequestKind {
		return Request{}, fmt.Errorf("request kind is %q, want %q", Clip(req.Kind), RequestKind)
	}
	if !Supported(req.APIVersion) {
		return Request{}, fmt.Errorf("request apiVersion %q is not supported; supported: %s", Clip(req.APIVersion), strings.Join(Versions, ", "))
	}
	if req.APIVersion != V1 && (req.ServiceAccountToken != "" || len(req.ServiceAccountAnnotations) > 0) {
		// Older versions have no such fields; the kubelet's decoder drops them.
		req.ServiceAccountToken, req.ServiceAccountAnnotations = "", nil
	}
	if strings.TrimSpace(req.Image) == "" {
		return Request{}, ErrEmptyImage
	}
	return req, nil
}

// Supported reports whether apiVersion is one this plugin answers.
func Supported(apiVersion string) bool {
	for _, v := range Versions {
		if v == apiVersion {
			return true
		}
	}
	return false
}

// NewResponse starts a response in the request's apiVersion: the kubelet
// rejects a response in any other.
func NewResponse(req Request) Response {
	return Response{Kind: ResponseKind, APIVersion: req.APIVersion, CacheKeyType: CacheKeyRegistry}
}

// Encode writes the response as the kubelet's serializer would: compact JSON
// followed by a newline, in a single write so a reader never sees half.
func (r Response) Encode(w io.Writer) error {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(r); err != nil {
		return err
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// MaxEcho is how much of a request field an error message repeats.
const MaxEcho = 256

// Clip cuts s to MaxEcho bytes for an error message, so that a hostile or
// broken request cannot turn the one error line into megabytes.
func Clip(s string) string {
	if len(s) <= MaxEcho {
		return s
	}
	return s[:MaxEcho] + fmt.Sprintf("...(%d bytes)", len(s))
}
