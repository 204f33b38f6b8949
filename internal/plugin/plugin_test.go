package plugin_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubecred/ecr-credential-provider/internal/cache"
	"github.com/kubecred/ecr-credential-provider/internal/ecrhost"
	"github.com/kubecred/ecr-credential-provider/internal/plugin"
	"github.com/kubecred/ecr-credential-provider/internal/protocol"
	"github.com/kubecred/ecr-credential-provider/internal/token"
)

const image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/app"

// fakeFetcher hands out numbered tokens, or fails, or blocks until the
// caller's context ends, and records what it was asked.
type fakeFetcher struct {
	mu       sync.Mutex
	calls    int
	ids      []plugin.Identity
	err      error
	hang     bool
	hold     time.Duration // keeps the lock held, so concurrent callers queue
	lifetime time.Duration
}

func (f *fakeFetcher) Fetch(ctx context.Context, reg ecrhost.Registry, id plugin.Identity) (plugin.Token, error) {
	f.mu.Lock()
	f.calls++
	n := f.calls
	f.ids = append(f.ids, id)
	err, hang, hold := f.err, f.hang, f.hold
	f.mu.Unlock()
	if hang {
		<-ctx.Done()
		return plugin.Token{}, token.Explain(ctx.Err(), "ecr:GetAuthorizationToken")
	}
	if hold > 0 {
		time.Sleep(hold)
	}
	if err != nil {
		return plugin.Token{}, err
	}
	life := f.lifetime
	if life == 0 {
		life = 12 * time.Hour
	}
	return plugin.Token{Username: "AWS", Password: fmt.Sprintf("pw-%d", n), ExpiresAt: time.Now().Add(life)}, nil
}

func (f *fakeFetcher) count() int { f.mu.Lock(); defer f.mu.Unlock(); return f.calls }

func noEnv(string) string { return "" }

