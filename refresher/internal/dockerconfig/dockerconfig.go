// Package dockerconfig encodes registry credentials as the .dockerconfigjson
// payload of a kubernetes.io/dockerconfigjson Secret, the form the kubelet
// reads imagePullSecrets in.
package dockerconfig

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
)

// Key is the data key of a kubernetes.io/dockerconfigjson Secret.
const Key = ".dockerconfigjson"

// Credential is one registry's user name and password.
type Credential struct {
	Username string
	Password string
}

type config struct {
	Auths map[string]entry `json:"auths"`
}

type entry struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Auth     string `json:"auth"`
}

// Marshal returns the payload for the credentials keyed by registry host.
// The output is deterministic (hosts sorted), so equal credentials give equal
// bytes and the caller can skip an update that would change nothing.
func Marshal(creds map[string]Credential) ([]byte, error) {
	c := config{Auths: make(map[string]entry, len(creds))}
	for host, cr := range creds {
		if host == "" || cr.Username == "" || cr.Password == "" {
			return nil, fmt.Errorf("registry %q: empty host, user name or password", host)
		}
		c.Auths[host] = entry{
			Username: cr.Username,
			Password: cr.Password,
			Auth:     base64.StdEncoding.EncodeToString([]byte(cr.Username + ":" + cr.Password)),
		}
	}
	return json.Marshal(c)
}

// Unmarshal reads a payload back into credentials keyed by registry host. It
// prefers the "auth" field, as the kubelet does, and checks that the explicit
// fields, when present, agree with it.
func Unmarshal(data []byte) (map[string]Credential, error) {
	var c config
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("not a docker config JSON: %w", err)
	}
	out := make(map[string]Credential, len(c.Auths))
	for host, e := range c.Auths {
		cr := Credential{Username: e.Username, Password: e.Password}
		if e.Auth != "" {
			raw, err := base64.StdEncoding.DecodeString(e.Auth)
			if err != nil {
				return nil, fmt.Errorf("registry %q: auth is not base64", host)
			}
			user, pass, ok := strings.Cut(string(raw), ":")
			if !ok || user == "" {
				return nil, fmt.Errorf("registry %q: auth is not user:password", host)
			}
			if (cr.Username != "" && cr.Username != user) || (cr.Password != "" && cr.Password != pass) {
				return nil, fmt.Errorf("registry %q: auth disagrees with username/password", host)
			}
			cr = Credential{Username: user, Password: pass}
		}
		out[host] = cr
	}
	return out, nil
}
