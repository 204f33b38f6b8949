package doctor

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strings"
)

// manifestAccept is what containerd asks for: OCI and Docker, single and
// multi-platform.
const manifestAccept = "application/vnd.oci.image.index.v1+json, " +
	"application/vnd.oci.image.manifest.v1+json, " +
	"application/vnd.docker.distribution.manifest.list.v2+json, " +
	"application/vnd.docker.distribution.manifest.v2+json"

// registryClient talks the distribution API to one registry with one set of
// credentials, through the doctor's resolver and dialer.
type registryClient struct {
	r      *run
	base   *url.URL
	hc     *http.Client
	user   string
	pass   string
	bearer string
	// scheme is the challenge the registry answered /v2/ with.
	scheme string
}

func (r *run) httpClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			DialContext:           r.dialContext,
			TLSClientConfig:       &tls.Config{RootCAs: r.o.RootCAs, MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout:   r.o.CheckTimeout,
			ResponseHeaderTimeout: r.o.CheckTimeout,
			ForceAttemptHTTP2:     true,
		},
		// Layer redirects carry presigned S3 URLs: the doctor follows them
		// itself, without the registry's Authorization header.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

type httpResult struct {
	Status int
	Header http.Header
	Body   []byte
}

// maxBody bounds what the doctor reads of any answer: manifests and error
// documents are small, and a blob is never read past its first bytes.
const maxBody = 4 << 20

