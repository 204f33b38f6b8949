// Package credentials keeps the current ECR token of each configured
// registry and decides when to fetch the next one: at half the token's life,
// and after a failure with exponential backoff that stays inside the current
// token's validity.
package credentials

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"k8s.io/utils/clock"

	"github.com/kubecred/ecr-credential-provider/internal/ecrhost"
	"github.com/kubecred/ecr-credential-provider/internal/plugin"
	"github.com/kubecred/ecr-credential-provider/internal/token"
)

// Source fetches a registry's token. The AWS implementation is AWS; tests
// put a fake behind it.
type Source interface {
	Fetch(ctx context.Context, reg ecrhost.Registry) (plugin.Token, error)
}

// AWS fetches tokens through aws-sdk-go-v2 with the default credential
// chain (IRSA, Pod Identity, container credentials, profiles, IMDS).
type AWS struct{ Fetcher *token.Fetcher }

// Fetch implements Source with the process's own AWS identity.
func (a AWS) Fetch(ctx context.Context, reg ecrhost.Registry) (plugin.Token, error) {
	return a.Fetcher.Fetch(ctx, reg, plugin.Identity{})
}

// ParseRegistry reads one configured registry: a host such as
// 123456789012.dkr.ecr.eu-west-1.amazonaws.com or public.ecr.aws.
func ParseRegistry(host string) (ecrhost.Registry, error) {
	host = strings.TrimSpace(host)
	if host == "" || strings.ContainsAny(host, "/@ ") {
		return ecrhost.Registry{}, fmt.Errorf("registry %q: want a registry host such as 123456789012.dkr.ecr.us-east-1.amazonaws.com or public.ecr.aws, without a path", host)
	}
	reg, err := ecrhost.Parse(host + "/x")
	if err != nil {
		return ecrhost.Registry{}, fmt.Errorf("registry %q: %w", host, err)
	}
	return reg, nil
}

// Options tune the schedule. The zero value is usable.
type Options struct {
	// MinRetry is the first retry's delay after a failure. Default 10s.
	MinRetry time.Duration
	// MaxRetry caps the retry delay. Default 5m.
	MaxRetry time.Duration
	// AssumedLifetime is used for a token that names no expiry. Default 12h,
	// ECR's token life.
	AssumedLifetime time.Duration
	// FetchTimeout bounds one fetch. Default 1m.
	FetchTimeout time.Duration
	Clock        clock.PassiveClock
}

// Store holds the tokens. Its methods are safe for concurrent use.
type Store struct {
	src  Source
	opts Options
	regs []ecrhost.Registry

	mu    sync.Mutex
	state map[string]*entry
}

type entry struct {
	tok      plugin.Token
	have     bool
	next     time.Time
	failures int
}

// New returns a Store for the registries; every registry is due at once.
func New(src Source, regs []ecrhost.Registry, opts Options) *Store {
	if opts.MinRetry <= 0 {
		opts.MinRetry = 10 * time.Second
	}
	if opts.MaxRetry < opts.MinRetry {
		opts.MaxRetry = max(5*time.Minute, opts.MinRetry)
	}
	if opts.AssumedLifetime <= 0 {
		opts.AssumedLifetime = 12 * time.Hour
	}
	if opts.FetchTimeout <= 0 {
		opts.FetchTimeout = time.Minute
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	s := &Store{src: src, opts: opts, regs: regs, state: map[string]*entry{}}
	for _, r := range regs {
		s.state[r.Host] = &entry{}
	}
	return s
}

// Result is the outcome of one fetch.
type Result struct {
	Registry string
	// Err is why the fetch failed; nil on success.
	Err error
	// Changed is true when a fetch brought a token different from the one
	// held before.
	Changed bool
	// ExpiresAt is when the token the Store now holds expires (zero if none).
	ExpiresAt time.Time
	// Next is when the registry is due again.
	Next time.Time
}

// RefreshDue fetches a token for every registry that is due and returns what
// happened, and when the next registry is due.
func (s *Store) RefreshDue(ctx context.Context) ([]Result, time.Time) {
	var results []Result
	for _, reg := range s.regs {
		s.mu.Lock()
		due := !s.opts.Clock.Now().Before(s.state[reg.Host].next)
		s.mu.Unlock()
		if !due {
			continue
		}
		fctx, cancel := context.WithTimeout(ctx, s.opts.FetchTimeout)
		tok, err := s.src.Fetch(fctx, reg)
		cancel()
		if ctx.Err() != nil {
			break
		}
		results = append(results, s.record(reg.Host, tok, err))
	}
	return results, s.NextDue()
}

func (s *Store) record(host string, tok plugin.Token, err error) Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.state[host]
	now := s.opts.Clock.Now()
	r := Result{Registry: host, Err: err}
	if err == nil {
		if tok.ExpiresAt.IsZero() {
			tok.ExpiresAt = now.Add(s.opts.AssumedLifetime)
		}
		r.Changed = !e.have || tok != e.tok
		e.tok, e.have, e.failures = tok, true, 0
		e.next = now.Add(max(tok.ExpiresAt.Sub(now)/2, s.opts.MinRetry))
	} else {
		e.failures++
		delay := s.opts.MinRetry
		for i := 1; i < e.failures && delay < s.opts.MaxRetry; i++ {
			delay *= 2
		}
		delay = min(delay, s.opts.MaxRetry)
		// While the held token is valid, retry at least twice more before
		// it expires: the Secret keeps working only until then.
		if left := e.tok.ExpiresAt.Sub(now); e.have && left > 0 {
			delay = min(delay, max(left/2, s.opts.MinRetry))
		}
		e.next = now.Add(delay)
	}
	if e.have {
		r.ExpiresAt = e.tok.ExpiresAt
	}
	r.Next = e.next
	return r
}

// NextDue is when the earliest registry is due.
func (s *Store) NextDue() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	var next time.Time
	for i, r := range s.regs {
		if n := s.state[r.Host].next; i == 0 || n.Before(next) {
			next = n
		}
	}
	return next
}

// Tokens returns the token held for each registry that has one, keyed by
// registry host. An expired token stays until a fetch replaces it: the
// Secret is left as it is rather than emptied.
func (s *Store) Tokens() map[string]plugin.Token {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]plugin.Token, len(s.state))
	for host, e := range s.state {
		if e.have {
			out[host] = e.tok
		}
	}
	return out
}

// Expiries returns when each held token expires, keyed by registry host.
func (s *Store) Expiries() map[string]time.Time {
	out := map[string]time.Time{}
	for host, t := range s.Tokens() {
		out[host] = t.ExpiresAt
	}
	return out
}

// Reason classifies a fetch error for metrics: access_denied, timeout or error.
func Reason(err error) string {
	switch {
	case errors.Is(err, plugin.ErrAccessDenied):
		return "access_denied"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	default:
		return "error"
	}
}