func newCache(t *testing.T) *cache.Dir {
	t.Helper()
	d, err := cache.Open(filepath.Join(t.TempDir(), "cache"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func req(img string) protocol.Request {
	return protocol.Request{Kind: protocol.RequestKind, APIVersion: protocol.V1, Image: img}
}

func run(t *testing.T, cfg plugin.Config, r protocol.Request) protocol.Response {
	t.Helper()
	if cfg.Getenv == nil {
		cfg.Getenv = noEnv
	}
	resp, err := plugin.Run(context.Background(), cfg, r)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestColdThenWarm(t *testing.T) {
	f := &fakeFetcher{}
	cfg := plugin.Config{Cache: newCache(t), Fetcher: f}
	first := run(t, cfg, req(image))
	second := run(t, cfg, req(image+":v2"))
	if f.count() != 1 {
		t.Fatalf("fetches = %d, want 1 (second call must be a cache hit)", f.count())
	}
	a, b := first.Auth["123456789012.dkr.ecr.us-east-1.amazonaws.com"], second.Auth["123456789012.dkr.ecr.us-east-1.amazonaws.com"]
	if a.Password != "pw-1" || b.Password != "pw-1" {
		t.Fatalf("auth %v %v", first.Auth, second.Auth)
	}
	for _, r := range []protocol.Response{first, second} {
		if r.CacheKeyType != protocol.CacheKeyRegistry || r.APIVersion != protocol.V1 || r.Kind != protocol.ResponseKind {
			t.Fatalf("response header %+v", r)
		}
		if d := r.CacheDuration.Duration; d <= 5*time.Hour || d > 6*time.Hour {
			t.Fatalf("cacheDuration %v, want about half the 12h token life", d)
		}
	}
}

func TestAnswersInRequestVersionAndKeepsPort(t *testing.T) {
	for _, v := range protocol.Versions {
		r := req("123456789012.dkr.ecr.us-east-1.amazonaws.com:443/app")
		r.APIVersion = v
		resp := run(t, plugin.Config{Fetcher: &fakeFetcher{}}, r)
		if resp.APIVersion != v {
			t.Fatalf("answered %s to %s", resp.APIVersion, v)
		}
		if _, ok := resp.Auth["123456789012.dkr.ecr.us-east-1.amazonaws.com:443"]; !ok {
			t.Fatalf("auth keys %v: port dropped", resp.Auth)
		}
	}
}

// Concurrent cold callers share one fetch through the file lock.
func TestConcurrentColdCallsFetchOnce(t *testing.T) {
	f := &fakeFetcher{hold: 100 * time.Millisecond}
	dir := newCache(t)
	var wg sync.WaitGroup
	var failed atomic.Int32
	pw := make(chan string, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each caller opens the directory itself, as separate processes do.
			d, err := cache.Open(dir.Path())
			if err != nil {
				failed.Add(1)
				return
			}
			resp, err := plugin.Run(context.Background(), plugin.Config{Cache: d, Fetcher: f, Getenv: noEnv}, req(image))
			if err != nil {
				failed.Add(1)
				return
			}
			pw <- resp.Auth["123456789012.dkr.ecr.us-east-1.amazonaws.com"].Password
		}()
	}
	wg.Wait()
	close(pw)
	if failed.Load() != 0 || f.count() != 1 {
		t.Fatalf("failed=%d fetches=%d, want 0 and 1", failed.Load(), f.count())
	}
	for p := range pw {
		if p != "pw-1" {
			t.Fatalf("a caller got %q", p)
		}
	}
}

// plant writes an entry as if fetched age ago with the given lifetime.
func plant(t *testing.T, d *cache.Dir, age, life time.Duration) {
	t.Helper()
	reg, _ := ecrhost.Parse(image)
	fetched := time.Now().Add(-age)
	e := cache.Entry{Key: plugin.CacheKey(reg, noEnv), Registry: reg.Host, Username: "AWS", Password: "old", FetchedAt: fetched, ExpiresAt: fetched.Add(life)}
	if err := d.Put(e); err != nil {
		t.Fatal(err)
	}
}

func TestStaleFallback(t *testing.T) {
	tests := []struct {
		name      string
		fetcher   *fakeFetcher
		age       time.Duration
		wantPW    string
		wantErr   string
		wantCalls int
	}{
		{"refresh due, ECR fails: old token", &fakeFetcher{err: errors.New("ThrottlingException")}, 7 * time.Hour, "old", "", 1},
		{"refresh due, ECR hangs: old token", &fakeFetcher{hang: true}, 7 * time.Hour, "old", "", 1},
		{"refresh due, ECR works: new token", &fakeFetcher{}, 7 * time.Hour, "pw-1", "", 1},
		{"fresh: no call", &fakeFetcher{hang: true}, time.Hour, "old", "", 0},
		{"expired, ECR fails: error", &fakeFetcher{err: errors.New("boom")}, 13 * time.Hour, "", "boom", 1},
		{"expired, ECR hangs: deadline error", &fakeFetcher{hang: true}, 13 * time.Hour, "", "did not complete in time", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newCache(t)
			plant(t, d, tt.age, 12*time.Hour)
			cfg := plugin.Config{Cache: d, Fetcher: tt.fetcher, Getenv: noEnv, Timeout: 300 * time.Millisecond, RefreshTimeout: 100 * time.Millisecond}
			resp, err := plugin.Run(context.Background(), cfg, req(image))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			} else {
				got := resp.Auth["123456789012.dkr.ecr.us-east-1.amazonaws.com"]
				if got.Password != tt.wantPW {
					t.Fatalf("password %q, want %q", got.Password, tt.wantPW)
				}
				if tt.wantPW == "old" && tt.age > 6*time.Hour && resp.CacheDuration.Duration > plugin.StaleCacheDuration {
					t.Fatalf("stale token cached by the kubelet for %v", resp.CacheDuration.Duration)
				}
			}
			if tt.fetcher.count() != tt.wantCalls {
				t.Fatalf("fetches = %d, want %d", tt.fetcher.count(), tt.wantCalls)
			}
		})
	}
}

// The kubelet must never be told to keep a token past its expiry.
func TestCacheDurationNeverOutlivesToken(t *testing.T) {
	for _, life := range []time.Duration{time.Minute, time.Hour, 12 * time.Hour} {
		for _, frac := range []float64{0, 0.1, 0.49, 0.51, 0.9, 0.99} {
			d := newCache(t)
			age := time.Duration(float64(life) * frac)
			plant(t, d, age, life)
			cfg := plugin.Config{Cache: d, Fetcher: &fakeFetcher{err: errors.New("down")}, Getenv: noEnv}
			resp, err := plugin.Run(context.Background(), cfg, req(image))
			if err != nil {
				t.Fatal(err)
			}
			remaining := life - age
			if got := resp.CacheDuration.Duration; got > remaining || got < 0 {
				t.Fatalf("life %v age %v: cacheDuration %v outlives the token (%v left)", life, age, got, remaining)
			}
		}
	}
}

func TestPerPodRoleNeverTouchesDisk(t *testing.T) {
	f := &fakeFetcher{}
	d := newCache(t)
	cfg := plugin.Config{Cache: d, Fetcher: f, Getenv: noEnv}
	podA := req(image)
	podA.ServiceAccountToken = "token-a"
	podA.ServiceAccountAnnotations = map[string]string{plugin.DefaultRoleAnnotation: "arn:aws:iam::111111111111:role/a"}
	podB := podA
	podB.ServiceAccountToken = "token-b"
	podB.ServiceAccountAnnotations = map[string]string{plugin.DefaultRoleAnnotation: "arn:aws:iam::222222222222:role/b"}
	ra, rb := run(t, cfg, podA), run(t, cfg, podB)
	if f.count() != 2 {
		t.Fatalf("fetches = %d: pod B was served pod A's token", f.count())
	}
	if ra.Auth["123456789012.dkr.ecr.us-east-1.amazonaws.com"] == rb.Auth["123456789012.dkr.ecr.us-east-1.amazonaws.com"] {
		t.Fatal("two pods got the same credentials")
	}
	if f.ids[0].RoleARN != "arn:aws:iam::111111111111:role/a" || f.ids[0].WebIdentityToken != "token-a" || f.ids[1].RoleARN != "arn:aws:iam::222222222222:role/b" {
		t.Fatalf("identities %+v", f.ids)
	}
	files, _ := filepath.Glob(filepath.Join(d.Path(), "*.json"))
	if len(files) != 0 {
		t.Fatalf("per-pod token written to disk: %v", files)
	}
	// A pod without a role uses the node identity and the shared cache.
	nodePod := req(image)
	nodePod.ServiceAccountToken = "token-c"
	run(t, cfg, nodePod)
	if f.ids[2].PerPod() {
		t.Fatal("no role named, yet a per-pod identity was used")
	}
}

func TestIdentity(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	role := "arn:aws:iam::123456789012:role/puller"
	tests := []struct {
		name     string
		req      protocol.Request
		anns     []string
		env      map[string]string
		wantRole string
		wantErr  bool
	}{
		{"no token", protocol.Request{}, nil, map[string]string{plugin.RoleEnv: role}, "", false},
		{"token, no role", protocol.Request{ServiceAccountToken: "t"}, nil, nil, "", false},
		{"default annotation", protocol.Request{ServiceAccountToken: "t", ServiceAccountAnnotations: map[string]string{plugin.DefaultRoleAnnotation: role}}, []string{plugin.DefaultRoleAnnotation}, nil, role, false},
		{"custom annotation", protocol.Request{ServiceAccountToken: "t", ServiceAccountAnnotations: map[string]string{"example.com/role": role}}, []string{plugin.DefaultRoleAnnotation, "example.com/role"}, nil, role, false},
		{"env fallback", protocol.Request{ServiceAccountToken: "t"}, []string{plugin.DefaultRoleAnnotation}, map[string]string{plugin.RoleEnv: role}, role, false},
		{"gov partition", protocol.Request{ServiceAccountToken: "t", ServiceAccountAnnotations: map[string]string{plugin.DefaultRoleAnnotation: "arn:aws-us-gov:iam::123456789012:role/x"}}, []string{plugin.DefaultRoleAnnotation}, nil, "arn:aws-us-gov:iam::123456789012:role/x", false},
		{"not a role", protocol.Request{ServiceAccountToken: "t", ServiceAccountAnnotations: map[string]string{plugin.DefaultRoleAnnotation: "arn:aws:iam::123456789012:user/bob"}}, []string{plugin.DefaultRoleAnnotation}, nil, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := plugin.IdentityFor(tt.req, tt.anns, env(tt.env))
			if (err != nil) != tt.wantErr || id.RoleARN != tt.wantRole {
				t.Fatalf("id %+v err %v", id, err)
			}
			if err != nil && strings.Contains(err.Error(), "user/bob") {
				t.Fatal("error echoes the annotation value")
			}
		})
	}
}