func (c *registryClient) do(ctx context.Context, method, rawURL string, hdr http.Header, auth bool) (httpResult, error) {
	rctx, cancel := context.WithTimeout(ctx, c.r.o.CheckTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, method, rawURL, nil)
	if err != nil {
		return httpResult{}, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", "ecr-credential-provider-doctor")
	if auth {
		switch {
		case c.bearer != "":
			req.Header.Set("Authorization", "Bearer "+c.bearer)
		case c.user != "":
			req.SetBasicAuth(c.user, c.pass)
		}
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return httpResult{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return httpResult{}, err
	}
	return httpResult{Status: resp.StatusCode, Header: resp.Header, Body: body}, nil
}

func (c *registryClient) url(path string) string {
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	return u.String()
}

// challenge is a parsed WWW-Authenticate header.
type challenge struct {
	Scheme string
	Params map[string]string
}

func parseChallenge(h string) challenge {
	scheme, rest, _ := strings.Cut(strings.TrimSpace(h), " ")
	c := challenge{Scheme: strings.ToLower(scheme), Params: map[string]string{}}
	for rest = strings.TrimSpace(rest); rest != ""; rest = strings.TrimLeft(strings.TrimSpace(rest), ",") {
		key, after, ok := strings.Cut(rest, "=")
		if !ok {
			break
		}
		key = strings.ToLower(strings.TrimSpace(key))
		after = strings.TrimSpace(after)
		var val string
		if strings.HasPrefix(after, `"`) {
			end := strings.Index(after[1:], `"`)
			if end < 0 {
				val, rest = after[1:], ""
			} else {
				val, rest = after[1:end+1], after[end+2:]
			}
		} else {
			val, rest, _ = strings.Cut(after, ",")
		}
		c.Params[key] = strings.TrimSpace(val)
		rest = strings.TrimSpace(rest)
	}
	return c
}

// login does what containerd does before a pull: GET /v2/, and answer the
// challenge, Basic (private ECR: AWS:<password>) or Bearer (ECR Public:
// trade the basic credentials, or none, for a token at the realm).
// It returns a one-line account of the exchange.
func (c *registryClient) login(ctx context.Context, repo string) (string, error) {
	res, err := c.do(ctx, http.MethodGet, c.url("/v2/"), nil, false)
	if err != nil {
		return "", err
	}
	switch res.Status {
	case http.StatusOK:
		c.scheme = "none"
		return "GET /v2/ answered 200 without credentials (the registry allows anonymous access)", nil
	case http.StatusUnauthorized:
	default:
		return "", fmt.Errorf("GET /v2/ answered %d %s; a registry answers 401 or 200", res.Status, http.StatusText(res.Status))
	}
	ch := parseChallenge(res.Header.Get("WWW-Authenticate"))
	c.scheme = ch.Scheme
	switch ch.Scheme {
	case "basic":
		if c.user == "" {
			return "", errors.New("the registry wants basic credentials and there is no token")
		}
		res, err := c.do(ctx, http.MethodGet, c.url("/v2/"), nil, true)
		if err != nil {
			return "", err
		}
		if res.Status != http.StatusOK {
			return "", &statusError{what: "GET /v2/ with the token", res: res}
		}
		return "GET /v2/ answered 401 with a Basic challenge; with the token (user " + c.user + "): 200", nil
	case "bearer":
		realm := ch.Params["realm"]
		u, err := url.Parse(realm)
		if err != nil || u.Host == "" {
			return "", fmt.Errorf("the registry's Bearer challenge has no usable realm (%q)", realm)
		}
		q := u.Query()
		if s := ch.Params["service"]; s != "" {
			q.Set("service", s)
		}
		q.Set("scope", "repository:"+repo+":pull")
		u.RawQuery = q.Encode()
		res, err := c.do(ctx, http.MethodGet, u.String(), nil, c.user != "")
		if err != nil {
			return "", err
		}
		if res.Status != http.StatusOK {
			return "", &statusError{what: "the token request to " + u.Host, res: res}
		}
		var tok struct {
			Token       string `json:"token"`
			AccessToken string `json:"access_token"`
		}
		if json.Unmarshal(res.Body, &tok) != nil || (tok.Token == "" && tok.AccessToken == "") {
			return "", fmt.Errorf("the token service at %s answered without a token", u.Host)
		}
		c.bearer = tok.Token
		if c.bearer == "" {
			c.bearer = tok.AccessToken
		}
		c.r.secrets.add(c.bearer)
		who := "anonymously"
		if c.user != "" {
			who = "with the token (user " + c.user + ")"
		}
		return "GET /v2/ answered 401 with a Bearer challenge; the token service at " + u.Host + " issued a pull token " + who, nil
	}
	return "", fmt.Errorf("the registry's challenge %q is neither Basic nor Bearer", ch.Scheme)
}

// statusError is an unexpected HTTP answer, with the registry's error
// document if it sent one.
type statusError struct {
	what string
	res  httpResult
}

func (e *statusError) Error() string {
	s := fmt.Sprintf("%s answered %d %s", e.what, e.res.Status, http.StatusText(e.res.Status))
	if code, msg := registryError(e.res.Body); code != "" {
		s += ": " + code
		if msg != "" {
			s += ": " + msg
		}
	}
	return s
}

// registryError reads the first error of a distribution error document.
func registryError(body []byte) (code, msg string) {
	var doc struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &doc) != nil || len(doc.Errors) == 0 {
		return "", ""
	}
	return doc.Errors[0].Code, doc.Errors[0].Message
}

// manifest is the part of an image manifest or index the doctor reads.
type manifest struct {
	MediaType string `json:"mediaType"`
	Manifests []struct {
		Digest   string `json:"digest"`
		Platform struct {
			OS           string `json:"os"`
			Architecture string `json:"architecture"`
		} `json:"platform"`
	} `json:"manifests"`
	Config struct {
		Digest string `json:"digest"`
	} `json:"config"`
	Layers []struct {
		Digest string `json:"digest"`
		Size   int64  `json:"size"`
	} `json:"layers"`
}

// getManifest fetches a manifest; res carries the status for the caller
// to diagnose when it is not 200.
func (c *registryClient) getManifest(ctx context.Context, repo, reference string) (manifest, httpResult, error) {
	hdr := http.Header{"Accept": {manifestAccept}}
	res, err := c.do(ctx, http.MethodGet, c.url("/v2/"+repo+"/manifests/"+reference), hdr, true)
	if err != nil || res.Status != http.StatusOK {
		return manifest{}, res, err
	}
	var m manifest
	if err := json.Unmarshal(res.Body, &m); err != nil {
		return manifest{}, res, fmt.Errorf("the manifest is not valid JSON: %v", err)
	}
	if m.MediaType == "" {
		m.MediaType = res.Header.Get("Content-Type")
	}
	return m, res, nil
}

// platformManifest picks the index entry this node would pull.
func (m manifest) platformManifest() string {
	for _, e := range m.Manifests {
		if e.Platform.OS == runtime.GOOS && e.Platform.Architecture == runtime.GOARCH {
			return e.Digest
		}
	}
	if len(m.Manifests) > 0 {
		return m.Manifests[0].Digest
	}
	return ""
}

func (m manifest) isIndex() bool { return len(m.Manifests) > 0 }

func shortMediaType(mt string) string {
	switch mt {
	case "application/vnd.oci.image.index.v1+json":
		return "OCI index"
	case "application/vnd.oci.image.manifest.v1+json":
		return "OCI manifest"
	case "application/vnd.docker.distribution.manifest.list.v2+json":
		return "Docker manifest list"
	case "application/vnd.docker.distribution.manifest.v2+json":
		return "Docker manifest"
	}
	if mt == "" {
		return "manifest"
	}
	return mt
}
