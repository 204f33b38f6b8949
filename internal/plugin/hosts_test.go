package plugin_test

import (
	"context"
	"strings"
	"testing"

	"github.com/kubecred/ecr-credential-provider/internal/plugin"
	"github.com/kubecred/ecr-credential-provider/internal/registrymap"
)

// The node's token is never fetched, let alone served, for a host the
// policy refuses, even with a cached token at hand.
func TestRefusedHostGetsNoToken(t *testing.T) {
	f := &fakeFetcher{}
	cfg := plugin.Config{Cache: newCache(t), Fetcher: f, Getenv: noEnv}
	run(t, cfg, req(image)) // a cached node token exists
	for _, img := range []string{"nginx", "docker.io/library/nginx", "127.0.0.1:5000/app", "localhost:5000/app",
		"123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.example/app"} {
		if _, ok := plugin.Cached(cfg, req(img)); ok {
			t.Errorf("%s: answered from the cache", img)
		}
		resp, err := plugin.Run(context.Background(), cfg, req(img))
		if err == nil {
			t.Errorf("%s: answered %v", img, resp.Auth)
			continue
		}
		if !strings.Contains(err.Error(), "matchImages") {
			t.Errorf("%s: error %q does not say to fix matchImages", img, err)
		}
	}
	// A trailing dot is no valid reference (the kubelet refuses it): the
	// parser says so, before any cache or policy.
	bad := "123456789012.dkr.ecr.us-east-1.amazonaws.com./app"
	if _, ok := plugin.Cached(cfg, req(bad)); ok {
		t.Errorf("%s: answered from the cache", bad)
	}
	if resp, err := plugin.Run(context.Background(), cfg, req(bad)); err == nil || !strings.Contains(err.Error(), "invalid reference format") {
		t.Errorf("%s: answered %v, %v; want an invalid reference format error", bad, resp, err)
	}
	if f.count() != 1 {
		t.Fatalf("fetches = %d, want only the first ECR one", f.count())
	}
	// A host the operator mapped is answered, with the mapped registry's token.
	m, err := registrymap.Parse([]string{"localhost:5000=" + image[:strings.Index(image, "/")]})
	if err != nil {
		t.Fatal(err)
	}
	cfg.RegistryMap = m
	if r := run(t, cfg, req("localhost:5000/app")); r.Auth["localhost:5000"].Password == "" {
		t.Fatalf("mapped host not answered: %v", r.Auth)
	}
}