func TestPublicDeniedAnswersAnonymously(t *testing.T) {
	f := &fakeFetcher{err: fmt.Errorf("wrapped: %w", plugin.ErrAccessDenied)}
	resp := run(t, plugin.Config{Cache: newCache(t), Fetcher: f}, req("public.ecr.aws/nginx/nginx"))
	if len(resp.Auth) != 0 || resp.CacheDuration == nil || resp.CacheDuration.Duration != plugin.DeniedCacheDuration {
		t.Fatalf("response %+v", resp)
	}
	// A private registry's denial is an error, not an anonymous pull.
	if _, err := plugin.Run(context.Background(), plugin.Config{Fetcher: f, Getenv: noEnv}, req(image)); err == nil {
		t.Fatal("private denial answered")
	}
}

func TestCacheKeySeparatesIdentitiesAndEndpoints(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	parse := func(s string) ecrhost.Registry { r, _ := ecrhost.Parse(s); return r }
	base := plugin.CacheKey(parse(image), noEnv)
	differs := map[string]string{
		"other region": plugin.CacheKey(parse("123456789012.dkr.ecr.us-west-2.amazonaws.com/app"), noEnv),
		"fips":         plugin.CacheKey(parse("123456789012.dkr.ecr-fips.us-east-1.amazonaws.com/app"), noEnv),
		"dual-stack":   plugin.CacheKey(parse("123456789012.dkr-ecr.us-east-1.on.aws/app"), noEnv),
		"profile":      plugin.CacheKey(parse(image), env(map[string]string{"AWS_PROFILE": "prod"})),
		"static key":   plugin.CacheKey(parse(image), env(map[string]string{"AWS_ACCESS_KEY_ID": "AKIA1", "AWS_SECRET_ACCESS_KEY": "s"})),
		"rotated key":  plugin.CacheKey(parse(image), env(map[string]string{"AWS_ACCESS_KEY_ID": "AKIA1", "AWS_SECRET_ACCESS_KEY": "s2"})),
		"web identity": plugin.CacheKey(parse(image), env(map[string]string{"AWS_ROLE_ARN": "arn:aws:iam::1:role/x", "AWS_WEB_IDENTITY_TOKEN_FILE": "/t"})),
		"endpoint":     plugin.CacheKey(parse(image), env(map[string]string{"AWS_ENDPOINT_URL_ECR": "http://127.0.0.1:1"})),
	}
	seen := map[string]string{base: "base"}
	for name, k := range differs {
		if other, dup := seen[k]; dup {
			t.Errorf("%s shares a cache key with %s", name, other)
		}
		seen[k] = name
	}
	if plugin.CacheKey(parse(image+":tag"), noEnv) != base || plugin.CacheKey(parse("123456789012.dkr.ecr.us-east-1.amazonaws.com/other"), noEnv) != base {
		t.Error("repositories of one registry should share the token")
	}
	if plugin.CacheKey(parse("210987654321.dkr.ecr.us-east-1.amazonaws.com/app"), noEnv) != base {
		t.Error("registries of one region should share the node's token, whatever their account")
	}
}

