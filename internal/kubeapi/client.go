package kubeapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client makes API calls with one identity.
type Client struct {
	base  *url.URL
	hc    *http.Client
	token string
}

// New returns a client for cfg. timeout bounds each request (0: 10s).
func New(cfg *Config, timeout time.Duration) (*Client, error) {
	u, err := url.Parse(cfg.Server)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("server %q is not an http(s) URL", cfg.Server)
	}
	tc := &tls.Config{ServerName: cfg.TLSServerName, InsecureSkipVerify: cfg.Insecure, MinVersion: tls.VersionTLS12}
	if len(cfg.CAData) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(cfg.CAData) {
			return nil, errors.New("the certificate authority holds no PEM certificate")
		}
		tc.RootCAs = pool
	}
	if len(cfg.CertData) > 0 {
		cert, err := tls.X509KeyPair(cfg.CertData, cfg.KeyData)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %v", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	// No proxy from the environment: the doctor talks to the node's own API
	// server address, as the kubelet does.
	tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true, TLSHandshakeTimeout: timeout}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return &Client{base: u, hc: &http.Client{Transport: tr, Timeout: timeout}, token: cfg.Token}, nil
}

// StatusError is an API server's refusal, from its metav1.Status answer.
type StatusError struct {
	Code    int
	Reason  string // Forbidden, NotFound, Unauthorized, ...
	Message string
}

func (e *StatusError) Error() string {
	if e.Message != "" {
		return fmt.Sprintf("%d %s: %s", e.Code, e.Reason, e.Message)
	}
	return fmt.Sprintf("%d %s", e.Code, e.Reason)
}

// IsForbidden and IsNotFound classify an error of this package.
func IsForbidden(err error) bool { return statusCode(err) == http.StatusForbidden }

// IsNotFound reports whether the API server said the object does not exist.
func IsNotFound(err error) bool { return statusCode(err) == http.StatusNotFound }

func statusCode(err error) int {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

// do sends in as JSON (when not nil) and decodes a 2xx answer into out.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	u := *c.base
	u.Path += path
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "ecr-credential-provider-doctor")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if res.StatusCode/100 != 2 {
		se := &StatusError{Code: res.StatusCode, Reason: http.StatusText(res.StatusCode)}
		var st struct {
			Reason  string `json:"reason"`
			Message string `json:"message"`
		}
		if json.Unmarshal(raw, &st) == nil {
			if st.Reason != "" {
				se.Reason = st.Reason
			}
			se.Message = st.Message
		}
		return se
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s %s: the answer is not the JSON expected: %v", method, path, err)
	}
	return nil
}

// ResourceAttributes is the action a SelfSubjectAccessReview asks about.
type ResourceAttributes struct {
	Namespace   string `json:"namespace,omitempty"`
	Verb        string `json:"verb,omitempty"`
	Group       string `json:"group,omitempty"`
	Resource    string `json:"resource,omitempty"`
	Subresource string `json:"subresource,omitempty"`
	Name        string `json:"name,omitempty"`
}

// Access is the API server's verdict on a SelfSubjectAccessReview.
type Access struct {
	Allowed         bool   `json:"allowed"`
	Denied          bool   `json:"denied,omitempty"`
	Reason          string `json:"reason,omitempty"`
	EvaluationError string `json:"evaluationError,omitempty"`
}

// CanI asks whether the client's identity may perform attrs
// (authorization.k8s.io/v1 SelfSubjectAccessReview, which every
// authenticated identity, nodes included, may create).
func (c *Client) CanI(ctx context.Context, attrs ResourceAttributes) (Access, error) {
	type spec struct {
		ResourceAttributes ResourceAttributes `json:"resourceAttributes"`
	}
	in := struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Spec       spec   `json:"spec"`
	}{"authorization.k8s.io/v1", "SelfSubjectAccessReview", spec{attrs}}
	var out struct {
		Status Access `json:"status"`
	}
	err := c.do(ctx, http.MethodPost, "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", in, &out)
	return out.Status, err
}

// ServiceAccount is the part of a core/v1 ServiceAccount the doctor reads.
type ServiceAccount struct {
	Metadata struct {
		Name        string            `json:"name"`
		Namespace   string            `json:"namespace"`
		UID         string            `json:"uid"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
}

// GetServiceAccount reads a service account.
func (c *Client) GetServiceAccount(ctx context.Context, namespace, name string) (*ServiceAccount, error) {
	var sa ServiceAccount
	if err := c.do(ctx, http.MethodGet, "/api/v1/namespaces/"+url.PathEscape(namespace)+"/serviceaccounts/"+url.PathEscape(name), nil, &sa); err != nil {
		return nil, err
	}
	return &sa, nil
}

// Token is a service account token from a TokenRequest. Never print Value.
type Token struct {
	Value     string
	ExpiresAt time.Time
}

// CreateToken requests a token for the service account with the given
// audiences (authentication.k8s.io/v1 TokenRequest). expiration 0 lets the
// server choose.
func (c *Client) CreateToken(ctx context.Context, namespace, name string, audiences []string, expiration time.Duration) (Token, error) {
	type spec struct {
		Audiences         []string `json:"audiences"`
		ExpirationSeconds *int64   `json:"expirationSeconds,omitempty"`
	}
	in := struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Spec       spec   `json:"spec"`
	}{APIVersion: "authentication.k8s.io/v1", Kind: "TokenRequest", Spec: spec{Audiences: audiences}}
	if expiration > 0 {
		s := int64(expiration / time.Second)
		in.Spec.ExpirationSeconds = &s
	}
	var out struct {
		Status struct {
			Token               string    `json:"token"`
			ExpirationTimestamp time.Time `json:"expirationTimestamp"`
		} `json:"status"`
	}
	err := c.do(ctx, http.MethodPost, "/api/v1/namespaces/"+url.PathEscape(namespace)+"/serviceaccounts/"+url.PathEscape(name)+"/token", in, &out)
	if err != nil {
		return Token{}, err
	}
	if out.Status.Token == "" {
		return Token{}, errors.New("the TokenRequest answer holds no token")
	}
	return Token{Value: out.Status.Token, ExpiresAt: out.Status.ExpirationTimestamp}, nil
}
