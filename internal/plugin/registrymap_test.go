package plugin_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/kubecred/ecr-credential-provider/internal/ecrhost"
	"github.com/kubecred/ecr-credential-provider/internal/plugin"
	"github.com/kubecred/ecr-credential-provider/internal/registrymap"
)

// regFetcher hands out a password naming the registry it was asked for, so
// an answer shows which registry's token it carries.
type regFetcher struct {
	mu   sync.Mutex
	regs []string
}

func (f *regFetcher) Fetch(_ context.Context, reg ecrhost.Registry, _ plugin.Identity) (plugin.Token, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.regs = append(f.regs, reg.Host)
	return plugin.Token{Username: "AWS", Password: "pw-for-" + reg.Host, ExpiresAt: time.Now().Add(12 * time.Hour)}, nil
}

func TestRegistryMap(t *testing.T) {
	const (
		cacheReg  = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
		customReg = "210987654321.dkr.ecr.eu-west-1.amazonaws.com"
	)
	m, err := registrymap.Parse([]string{
		"docker.io=" + cacheReg + "/docker-hub",
		"ghcr.io=" + cacheReg + "/ghcr",
		"registry.example.com=" + customReg,
	})
	if err != nil {
		t.Fatal(err)
	}
	f := &regFetcher{}
	cfg := plugin.Config{Cache: newCache(t), Fetcher: f, RegistryMap: m}

	for _, tt := range []struct{ image, authHost, password string }{
		{"docker.io/library/nginx:latest", "docker.io", "pw-for-" + cacheReg},
		// The kubelet names Docker Hub docker.io, and matches keys against
		// that name: index.docker.io is keyed as docker.io.
		{"index.docker.io/library/busybox", "docker.io", "pw-for-" + cacheReg},
		{"ghcr.io/org/tool:v1", "ghcr.io", "pw-for-" + cacheReg},
		{"registry.example.com/team/app:v2", "registry.example.com", "pw-for-" + customReg},
		{cacheReg + "/docker-hub/library/nginx", cacheReg, "pw-for-" + cacheReg},
	} {
		resp := run(t, cfg, req(tt.image))
		if len(resp.Auth) != 1 {
			t.Fatalf("%s: auth = %v; want one entry", tt.image, resp.Auth)
		}
		got, ok := resp.Auth[tt.authHost]
		if !ok || got.Password != tt.password {
			t.Errorf("%s: auth = %v; want %s keyed by %s, the host the kubelet asked about", tt.image, resp.Auth, tt.password, tt.authHost)
		}
	}
	// Every source mapped to one ECR registry shares its one cached token.
	want := []string{cacheReg, customReg}
	if len(f.regs) != len(want) || f.regs[0] != want[0] || f.regs[1] != want[1] {
		t.Errorf("fetched tokens for %v; want one each for %v", f.regs, want)
	}

	// A cache hit for a mapped host is answered for that host too.
	resp, ok := plugin.Cached(plugin.Config{Cache: cfg.Cache, RegistryMap: m, Getenv: noEnv}, req("quay.io/x/y"))
	if ok {
		t.Errorf("unmapped quay.io answered from the cache: %v", resp.Auth)
	}
	resp, ok = plugin.Cached(plugin.Config{Cache: cfg.Cache, RegistryMap: m, Getenv: noEnv}, req("ghcr.io/org/other"))
	if !ok || resp.Auth["ghcr.io"].Password != "pw-for-"+cacheReg {
		t.Errorf("cached answer for ghcr.io = %v, %v; want the mapped registry's token", resp.Auth, ok)
	}

	// Without the map, the same image is not answered with an ECR token for
	// the mapped registry.
	f2 := &regFetcher{}
	resp = run(t, plugin.Config{Cache: newCache(t), Fetcher: f2}, req("registry.example.com/team/app:v2"))
	if resp.Auth["registry.example.com"].Password == "pw-for-"+customReg {
		t.Errorf("unmapped custom domain got the mapped registry's token")
	}
}

func TestFlagsMap(t *testing.T) {
	env := map[string]string{registrymap.Env: "ghcr.io=123456789012.dkr.ecr.us-east-1.amazonaws.com/ghcr"}
	getenv := func(k string) string { return env[k] }
	f, err := plugin.ParseFlags([]string{"--registry-map", "docker.io=123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub"}, getenv, nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := f.Map(getenv)
	if err != nil || m.Len() != 2 {
		t.Fatalf("Map = %v rules, %v; want 2 (flag and env)", m.Len(), err)
	}
	env[registrymap.Env] = "docker.io=123456789012.dkr.ecr.us-west-2.amazonaws.com"
	if _, err := f.Map(getenv); err == nil {
		t.Error("a source mapped by both the flag and the env was accepted")
	}
	f.RegistryMapFile = "/nonexistent/map"
	if _, err := f.Map(noEnv); err == nil {
		t.Error("a missing --registry-map-file was accepted")
	}
}
