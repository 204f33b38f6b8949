package credentials

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	testclock "k8s.io/utils/clock/testing"

	"github.com/kubecred/ecr-credential-provider/internal/ecrhost"
	"github.com/kubecred/ecr-credential-provider/internal/plugin"
)

type scripted struct {
	clk   *testclock.FakeClock
	life  time.Duration
	fail  error
	calls int
}

func (s *scripted) Fetch(_ context.Context, reg ecrhost.Registry) (plugin.Token, error) {
	s.calls++
	if s.fail != nil {
		return plugin.Token{}, s.fail
	}
	return plugin.Token{Username: "AWS", Password: fmt.Sprintf("p%d", s.calls), ExpiresAt: s.clk.Now().Add(s.life)}, nil
}

func mustReg(t *testing.T, host string) ecrhost.Registry {
	t.Helper()
	r, err := ParseRegistry(host)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRefreshAtHalfLifeAndBackoffWhileValid(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := testclock.NewFakeClock(t0)
	src := &scripted{clk: clk, life: 12 * time.Hour}
	host := "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
	s := New(src, []ecrhost.Registry{mustReg(t, host)}, Options{Clock: clk, MinRetry: 10 * time.Second, MaxRetry: 5 * time.Minute})

	res, next := s.RefreshDue(context.Background())
	if len(res) != 1 || res[0].Err != nil || !res[0].Changed {
		t.Fatalf("first fetch: %+v", res)
	}
	if want := t0.Add(6 * time.Hour); !next.Equal(want) {
		t.Fatalf("next refresh at %s, want half the 12h life: %s", next, want)
	}
	// Not due yet: no call.
	clk.SetTime(next.Add(-time.Second))
	if res, _ := s.RefreshDue(context.Background()); len(res) != 0 || src.calls != 1 {
		t.Fatalf("fetched before due: %+v, %d calls", res, src.calls)
	}

	src.fail = errors.New("ecr:GetAuthorizationToken denied")
	clk.SetTime(next)
	expires := t0.Add(12 * time.Hour)
	var delays []time.Duration
	for clk.Now().Before(expires.Add(20 * time.Minute)) {
		res, n := s.RefreshDue(context.Background())
		if len(res) != 1 || res[0].Err == nil {
			t.Fatalf("at %s: %+v", clk.Now(), res)
		}
		if !res[0].ExpiresAt.Equal(expires) {
			t.Fatalf("the held token's expiry changed after a failure: %s", res[0].ExpiresAt)
		}
		delays = append(delays, n.Sub(clk.Now()))
		clk.SetTime(n)
	}
	// Exponential from MinRetry, capped at MaxRetry...
	for i, want := range []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second, 5 * time.Minute, 5 * time.Minute} {
		if delays[i] != want {
			t.Fatalf("retry %d after %s, want %s (all: %v)", i, delays[i], want, delays)
		}
	}
	// ...and at the cap once the held token has expired: still trying,
	// since a fix in IAM should heal the Secret without a restart.
	at := t0.Add(6 * time.Hour)
	afterExpiry := 0
	for _, d := range delays {
		if !at.Before(expires) {
			afterExpiry++
			if d != 5*time.Minute {
				t.Fatalf("after expiry a retry came after %s, want the 5m cap", d)
			}
		}
		at = at.Add(d)
	}
	if afterExpiry == 0 {
		t.Fatal("the loop never got past the token's expiry")
	}
	if got := s.Tokens()[host].Password; got != "p1" {
		t.Fatalf("failures dropped the held token: %q", got)
	}

	// Near expiry the delay is at most half the remaining life.
	s2 := New(src, []ecrhost.Registry{mustReg(t, host)}, Options{Clock: clk, MinRetry: 10 * time.Second, MaxRetry: time.Hour})
	src.fail = nil
	s2.RefreshDue(context.Background())
	src.fail = errors.New("down")
	for range 10 {
		s2.record(host, plugin.Token{}, src.fail) // push the backoff to its cap
	}
	clk.Step(12*time.Hour - 4*time.Minute)
	r := s2.record(host, plugin.Token{}, src.fail)
	if d := r.Next.Sub(clk.Now()); d != 2*time.Minute {
		t.Fatalf("4m before expiry the retry came after %s, want 2m (half the remaining life)", d)
	}

	// Recovery: the next success resets the schedule to half the new life.
	src.fail = nil
	clk.SetTime(s.NextDue())
	res, next = s.RefreshDue(context.Background())
	if res[0].Err != nil || !res[0].Changed || !next.Equal(clk.Now().Add(6*time.Hour)) {
		t.Fatalf("after recovery: %+v next %s", res, next)
	}
}

func TestTokenWithoutExpiryAssumesECRLife(t *testing.T) {
	clk := testclock.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	src := &scripted{clk: clk, life: 0}
	noExpiry := SourceFunc(func(ctx context.Context, reg ecrhost.Registry) (plugin.Token, error) {
		t, err := src.Fetch(ctx, reg)
		t.ExpiresAt = time.Time{}
		return t, err
	})
	s := New(noExpiry, []ecrhost.Registry{mustReg(t, "public.ecr.aws")}, Options{Clock: clk})
	_, next := s.RefreshDue(context.Background())
	if want := clk.Now().Add(6 * time.Hour); !next.Equal(want) {
		t.Fatalf("next %s want %s", next, want)
	}
}

// SourceFunc adapts a function to Source.
type SourceFunc func(context.Context, ecrhost.Registry) (plugin.Token, error)

func (f SourceFunc) Fetch(ctx context.Context, r ecrhost.Registry) (plugin.Token, error) {
	return f(ctx, r)
}

func TestParseRegistry(t *testing.T) {
	for host, want := range map[string]string{
		"123456789012.dkr.ecr.us-east-1.amazonaws.com":          "aws",
		"123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com": "aws-us-gov",
		"123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn":      "aws-cn",
		"123456789012.dkr-ecr.eu-west-1.on.aws":                 "aws",
		"public.ecr.aws":                                        "aws",
	} {
		r, err := ParseRegistry(host)
		if err != nil || !r.ECR || r.Partition != want || r.Host != host {
			t.Errorf("%s: %+v %v", host, r, err)
		}
	}
	for _, bad := range []string{"", "123456789012.dkr.ecr.us-east-1.amazonaws.com/app", "user@host", "a b"} {
		if _, err := ParseRegistry(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
