// Package kubeapi is a minimal Kubernetes API client over net/http: it reads
// a kubeconfig and makes the few calls the doctor makes as the node
// (SelfSubjectAccessReview, get ServiceAccount, TokenRequest). The plugin
// binary links no k8s.io or client-go package, so this mirrors only the
// fields those calls use.
package kubeapi

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// Config is what a client needs to reach and authenticate to an API server:
// the resolved current context of a kubeconfig.
type Config struct {
	// Server is the API server's base URL, e.g. https://10.0.0.1:6443.
	Server string
	// TLSServerName overrides the name the server's certificate is checked
	// against.
	TLSServerName string
	// CAData is the PEM bundle the server's certificate is verified with;
	// empty means the system pool.
	CAData   []byte
	Insecure bool
	// CertData and KeyData are the PEM client certificate and key (a
	// kubelet's rotated kubelet-client-current.pem holds both).
	CertData, KeyData []byte
	// Token is a bearer token. Never print it.
	Token string
	// User and Cluster name the kubeconfig entries used, for messages.
	User, Cluster string
}

type kubeconfig struct {
	CurrentContext string              `json:"current-context"`
	Clusters       []kubeconfigCluster `json:"clusters"`
	Users          []kubeconfigUser    `json:"users"`
	Contexts       []struct {
		Name    string `json:"name"`
		Context struct {
			Cluster string `json:"cluster"`
			User    string `json:"user"`
		} `json:"context"`
	} `json:"contexts"`
}

type kubeconfigCluster struct {
	Name    string `json:"name"`
	Cluster struct {
		Server                   string `json:"server"`
		TLSServerName            string `json:"tls-server-name"`
		CertificateAuthority     string `json:"certificate-authority"`
		CertificateAuthorityData []byte `json:"certificate-authority-data"`
		InsecureSkipTLSVerify    bool   `json:"insecure-skip-tls-verify"`
	} `json:"cluster"`
}

type kubeconfigUser struct {
	Name string `json:"name"`
	User struct {
		ClientCertificate     string `json:"client-certificate"`
		ClientCertificateData []byte `json:"client-certificate-data"`
		ClientKey             string `json:"client-key"`
		ClientKeyData         []byte `json:"client-key-data"`
		Token                 string `json:"token"`
		TokenFile             string `json:"tokenFile"`
		Exec                  any    `json:"exec"`
		AuthProvider          any    `json:"auth-provider"`
	} `json:"user"`
}

// CertUser is the user name the API server takes from the client
// certificate (its common name, such as system:node:<node>), or "" when
// the config authenticates otherwise.
func (c *Config) CertUser() string {
	for rest := c.CertData; len(rest) > 0; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		if cert, err := x509.ParseCertificate(b.Bytes); err == nil {
			return cert.Subject.CommonName
		}
		break
	}
	return ""
}

// LoadFile reads the kubeconfig at path.
func LoadFile(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	cfg, err := Parse(data, filepath.Dir(path), os.ReadFile)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	return cfg, nil
}

// Parse resolves a kubeconfig's current context. File references are
// relative to dir, as kubectl takes them, and are read with readFile (so a
// caller can map a node's paths into another root).
func Parse(data []byte, dir string, readFile func(string) ([]byte, error)) (*Config, error) {
	var kc kubeconfig
	if err := yaml.Unmarshal(data, &kc); err != nil {
		return nil, fmt.Errorf("not a kubeconfig: %v", err)
	}
	ctxName := kc.CurrentContext
	if ctxName == "" && len(kc.Contexts) == 1 {
		ctxName = kc.Contexts[0].Name
	}
	var clusterName, userName string
	found := false
	for _, c := range kc.Contexts {
		if c.Name == ctxName {
			clusterName, userName, found = c.Context.Cluster, c.Context.User, true
		}
	}
	if !found {
		if ctxName == "" {
			return nil, errors.New("no current-context")
		}
		return nil, fmt.Errorf("current-context %q is not among its contexts", ctxName)
	}
	cfg := &Config{User: userName, Cluster: clusterName}
	read := func(what, p string) ([]byte, error) {
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		b, err := readFile(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		return b, nil
	}
	ci := slices.IndexFunc(kc.Clusters, func(c kubeconfigCluster) bool { return c.Name == clusterName })
	if ci < 0 {
		return nil, fmt.Errorf("cluster %q of context %q is not among its clusters", clusterName, ctxName)
	}
	{
		cl := kc.Clusters[ci].Cluster
		cfg.Server, cfg.TLSServerName, cfg.Insecure, cfg.CAData = cl.Server, cl.TLSServerName, cl.InsecureSkipTLSVerify, cl.CertificateAuthorityData
		if len(cfg.CAData) == 0 && cl.CertificateAuthority != "" {
			var err error
			if cfg.CAData, err = read("certificate-authority", cl.CertificateAuthority); err != nil {
				return nil, err
			}
		}
	}
	if cfg.Server == "" {
		return nil, fmt.Errorf("cluster %q has no server", clusterName)
	}
	ui := slices.IndexFunc(kc.Users, func(u kubeconfigUser) bool { return u.Name == userName })
	if ui < 0 && userName != "" {
		return nil, fmt.Errorf("user %q of context %q is not among its users", userName, ctxName)
	}
	if ui >= 0 {
		us := kc.Users[ui].User
		if us.Exec != nil || us.AuthProvider != nil {
			return nil, fmt.Errorf("user %q authenticates with an exec or auth-provider plugin, which this client does not run: use the kubelet's own kubeconfig (client certificate) or one with a token", userName)
		}
		var err error
		cfg.CertData, cfg.KeyData, cfg.Token = us.ClientCertificateData, us.ClientKeyData, us.Token
		if len(cfg.CertData) == 0 && us.ClientCertificate != "" {
			if cfg.CertData, err = read("client-certificate", us.ClientCertificate); err != nil {
				return nil, err
			}
		}
		if len(cfg.KeyData) == 0 && us.ClientKey != "" {
			if cfg.KeyData, err = read("client-key", us.ClientKey); err != nil {
				return nil, err
			}
		}
		if cfg.Token == "" && us.TokenFile != "" {
			b, err := read("tokenFile", us.TokenFile)
			if err != nil {
				return nil, err
			}
			cfg.Token = strings.TrimSpace(string(b))
		}
	}
	if (len(cfg.CertData) == 0) != (len(cfg.KeyData) == 0) {
		return nil, fmt.Errorf("user %q has a client certificate without a key, or a key without a certificate", userName)
	}
	return cfg, nil
}