func TestBadImageIsAnError(t *testing.T) {
	_, err := plugin.Run(context.Background(), plugin.Config{Fetcher: &fakeFetcher{}, Getenv: noEnv}, req("https://"))
	if err == nil {
		t.Fatal("accepted")
	}
}

// With a valid token at hand, callers must not queue behind a hung refresh:
// one process tries, the rest serve the cached token, and the failure is
// remembered so the next caller doesn't try again at once.
func TestHungRefreshIsTriedOnce(t *testing.T) {
	d := newCache(t)
	plant(t, d, 7*time.Hour, 12*time.Hour)
	f := &fakeFetcher{hang: true}
	var wg sync.WaitGroup
	var bad atomic.Int32
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dir, _ := cache.Open(d.Path())
			resp, err := plugin.Run(context.Background(), plugin.Config{Cache: dir, Fetcher: f, Getenv: noEnv, RefreshTimeout: 300 * time.Millisecond}, req(image))
			if err != nil || resp.Auth["123456789012.dkr.ecr.us-east-1.amazonaws.com"].Password != "old" {
				bad.Add(1)
			}
		}()
	}
	wg.Wait()
	if bad.Load() != 0 || f.count() != 1 {
		t.Fatalf("%d callers failed, %d fetches; want 0 and 1", bad.Load(), f.count())
	}
	run(t, plugin.Config{Cache: d, Fetcher: f}, req(image))
	if f.count() != 1 {
		t.Fatal("a caller right after the failed refresh tried again")
	}
}

