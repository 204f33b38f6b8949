// Package plugin answers one kubelet CredentialProviderRequest: it picks the
// identity and endpoint for the image, serves a token from the node's disk
// cache when one is fresh, lets one process at a time fetch a new one, and
// falls back to a still-valid token when AWS is slow or failing.
package plugin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"time"

	"github.com/kubecred/ecr-credential-provider/internal/cache"
	"github.com/kubecred/ecr-credential-provider/internal/ecrhost"
	"github.com/kubecred/ecr-credential-provider/internal/protocol"
	"github.com/kubecred/ecr-credential-provider/internal/token"
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

// Fetcher gets a token from AWS.
type Fetcher interface {
	Fetch(ctx context.Context, reg ecrhost.Registry, id token.Identity) (token.Token, error)
}

// Config is what a plugin run needs from its environment.
type Config struct {
	// Cache is the node's disk cache; nil runs without one.
	Cache *cache.Dir
	// Timeout bounds the whole run, kept well inside the kubelet's 60s kill.
	Timeout time.Duration
	// RefreshTimeout bounds a refresh when a valid token is already at hand.
	RefreshTimeout time.Duration
	// RoleAnnotations are the service account annotation keys that may name
	// a per-pod role, first match wins.
	RoleAnnotations []string
	Getenv          func(string) string
	Now             func() time.Time
	Logger          *slog.Logger
	Fetcher         Fetcher
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

// roleARN is compiled on first use: only per-pod requests need it, and a
// package-level regexp would cost every cache hit its compile time.
var roleARN = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$`)
})

// Identity picks whose credentials serve the request: a per-pod role when
// the request carries a service account token and a role is named, else the
// node's own.
func Identity(req protocol.Request, annotations []string, getenv func(string) string) (token.Identity, error) {
	if req.ServiceAccountToken == "" {
		return token.Identity{}, nil
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
		return token.Identity{}, nil
	}
	if !roleARN().MatchString(role) {
		return token.Identity{}, fmt.Errorf("%s is not an IAM role ARN (want arn:aws:iam::<account>:role/<name>)", source)
	}
	return token.Identity{RoleARN: role, WebIdentityToken: req.ServiceAccountToken}, nil
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
	parts := []string{"v1", reg.Kind(), reg.Partition, reg.Region, reg.Account}
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

// Run answers one request.
func Run(ctx context.Context, cfg Config, req protocol.Request) (protocol.Response, error) {
	cfg.defaults()
	log := cfg.Logger
	reg, err := ecrhost.Parse(req.Image)
	if err != nil {
		return protocol.Response{}, err
	}
	id, err := Identity(req, cfg.RoleAnnotations, cfg.Getenv)
	if err != nil {
		return protocol.Response{}, err
	}
	log.Debug("request", "apiVersion", req.APIVersion, "image", req.Image, "registry", reg.Host, "kind", reg.Kind(), "perPodRole", id.RoleARN)

	// Per-pod tokens never touch the disk: a later pod on another service
	// account must not be able to receive them.
	store := cfg.Cache
	if id.PerPod() {
		store = nil
	}
	var key string
	var have cache.Entry
	var haveOK bool
	if store != nil {
		key = CacheKey(reg, cfg.Getenv)
		if have, haveOK = store.Get(key); haveOK && have.Fresh(cfg.Now()) {
			log.Debug("served from disk cache", "registry", reg.Host, "expiresAt", have.ExpiresAt)
			return respond(req, reg, have, cfg.Now()), nil
		}
		if haveOK && have.BackingOff(cfg.Now()) {
			log.Debug("a recent refresh failed; serving the valid cached token without retrying yet", "retryAt", have.RetryAt)
			return respondStale(req, reg, have, cfg.Now()), nil
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
		if err != nil {
			if haveOK && have.Valid(cfg.Now()) {
				log.Warn("serving the cached token: another process holds the refresh lock", "error", err, "expiresAt", have.ExpiresAt)
				return respondStale(req, reg, have, cfg.Now()), nil
			}
			return protocol.Response{}, err
		}
		defer lock.Unlock()
		// Whoever held the lock has probably just written a fresh entry, or
		// noted that its refresh failed.
		if have, haveOK = store.Get(key); haveOK && have.Fresh(cfg.Now()) {
			log.Debug("served from disk cache after waiting for the lock", "registry", reg.Host)
			return respond(req, reg, have, cfg.Now()), nil
		}
		if haveOK && have.BackingOff(cfg.Now()) {
			return respondStale(req, reg, have, cfg.Now()), nil
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
		if reg.Public && errors.Is(err, token.ErrAccessDenied) {
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
			if err := store.Put(have); err != nil {
				log.Warn("could not note the failed refresh in the disk cache", "error", err)
			}
			return respondStale(req, reg, have, cfg.Now()), nil
		}
		return protocol.Response{}, err
	}
	entry := cache.Entry{Key: key, Registry: reg.Host, Username: tok.Username, Password: tok.Password, FetchedAt: start, ExpiresAt: tok.ExpiresAt}
	if store != nil && !tok.ExpiresAt.IsZero() {
		if err := store.Put(entry); err != nil {
			log.Warn("could not write the disk cache; continuing without it", "error", err)
		}
	}
	log.Info("fetched a new token", "registry", reg.Host, "expiresAt", tok.ExpiresAt)
	return respond(req, reg, entry, cfg.Now()), nil
}

// respond answers with a token the kubelet may keep until the token is due
// for refresh, which is half its life: long before it expires.
func respond(req protocol.Request, reg ecrhost.Registry, e cache.Entry, now time.Time) protocol.Response {
	var d time.Duration
	if !e.ExpiresAt.IsZero() {
		d = max(e.RefreshAt().Sub(now), 0)
	}
	return answer(req, reg, e, d)
}

// respondStale answers with a token past its refresh point, for a short
// while only, so the kubelet comes back once AWS may have recovered.
func respondStale(req protocol.Request, reg ecrhost.Registry, e cache.Entry, now time.Time) protocol.Response {
	return answer(req, reg, e, min(StaleCacheDuration, e.ExpiresAt.Sub(now)/2))
}

func answer(req protocol.Request, reg ecrhost.Registry, e cache.Entry, d time.Duration) protocol.Response {
	resp := protocol.NewResponse(req)
	resp.CacheDuration = &protocol.Duration{Duration: d.Truncate(time.Second)}
	resp.Auth = map[string]protocol.AuthConfig{reg.Host: {Username: e.Username, Password: e.Password}}
	return resp
}
