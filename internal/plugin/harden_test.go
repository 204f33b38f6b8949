//go:build unix

package plugin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kubecred/ecr-credential-provider/internal/cache"
	"github.com/kubecred/ecr-credential-provider/internal/ecrhost"
	"github.com/kubecred/ecr-credential-provider/internal/plugin"
)

// lockPath is where the entry for image keeps its lock.
func lockPath(t *testing.T, dir string) string {
	t.Helper()
	reg, err := ecrhost.Parse(image)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, plugin.CacheKey(reg, noEnv)+".lock")
}

func plantNonRegular(t *testing.T, kind, p string) {
	t.Helper()
	var err error
	switch kind {
	case "directory":
		err = os.Mkdir(p, 0o700)
	case "symlink":
		err = os.Symlink("/etc/ecp-test-never-created", p)
	case "fifo":
		err = syscall.Mkfifo(p, 0o600)
	case "socket":
		var l net.Listener
		if l, err = net.Listen("unix", p); err == nil {
			t.Cleanup(func() { l.Close() })
		}
	}
	if err != nil {
		t.Fatal(err)
	}
}

func shortCache(t *testing.T) *cache.Dir {
	t.Helper()
	base, err := os.MkdirTemp("", "ecp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	d, err := cache.Open(filepath.Join(base, "c"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// syncBuffer is a log sink safe for the logger's use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Split(strings.TrimSpace(s.b.String()), "\n")
}

// An unusable lock never fails the call: the plugin answers without the
// cache, still refreshes a due entry, and says so in one warning line that
// does not blame another process.
func TestUnusableLockNeverFailsTheCall(t *testing.T) {
	host := "123456789012.dkr.ecr.us-east-1.amazonaws.com"
	for _, kind := range []string{"directory", "symlink", "fifo", "socket"} {
		for _, tc := range []struct {
			name    string
			age     time.Duration // of a planted entry; 0: none
			fetcher *fakeFetcher
			wantPW  string
		}{
			{"no entry", 0, &fakeFetcher{}, "pw-1"},
			{"due entry refreshed", 7 * time.Hour, &fakeFetcher{}, "pw-1"},
			{"due entry, ECR failing", 7 * time.Hour, &fakeFetcher{err: errors.New("ThrottlingException")}, "old"},
		} {
			t.Run(kind+"/"+tc.name, func(t *testing.T) {
				d := newCache(t)
				if kind == "socket" {
					d = shortCache(t) // a socket path has at most 107 bytes
				}
				if tc.age > 0 {
					plant(t, d, tc.age, 12*time.Hour)
				}
				plantNonRegular(t, kind, lockPath(t, d.Path()))
				var logs syncBuffer
				cfg := plugin.Config{Cache: d, Fetcher: tc.fetcher, Getenv: noEnv, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))}
				resp, err := plugin.Run(context.Background(), cfg, req(image))
				if err != nil {
					t.Fatalf("call failed: %v", err)
				}
				if got := resp.Auth[host].Password; got != tc.wantPW {
					t.Fatalf("password %q, want %q", got, tc.wantPW)
				}
				if tc.fetcher.count() != 1 {
					t.Fatalf("fetches = %d, want 1", tc.fetcher.count())
				}
				lines := logs.lines()
				if tc.fetcher.err == nil && len(lines) != 1 {
					t.Fatalf("want one warning line, got %q", lines)
				}
				if strings.Contains(strings.Join(lines, "\n"), "another process") {
					t.Fatalf("blames another process: %q", lines)
				}
			})
		}
	}
}

// The node's token from GetAuthorizationToken (no registryIds) is good for
// every registry of the region: N accounts cost one call and one entry, and
// each answer is keyed by the host the kubelet asked about.
func TestAccountsInOneRegionShareOneToken(t *testing.T) {
	f := &fakeFetcher{}
	d := newCache(t)
	cfg := plugin.Config{Cache: d, Fetcher: f, Getenv: noEnv}
	accounts := []string{"111111111111", "222222222222", "333333333333", "444444444444", "555555555555"}
	for _, acct := range accounts {
		host := acct + ".dkr.ecr.eu-west-1.amazonaws.com"
		resp := run(t, cfg, req(host+"/app"))
		if len(resp.Auth) != 1 || resp.Auth[host].Password != "pw-1" {
			t.Fatalf("%s: auth %v", host, resp.Auth)
		}
	}
	if f.count() != 1 {
		t.Fatalf("%d accounts cost %d GetAuthorizationToken calls, want 1", len(accounts), f.count())
	}
	run(t, cfg, req("111111111111.dkr.ecr.eu-west-2.amazonaws.com/app"))
	run(t, cfg, req("111111111111.dkr.ecr-fips.eu-west-1.amazonaws.com/app"))
	if f.count() != 3 {
		t.Fatalf("another region and FIPS cost %d calls in all, want 3 (one each)", f.count())
	}
	files, _ := os.ReadDir(d.Path())
	if len(files) != 6 {
		var names []string
		for _, f := range files {
			names = append(names, f.Name())
		}
		t.Fatalf("cache holds %d files, want 3 entries and 3 locks: %v", len(files), names)
	}
}

// skewedFetcher issues tokens by AWS's clock, which runs skew ahead of the
// node's, and reports AWS's time of issue as the response's Date does.
type skewedFetcher struct {
	skew, life time.Duration
	calls      int
}

func (f *skewedFetcher) Fetch(context.Context, ecrhost.Registry, plugin.Identity) (plugin.Token, error) {
	f.calls++
	aws := time.Now().Add(f.skew)
	return plugin.Token{Username: "AWS", Password: "pw", IssuedAt: aws, ExpiresAt: aws.Add(f.life)}, nil
}

// A token's life is measured on AWS's clock, and the kubelet keeps it no
// longer than half the issued life (6 h for ECR), whatever the node's clock
// says and whatever expiry the response claims.
func TestTokenLifeUsesAWSClock(t *testing.T) {
	for _, tc := range []struct {
		name       string
		skew, life time.Duration
	}{
		{"node clock 6h behind", 6 * time.Hour, 12 * time.Hour},
		{"node clock 13h ahead", -13 * time.Hour, 12 * time.Hour},
		{"expiry a century away", 0, 100 * 365 * 24 * time.Hour},
		{"in step", 0, 12 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &skewedFetcher{skew: tc.skew, life: tc.life}
			cfg := plugin.Config{Cache: newCache(t), Fetcher: f, Getenv: noEnv}
			for i := range 2 {
				resp := run(t, cfg, req(image))
				if d := resp.CacheDuration.Duration; d > 6*time.Hour || d < 5*time.Hour {
					t.Fatalf("call %d: cacheDuration %v, want about 6h (half of 12h)", i, d)
				}
			}
			if f.calls != 1 {
				t.Fatalf("two calls made %d fetches, want 1 (the second from the cache)", f.calls)
			}
		})
	}
}

// Whatever arrives on stdin, ReadStdin returns a prefix of it or an error,
// and never more than the request limit plus one read.
func FuzzReadStdin(f *testing.F) {
	f.Add([]byte(`{"kind":"CredentialProviderRequest"}`))
	f.Add([]byte(`{"a":"}"}  {`))
	f.Add([]byte("   \n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		data, err := plugin.ReadStdin(bytes.NewReader(in), 10*time.Second)
		if !bytes.HasPrefix(in, data) {
			t.Fatalf("returned %q, not a prefix of the input", data)
		}
		if err == nil && len(data) < len(in) && !json.Valid(data) {
			t.Fatalf("stopped early at %q without a complete value", data)
		}
	})
}