// Cached must answer exactly when Run would answer without calling AWS, and
// with the same response.
func TestCachedAnswersOnlyWhatNeedsNoAWS(t *testing.T) {
	perPod := req(image)
	perPod.ServiceAccountToken = "sa-token"
	perPod.ServiceAccountAnnotations = map[string]string{plugin.DefaultRoleAnnotation: "arn:aws:iam::123456789012:role/puller"}
	tests := []struct {
		name      string
		age       time.Duration // of the planted entry; 0 plants none
		backedOff bool          // a refresh failed a moment ago
		req       protocol.Request
		want      bool
	}{
		{"no entry", 0, false, req(image), false},
		{"fresh", time.Hour, false, req(image), true},
		{"another repo in the same registry", time.Hour, false, req(image + "-other:v1"), true},
		{"refresh due", 7 * time.Hour, false, req(image), false},
		{"refresh due, backing off after a failure", 7 * time.Hour, true, req(image), true},
		{"expired", 13 * time.Hour, false, req(image), false},
		{"per-pod role never reads the disk", time.Hour, false, perPod, false},
		{"bad image", time.Hour, false, req("no-such-host/x:1::"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newCache(t)
			if tt.age > 0 {
				plant(t, d, tt.age, 12*time.Hour)
			}
			if tt.backedOff {
				reg, _ := ecrhost.Parse(image)
				e, _ := d.Get(plugin.CacheKey(reg, noEnv))
				e.RetryAt = time.Now().Add(plugin.RetryAfterFailure)
				if err := d.Put(e); err != nil {
					t.Fatal(err)
				}
			}
			now := time.Now()
			cfg := plugin.Config{Cache: d, Getenv: noEnv, Now: func() time.Time { return now }}
			got, ok := plugin.Cached(cfg, tt.req)
			if ok != tt.want {
				t.Fatalf("Cached answered %v, want %v", ok, tt.want)
			}
			if !ok {
				return
			}
			// Run with a fetcher that fails must give the same answer.
			cfg.Fetcher = &fakeFetcher{err: errors.New("AWS must not be called")}
			want, err := plugin.Run(context.Background(), cfg, tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) || got.Auth["123456789012.dkr.ecr.us-east-1.amazonaws.com"].Password != "old" {
				t.Fatalf("Cached %+v, Run %+v", got, want)
			}
		})
	}
}

// roleARNPattern is what IAM role ARNs are checked against; the plugin
// spells it out by hand to keep regexp out of the cache-hit path.
var roleARNPattern = regexp.MustCompile(`^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$`)

func roleAccepted(arn string) bool {
	r := req(image)
	r.ServiceAccountToken = "t"
	r.ServiceAccountAnnotations = map[string]string{plugin.DefaultRoleAnnotation: arn}
	_, err := plugin.IdentityFor(r, []string{plugin.DefaultRoleAnnotation}, noEnv)
	return err == nil
}

