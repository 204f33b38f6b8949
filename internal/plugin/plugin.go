// Package plugin answers one kubelet CredentialProviderRequest: it picks the
// identity and endpoint for the image, serves a token from the node's disk
// cache when one is fresh, lets one process at a time fetch a new one, and
// falls back to a still-valid token when AWS is slow or failing. It also
// parses the plugin's command line.
//
// The package imports no AWS SDK package and few others: package fastpath
// answers cache hits with it before the SDK initializes (see there), and a
// new import can undo that. The binary's tests check it.
package plugin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/kubecred/ecr-credential-provider/internal/arn"
	"github.com/kubecred/ecr-credential-provider/internal/cache"
	"github.com/kubecred/ecr-credential-provider/internal/ecrhost"
	"github.com/kubecred/ecr-credential-provider/internal/protocol"
	"github.com/kubecred/ecr-credential-provider/internal/registrymap"
)

// DefaultRoleAnnotation is the service account annotation upstream reads for
// a per-pod ECR role.
const DefaultRoleAnnotation = "eks.amazonaws.com/ecr-role-arn"

// RoleEnv names a role to assume for every request that carries a service
// account token but no role annotation.
const RoleEnv = "AWS_ECR_ROLE_ARN"

// Durations the kubelet is told to cache answers that are not a fresh token.
const (
	// StaleCacheDuration caps how long the kubelet keeps a token served after
	// a failed refresh, so it asks again soon and picks up the fix.
	StaleCacheDuration = 5 * time.Minute
	// DeniedCacheDuration is how long the kubelet keeps an empty ECR Public
	// answer, pulling anonymously, before it asks again.
	DeniedCacheDuration = 5 * time.Minute
	// RetryAfterFailure is how long after a failed refresh other processes
	// serve the still-valid cached token without trying AWS themselves.
	RetryAfterFailure = 30 * time.Second
)

// Token is a decoded registry credential.
type Token struct {
	Username string
	Password string
	// ExpiresAt is the expiry AWS issued, on AWS's clock.
	ExpiresAt time.Time
	// IssuedAt is AWS's time when it answered (the response's Date header),
	// zero if unknown. The token's life is ExpiresAt minus IssuedAt: the
	// node's clock may be hours off AWS's.
	IssuedAt time.Time
}

// Identity says whose credentials fetch a token. The zero value means the
// node's own credentials from the SDK's default chain.
type Identity struct {
	// RoleARN is assumed with AssumeRoleWithWebIdentity when set.
	RoleARN string
	// WebIdentityToken is the pod's service account token. Never log it.
	WebIdentityToken string
}

// PerPod reports whether the identity is a pod's own rather than the node's.
func (id Identity) PerPod() bool { return id.RoleARN != "" }

// ErrAccessDenied marks a Fetcher error where AWS refused the caller.
var ErrAccessDenied = errors.New("access denied")

// Fetcher gets a token from AWS. The package holds no AWS client itself, so
// that answering from the cache never links in, or waits for, the SDK.
type Fetcher interface {
	Fetch(ctx context.Context, reg ecrhost.Registry, id Identity) (Token, error)
}

// Config is what a plugin run needs from its environment.
type Config struct {
	// Cache is the node's disk cache; nil runs without one.
	Cache *cache.Dir
	// Hosts decides which registry hosts get a token at all.
	Hosts ecrhost.Policy
	// Timeout bounds the whole run, kept well inside the kubelet's 60s kill.
	Timeout time.Duration
	// RefreshTimeout bounds a refresh when a valid token is already at hand.
	RefreshTimeout time.Duration
	// RoleAnnotations are the service account annotation keys that may name
	// a per-pod role, first match wins.
	RoleAnnotations []string
	// RegistryMap sends requests for a mapped host (a pull-through cache's
	// source, a custom domain) to the ECR registry it names.
	RegistryMap registrymap.Map
	Getenv      func(string) string
	Now         func() time.Time
	Logger      *slog.Logger
	Fetcher     Fetcher
}

func (c *Config) defaults() {
	if c.Timeout <= 0 {
		c.Timeout = 20 * time.Second
	}
	if c.RefreshTimeout <= 0 || c.RefreshTimeout > c.Timeout {
		c.RefreshTimeout = min(5*time.Second, c.Timeout)
	}
	if len(c.RoleAnnotations) == 0 {
		c.RoleAnnotations = []string{DefaultRoleAnnotation}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// IdentityFor picks whose credentials serve the request: a per-pod role when
// the request carries a service account token and a role is named, else the
// node's own.
func IdentityFor(req protocol.Request, annotations []string, getenv func(string) string) (Identity, error) {
	if req.ServiceAccountToken == "" {
		return Identity{}, nil
	}
	role, source := "", ""
	for _, k := range annotations {
		if v := req.ServiceAccountAnnotations[k]; v != "" {
			role, source = v, "service account annotation "+k
			break
		}
	}
	if role == "" && getenv(RoleEnv) != "" {
		role, source = getenv(RoleEnv), RoleEnv
	}
	if role == "" {
		return Identity{}, nil
	}
	if !arn.IsRole(role) {
		return Identity{}, fmt.Errorf("%s is not an IAM role ARN (want arn:aws:iam::<account>:role/<name>)", source)
	}
	return Identity{RoleARN: role, WebIdentityToken: req.ServiceAccountToken}, nil
}

// envKeys are the settings that choose credentials or endpoints without a
// network call; any change among them must miss the cache.
var envKeys = []string{
	"AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE",
	"AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME", "AWS_WEB_IDENTITY_TOKEN_FILE",
	"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
	"AWS_EC2_METADATA_SERVICE_ENDPOINT", "AWS_EC2_METADATA_DISABLED",
	"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_ECR", "AWS_ENDPOINT_URL_ECR_PUBLIC", "AWS_ENDPOINT_URL_STS",
	"AWS_USE_FIPS_ENDPOINT", "AWS_USE_DUALSTACK_ENDPOINT", "AWS_REGION", "AWS_DEFAULT_REGION",
}

// CacheKey names the disk cache entry for a registry and the node identity
// the environment selects. Static keys count only as a hash, so rotating
// them misses the cache without writing them anywhere.
func CacheKey(reg ecrhost.Registry, getenv func(string) string) string {
	// No account: GetAuthorizationToken without registryIds returns one
	// token for every registry of the region the principal may read, so
	// images from N accounts share one entry, one lock and one call. The
	// answer's auth key still comes from the requested host.
	parts := []string{"v2", reg.Kind(), reg.Partition, reg.Region}
	if !reg.ECR {
		parts = append(parts, reg.Hostname)
	}
	for _, k := range envKeys {
		parts = append(parts, k+"="+getenv(k))
	}
	if akid := getenv("AWS_ACCESS_KEY_ID"); akid != "" {
		sum := sha256.Sum256([]byte(akid + "\x00" + getenv("AWS_SECRET_ACCESS_KEY")))
		parts = append(parts, "static="+hex.EncodeToString(sum[:]))
	}
	return cache.Key(parts...)
}

// call is what a request resolves to before any cache or AWS is touched.
type call struct {
	// reg is the registry whose token serves the request: the image's own,
	// or the ECR registry the operator mapped its host to.
	reg ecrhost.Registry
	// authHost keys the answer: the host the kubelet asked about, which is
	// where it will send the credentials.
	authHost string
	id       Identity
	// store is nil for per-pod identities: their tokens never touch the
	// disk, so that a later pod on another service account cannot get them.
	store *cache.Dir
	key   string
}

func (cfg *Config) resolve(req protocol.Request) (call, error) {
	reg, err := ecrhost.Parse(req.Image)
	if err != nil {
		return call{}, err
	}
	// A mapped host is answered with its ECR registry's token; the policy
	// then judges the registry whose token is handed out.
	authHost := reg.Host
	if rule, ok := cfg.RegistryMap.Lookup(reg.Host); ok {
		reg = rule.Target
	}
	if err := cfg.Hosts.Check(reg); err != nil {
		return call{}, err
	}
	id, err := IdentityFor(req, cfg.RoleAnnotations, cfg.Getenv)
	if err != nil {
		return call{}, err
	}
	c := call{reg: reg, authHost: authHost, id: id, store: cfg.Cache}
	if id.PerPod() {
		c.store = nil
	}
	if c.store != nil {
		c.key = CacheKey(reg, cfg.Getenv)
	}
	return c, nil
}

// fromCache answers from an entry that needs no AWS call: a fresh token, or
// a valid one while a recent refresh failure is backed off.
func (c call) fromCache(cfg *Config, req protocol.Request, have cache.Entry, haveOK bool) (protocol.Response, bool) {
	now := cfg.Now()
	switch {
	case !haveOK:
		return protocol.Response{}, false
	case have.Fresh(now):
		cfg.Logger.Debug("served from disk cache", "registry", c.reg.Host, "expiresAt", have.ExpiresAt)
		return respond(req, c.authHost, have, now), true
	case have.BackingOff(now):
		cfg.Logger.Debug("a recent refresh failed; serving the valid cached token without retrying yet", "retryAt", have.RetryAt)
		return respondStale(req, c.authHost, have, now), true
	}
	return protocol.Response{}, false
}

// Cached answers req from the disk cache alone, and reports false when the
// request needs AWS or is bad (Run then says why). It is Run's first step,
// exported so a caller can try it before paying for an AWS client.
func Cached(cfg Config, req protocol.Request) (protocol.Response, bool) {
	cfg.defaults()
	c, err := cfg.resolve(req)
	if err != nil || c.store == nil {
		return protocol.Response{}, false
	}
	have, haveOK := c.store.Get(c.key)
	return c.fromCache(&cfg, req, have, haveOK)
}

// Run answers one request.
func Run(ctx context.Context, cfg Config, req protocol.Request) (protocol.Response, error) {
	cfg.defaults()
	log := cfg.Logger
	c, err := cfg.resolve(req)
	if err != nil {
		return protocol.Response{}, err
	}
	reg, id, store, key := c.reg, c.id, c.store, c.key
	authHost := c.authHost
	log.Debug("request", "apiVersion", req.APIVersion, "image", req.Image, "answerFor", authHost, "registry", reg.Host, "kind", reg.Kind(), "perPodRole", id.RoleARN)

	var have cache.Entry
	var haveOK bool
	// unlocked is set when the lock was unavailable: writes still go to the
	// cache, but their failures are already explained by that one warning.
	unlocked := false
	if store != nil {
		have, haveOK = store.Get(key)
		if resp, ok := c.fromCache(&cfg, req, have, haveOK); ok {
			return resp, nil
		}
	}

	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()

	if store != nil {
		// With a valid token at hand, wait for another process's refresh no
		// longer than we would refresh ourselves: callers must not queue up
		// behind a hung ECR one refresh timeout after another.
		lockCtx := ctx
		if haveOK && have.Valid(cfg.Now()) {
			var c context.CancelFunc
			lockCtx, c = context.WithTimeout(ctx, cfg.RefreshTimeout)
			defer c()
		}
		lock, err := store.Lock(lockCtx, key)
		switch {
		case errors.Is(err, cache.ErrUnavailable):
			// The cache must never be why a pull fails: go on without the
			// lock (and so without single flight) and say so once.
			log.Warn("answering without the disk cache's lock; check the cache directory", "error", err)
			unlocked = true
		case err != nil:
			if haveOK && have.Valid(cfg.Now()) {
				log.Warn("serving the cached token: another process holds the refresh lock", "error", err, "expiresAt", have.ExpiresAt)
				return respondStale(req, authHost, have, cfg.Now()), nil
			}
			return protocol.Response{}, err
		default:
			defer lock.Unlock()
			// Whoever held the lock has probably just written a fresh entry,
			// or noted that its refresh failed.
			have, haveOK = store.Get(key)
			if resp, ok := c.fromCache(&cfg, req, have, haveOK); ok {
				return resp, nil
			}
		}
	}

	fetchCtx := ctx
	fallback := haveOK && have.Valid(cfg.Now())
	if fallback {
		var c context.CancelFunc
		fetchCtx, c = context.WithTimeout(ctx, cfg.RefreshTimeout)
		defer c()
	}
	start := cfg.Now()
	tok, err := cfg.Fetcher.Fetch(fetchCtx, reg, id)
	if err != nil {
		if reg.Public && errors.Is(err, ErrAccessDenied) {
			log.Warn("ECR Public token denied; answering with no credentials so the kubelet pulls anonymously", "error", err)
			resp := protocol.NewResponse(req)
			resp.CacheDuration = &protocol.Duration{Duration: DeniedCacheDuration}
			return resp, nil
		}
		if fallback {
			log.Warn("refreshing the token failed; serving the cached token, which is still valid", "error", err, "expiresAt", have.ExpiresAt)
			// Note the failure so that the next callers serve the valid token
			// at once instead of each retrying a failing ECR.
			have.RetryAt = cfg.Now().Add(RetryAfterFailure)
			if err := store.Put(have); err != nil && !unlocked {
				log.Warn("could not note the failed refresh in the disk cache", "error", err)
			}
			return respondStale(req, authHost, have, cfg.Now()), nil
		}
		return protocol.Response{}, err
	}
	entry := cache.Entry{Key: key, Registry: reg.Host, Username: tok.Username, Password: tok.Password, FetchedAt: start}
	life, plausible := Life(tok, start)
	if plausible {
		entry.ExpiresAt = start.Add(life)
	} else if !tok.ExpiresAt.IsZero() {
		log.Warn("the token's expiry is implausible; answering without caching it", "expiresAt", tok.ExpiresAt, "issuedAt", tok.IssuedAt)
	}
	if store != nil && plausible {
		if err := store.Put(entry); err != nil && !unlocked {
			log.Warn("could not write the disk cache; continuing without it", "error", err)
		}
	}
	log.Info("fetched a new token", "registry", reg.Host, "expiresAt", tok.ExpiresAt)
	return respond(req, authHost, entry, cfg.Now()), nil
}

// Life is how long a token lives, measured on AWS's clock: from its issue
// (the response's Date; the request's start, by the node's clock, when AWS
// sent none) to its expiry, capped at cache.MaxLife. An expiry at or before
// its issue is implausible: the token is served but neither cached nor kept
// by the kubelet.
func Life(tok Token, start time.Time) (time.Duration, bool) {
	issued := tok.IssuedAt
	if issued.IsZero() {
		issued = start
	}
	if tok.ExpiresAt.IsZero() {
		return 0, false
	}
	life := tok.ExpiresAt.Sub(issued)
	if life <= 0 {
		return 0, false
	}
	return min(life, cache.MaxLife), true
}

// respond answers with a token the kubelet may keep until the token is due
// for refresh, which is half its life: long before it expires, and never
// more than half of the longest life a token has.
func respond(req protocol.Request, authHost string, e cache.Entry, now time.Time) protocol.Response {
	var d time.Duration
	if !e.ExpiresAt.IsZero() {
		d = min(max(e.RefreshAt().Sub(now), 0), e.ExpiresAt.Sub(e.FetchedAt)/2)
	}
	return answer(req, authHost, e, d)
}

// respondStale answers with a token past its refresh point, for a short
// while only, so the kubelet comes back once AWS may have recovered.
func respondStale(req protocol.Request, authHost string, e cache.Entry, now time.Time) protocol.Response {
	return answer(req, authHost, e, min(StaleCacheDuration, e.ExpiresAt.Sub(now)/2))
}

func answer(req protocol.Request, authHost string, e cache.Entry, d time.Duration) protocol.Response {
	resp := protocol.NewResponse(req)
	resp.CacheDuration = &protocol.Duration{Duration: d.Truncate(time.Second)}
	resp.Auth = map[string]protocol.AuthConfig{authHost: {Username: e.Username, Password: e.Password}}
	return resp
}