func TestRoleARNCheckMatchesPattern(t *testing.T) {
	for _, arn := range []string{
		"arn:aws:iam::123456789012:role/puller",
		"arn:aws-cn:iam::123456789012:role/a/b/c",
		"arn:aws-us-gov:iam::123456789012:role/x+=,.@-_",
		"arn:aws:iam::123456789012:role/",
		"arn:aws:iam::12345678901:role/x",
		"arn:aws:iam::1234567890123:role/x",
		"arn:aws:iam::123456789012:user/bob",
		"arn:aws:iam::123456789012:role/x y",
		"arn:aws:iam::123456789012:role/é",
		"arn:AWS:iam::123456789012:role/x",
		"arn:aws1:iam::123456789012:role/x",
		"arn:aws:sts::123456789012:role/x",
		"arn:aws:iam:us-east-1:123456789012:role/x",
		"arn:aws:iam::123456789012:role/" + strings.Repeat("a", 512),
		"arn:aws:iam::123456789012:role/" + strings.Repeat("a", 513),
		"arn:aws:iam::123456789012:role/x\n",
		"xarn:aws:iam::123456789012:role/x",
	} {
		if got, want := roleAccepted(arn), roleARNPattern.MatchString(arn); got != want {
			t.Errorf("%q: accepted %v, pattern says %v", arn, got, want)
		}
	}
}

func FuzzRoleARNCheck(f *testing.F) {
	f.Add("arn:aws:iam::123456789012:role/puller")
	f.Add("arn:aws-us-gov:iam::123456789012:role/a/b")
	f.Fuzz(func(t *testing.T, arn string) {
		if arn == "" {
			return // no role at all: the node's identity, not an error
		}
		if got, want := roleAccepted(arn), roleARNPattern.MatchString(arn); got != want {
			t.Fatalf("%q: accepted %v, pattern says %v", arn, got, want)
		}
	})
}

func TestParseFlags(t *testing.T) {
	env := map[string]string{plugin.EnvCacheDir: "/env/cache", plugin.EnvTimeout: "9s", plugin.EnvLogLevel: "1"}
	getenv := func(k string) string { return env[k] }
	tests := []struct {
		name    string
		args    []string
		want    plugin.Flags
		wantErr string
	}{
		{"env defaults", nil, plugin.Flags{Verbosity: 1, CacheDir: "/env/cache", Timeout: 9 * time.Second, RefreshTimeout: 5 * time.Second}, ""},
		{"flags beat env, get-credentials anywhere", []string{"--cache-dir=/x", "get-credentials", "-v", "2", "--timeout", "3s"},
			plugin.Flags{Verbosity: 2, CacheDir: "/x", Timeout: 3 * time.Second, RefreshTimeout: 5 * time.Second}, ""},
		{"role annotations, repeated and comma-separated", []string{"--role-annotation", "a, b", "--role-annotation=c"},
			plugin.Flags{Verbosity: 1, CacheDir: "/env/cache", Timeout: 9 * time.Second, RefreshTimeout: 5 * time.Second, RoleAnnotations: []string{"a", "b", "c"}}, ""},
		{"subcommand is not a plugin call", []string{"install"}, plugin.Flags{}, `unexpected argument "install"`},
		{"unknown flag", []string{"--nope"}, plugin.Flags{}, "flag provided but not defined: -nope (run 'ecr-credential-provider help')"},
		{"bad timeout says what it wants", []string{"--timeout", "abc"}, plugin.Flags{}, `invalid value "abc" for flag -timeout: want a duration such as 20s`},
		{"bad refresh timeout says what it wants", []string{"--refresh-timeout=5"}, plugin.Flags{}, `invalid value "5" for flag -refresh-timeout: want a duration such as 20s`},
		{"bad verbosity says what it wants", []string{"-v", "debug"}, plugin.Flags{}, `invalid value "debug" for flag -v: want 0, 1 or 2`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			got, err := plugin.ParseFlags(tt.args, getenv, &out)
			if tt.wantErr != "" {
				// One line, named for the kubelet's log.
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || out.String() != "ecr-credential-provider: "+err.Error()+"\n" {
					t.Fatalf("err %v, output %q; want an error %q, reported on one line", err, out.String(), tt.wantErr)
				}
				return
			}
			if err != nil || fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}
