package main_test

// These tests run the built binary the way the kubelet does, a fresh process
// per request with the request on stdin, against the project's AWS emulator
// through the real aws-sdk-go-v2. Each test has its own emulator and cache
// directory (newNode), so they run in parallel.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubecred/ecr-credential-provider/internal/awsemu"
	"github.com/kubecred/ecr-credential-provider/internal/buildflags"
	"github.com/kubecred/ecr-credential-provider/internal/cache"
	"github.com/kubecred/ecr-credential-provider/internal/ecrhost"
	"github.com/kubecred/ecr-credential-provider/internal/plugin"
	"github.com/kubecred/ecr-credential-provider/internal/protocol"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ecp-bin-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "ecr-credential-provider")
	build := exec.Command("go", append(append([]string{"build"}, buildflags.Plugin()...), "-o", binary, ".")...)
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the plugin:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const (
	privateHost = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
	privateImg  = privateHost + "/team/app"
)

type node struct {
	t     *testing.T
	emu   *awsemu.Server
	cache string
	env   []string
}

// newNode starts an emulator and an environment with nothing of the host's
// AWS setup in it: no profile, no keys, IMDS on the emulator.
func newNode(t *testing.T, opts awsemu.Options) *node {
	t.Helper()
	emu, err := awsemu.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Close)
	home := t.TempDir()
	n := &node{t: t, emu: emu, cache: filepath.Join(home, "cache")}
	if n.env, err = emu.IsolatedEnv(home); err != nil {
		t.Fatal(err)
	}
	n.env = append(n.env, "ECR_CREDENTIAL_PROVIDER_CACHE_DIR="+n.cache)
	return n
}

type result struct {
	code           int
	stdout, stderr string
	resp           protocol.Response
}

func (n *node) run(stdin string, args ...string) result {
	return n.runEnv(nil, stdin, args...)
}

func (n *node) runEnv(extra []string, stdin string, args ...string) result {
	n.t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(append([]string{}, n.env...), extra...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		n.t.Fatal(err)
	}
	if r.code == 0 {
		dec := json.NewDecoder(strings.NewReader(r.stdout))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r.resp); err != nil {
			n.t.Fatalf("stdout is not one response: %v\n%s", err, r.stdout)
		}
		if dec.More() {
			n.t.Fatalf("stdout holds more than one JSON value: %q", r.stdout)
		}
	}
	return r
}

func request(version, image string) string {
	return fmt.Sprintf(`{"kind":"CredentialProviderRequest","apiVersion":%q,"image":%q}`, version, image)
}

func TestEveryRequestVersionThroughTheSDK(t *testing.T) {
	t.Parallel()
	for _, v := range protocol.Versions {
		t.Run(v, func(t *testing.T) {
			n := newNode(t, awsemu.Options{})
			r := n.run(request(v, privateImg), "get-credentials")
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			if r.resp.APIVersion != v || r.resp.Kind != protocol.ResponseKind || r.resp.CacheKeyType != protocol.CacheKeyRegistry {
				t.Fatalf("response header %+v", r.resp)
			}
			auth := r.resp.Auth[privateHost]
			if auth.Username != "AWS" || auth.Password != n.emu.PasswordFor(n.emu.InstanceARN()) {
				t.Fatalf("auth %v, want the node role's token", r.resp.Auth)
			}
			st := n.emu.Stats()
			op := st.Op(awsemu.TargetECR, "GetAuthorizationToken")
			if op.Requests != 1 || op.Status[200] != 1 || op.SignatureFailures != 0 {
				t.Fatalf("ECR saw %+v, want one signed call", op)
			}
			if st.Requests > 4 {
				t.Fatalf("cold call made %d HTTP requests, want at most 4", st.Requests)
			}
			if r.stderr != "" {
				t.Fatalf("quiet by default, but stderr has %q", r.stderr)
			}
		})
	}
}

func TestWarmCallMakesNoRequests(t *testing.T) {
	t.Parallel()
	n := newNode(t, awsemu.Options{})
	first := n.run(request(protocol.V1, privateImg))
	n.emu.Reset()
	second := n.run(request(protocol.V1, privateHost+"/other/repo"))
	if first.code != 0 || second.code != 0 {
		t.Fatalf("exits %d %d: %s %s", first.code, second.code, first.stderr, second.stderr)
	}
	if got := n.emu.Stats().Requests; got != 0 {
		t.Fatalf("cache hit made %d HTTP requests", got)
	}
	if first.resp.Auth[privateHost] != second.resp.Auth[privateHost] {
		t.Fatal("cache hit returned other credentials")
	}
	fi, err := os.Stat(n.cache)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("cache dir %v %v", fi, err)
	}
	files, _ := filepath.Glob(filepath.Join(n.cache, "*.json"))
	for _, f := range files {
		if fi, _ := os.Stat(f); fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s has mode %v", f, fi.Mode())
		}
	}
}

func TestConcurrentColdProcessesShareOneFetch(t *testing.T) {
	t.Parallel()
	n := newNode(t, awsemu.Options{})
	n.emu.SetFault(awsemu.TargetECR, awsemu.Fault{Latency: 300e6})
	var wg sync.WaitGroup
	results := make([]result, 8)
	for i := range results {
		wg.Add(1)
		go func() { defer wg.Done(); results[i] = n.run(request(protocol.V1, privateImg)) }()
	}
	wg.Wait()
	for _, r := range results {
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
	}
	if got := n.emu.Stats().Op(awsemu.TargetECR, "GetAuthorizationToken").Requests; got != 1 {
		t.Fatalf("8 concurrent cold calls made %d GetAuthorizationToken calls, want 1", got)
	}
}

func TestECRPublic(t *testing.T) {
	t.Parallel()
	n := newNode(t, awsemu.Options{})
	r := n.run(request(protocol.V1, "public.ecr.aws/nginx/nginx"))
	if r.code != 0 || r.resp.Auth["public.ecr.aws"].Password != n.emu.PasswordFor(n.emu.InstanceARN()) {
		t.Fatalf("exit %d auth %v: %s", r.code, r.resp.Auth, r.stderr)
	}
	recs := n.emu.Requests()
	var regions []string
	for _, rec := range recs {
		if rec.Target == awsemu.TargetECRPublic {
			regions = append(regions, rec.Region)
		}
	}
	if len(regions) != 1 || regions[0] != "us-east-1" {
		t.Fatalf("ECR Public calls signed for regions %v, want [us-east-1]", regions)
	}
}

func TestECRPublicDeniedPullsAnonymously(t *testing.T) {
	t.Parallel()
	n := newNode(t, awsemu.Options{})
	n.emu.Deny("ecr-public:GetAuthorizationToken", "")
	r := n.run(request(protocol.V1, "public.ecr.aws/nginx/nginx"))
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if len(r.resp.Auth) != 0 || r.resp.CacheDuration == nil || r.resp.CacheDuration.Duration <= 0 {
		t.Fatalf("response %+v, want no auth and a short cacheDuration", r.resp)
	}
	if !strings.Contains(r.stderr, "anonymous") {
		t.Fatalf("no warning on stderr: %q", r.stderr)
	}
}

func TestPrivateDeniedFailsClearly(t *testing.T) {
	t.Parallel()
	n := newNode(t, awsemu.Options{})
	n.emu.Deny("ecr:GetAuthorizationToken", "")
	r := n.run(request(protocol.V1, privateImg))
	if r.code == 0 || r.stdout != "" {
		t.Fatalf("exit %d stdout %q", r.code, r.stdout)
	}
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "ecr:GetAuthorizationToken") || !strings.Contains(lines[0], "AmazonEC2ContainerRegistryReadOnly") {
		t.Fatalf("stderr %q: want one line naming the permission and the fix", r.stderr)
	}
}

func TestPerPodRoleWithServiceAccountToken(t *testing.T) {
	t.Parallel()
	n := newNode(t, awsemu.Options{})
	role := "arn:aws:iam::210987654321:role/team-a-puller"
	saToken := "eyJhbGciOiJSUzI1NiJ9.pod-a.sig"
	in := fmt.Sprintf(`{"kind":"CredentialProviderRequest","apiVersion":%q,"image":%q,"serviceAccountToken":%q,"serviceAccountAnnotations":{"eks.amazonaws.com/ecr-role-arn":%q}}`,
		protocol.V1, privateImg, saToken, role)
	r := n.run(in, "-v", "2")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	want := n.emu.PasswordFor("arn:aws:sts::210987654321:assumed-role/team-a-puller/ecr-credential-provider")
	if got := r.resp.Auth[privateHost].Password; got != want {
		t.Fatalf("password %q, want the assumed role's %q", got, want)
	}
	if strings.Contains(r.stderr, saToken) || strings.Contains(r.stderr, want) {
		t.Fatal("debug log leaks the service account token or the password")
	}
	if n.emu.Stats().Op(awsemu.TargetSTS, "AssumeRoleWithWebIdentity").Requests != 1 {
		t.Fatalf("stats %+v", n.emu.Stats())
	}
	files, _ := filepath.Glob(filepath.Join(n.cache, "*.json"))
	if len(files) != 0 {
		t.Fatalf("per-pod token cached on disk: %v", files)
	}
}

func TestStaticKeysFromEnv(t *testing.T) {
	t.Parallel()
	arn := "arn:aws:iam::123456789012:user/ci"
	n := newNode(t, awsemu.Options{StaticKeys: map[string]awsemu.StaticKey{"AKIAEXAMPLESTATIC01": {Secret: "s3cr3t/key", ARN: arn}}})
	r := n.runEnv([]string{"AWS_ACCESS_KEY_ID=AKIAEXAMPLESTATIC01", "AWS_SECRET_ACCESS_KEY=s3cr3t/key"}, request(protocol.V1, privateImg))
	if r.code != 0 || r.resp.Auth[privateHost].Password != n.emu.PasswordFor(arn) {
		t.Fatalf("exit %d: %s %v", r.code, r.stderr, r.resp.Auth)
	}
	if n.emu.Stats().Target(awsemu.TargetIMDS).Requests != 0 {
		t.Fatal("env credentials should win over IMDS")
	}
}

func TestVanityHostUsesConfiguredRegion(t *testing.T) {
	t.Parallel()
	n := newNode(t, awsemu.Options{})
	r := n.runEnv([]string{"AWS_REGION=eu-central-1"}, request(protocol.V1, "registry.example.com:5000/app"))
	if r.code != 0 || r.resp.Auth["registry.example.com:5000"].Password == "" {
		t.Fatalf("exit %d: %s %v", r.code, r.stderr, r.resp.Auth)
	}
	if !strings.Contains(r.stderr, "not ECR-shaped") {
		t.Fatalf("no warning: %q", r.stderr)
	}
	for _, rec := range n.emu.Requests() {
		if rec.Target == awsemu.TargetECR && rec.Region != "eu-central-1" {
			t.Fatalf("ECR called in %s", rec.Region)
		}
	}
}

func TestBadInputLeavesStdoutEmpty(t *testing.T) {
	t.Parallel()
	n := newNode(t, awsemu.Options{})
	for name, in := range map[string]string{
		"empty":           "",
		"garbage":         "hello",
		"wrong kind":      `{"kind":"Pod","apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":"x/y"}`,
		"unknown version": `{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/v9","image":"x/y"}`,
		"empty image":     `{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":""}`,
	} {
		r := n.run(in)
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if r.code == 0 || r.stdout != "" || len(lines) != 1 || lines[0] == "" {
			t.Errorf("%s: exit %d stdout %q stderr %q", name, r.code, r.stdout, r.stderr)
		}
	}
	if n.emu.Stats().Requests != 0 {
		t.Fatal("bad input reached AWS")
	}
}

// initTrace lists the packages the Go runtime initialized, in order, from
// what GODEBUG=inittrace=1 wrote on stderr.
func initTrace(stderr string) []string {
	var pkgs []string
	for _, line := range strings.Split(stderr, "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[0] == "init" {
			pkgs = append(pkgs, f[1])
		}
	}
	return pkgs
}

// A cache hit is answered in package fastpath's init, before the AWS SDK's
// service packages build their endpoint tables and schemas: that is what
// makes a hit cost about as much as a hello world. The order follows from
// the import graph, so a new import in the cache-hit path can undo it.
func TestCacheHitAnsweredBeforeSDKInit(t *testing.T) {
	t.Parallel()
	n := newNode(t, awsemu.Options{})
	trace := []string{"GODEBUG=inittrace=1"}
	cold := n.runEnv(trace, request(protocol.V1, privateImg))
	warm := n.runEnv(trace, request(protocol.V1, privateImg))
	if cold.code != 0 || warm.code != 0 {
		t.Fatalf("exits %d %d: %s %s", cold.code, warm.code, cold.stderr, warm.stderr)
	}
	const fast = "github.com/kubecred/ecr-credential-provider/internal/fastpath"
	sdkServices := func(pkgs []string) []string {
		var s []string
		for _, p := range pkgs {
			if strings.HasPrefix(p, "github.com/aws/aws-sdk-go-v2/service/") {
				s = append(s, p)
			}
		}
		return s
	}
	// The runtime traces a package once its init returns. On a miss,
	// fastpath's init returns and the SDK initializes after it.
	coldPkgs := initTrace(cold.stderr)
	if !slices.Contains(coldPkgs, fast) || len(sdkServices(coldPkgs)) == 0 {
		t.Fatalf("a cold call's init trace lacks %s or the SDK:\n%s", fast, cold.stderr)
	}
	// One P must be set before the runtime uses a second (see maxprocs).
	if mp := slices.Index(coldPkgs, "github.com/kubecred/ecr-credential-provider/internal/maxprocs"); mp < 0 || mp > slices.Index(coldPkgs, "os") {
		t.Fatalf("internal/maxprocs initialized late (position %d, os at %d):\n%s", mp, slices.Index(coldPkgs, "os"), strings.Join(coldPkgs, "\n"))
	}
	// On a hit, fastpath's init answers and exits, so it is never traced.
	pkgs := initTrace(warm.stderr)
	if len(pkgs) == 0 || slices.Contains(pkgs, fast) {
		t.Fatalf("the hit was not answered in %s's init; init order:\n%s", fast, strings.Join(pkgs, "\n"))
	}
	if got := sdkServices(pkgs); len(got) > 0 {
		t.Fatalf("a cache hit initialized SDK service packages %v before answering; a package the cache-hit path imports became ready after them. Init order:\n%s",
			got, strings.Join(pkgs, "\n"))
	}
	if warm.resp.Auth[privateHost] != cold.resp.Auth[privateHost] {
		t.Fatal("the hit answered other credentials than the cold call cached")
	}
}

// The fast path and the full plugin must answer a hit alike. -v=2 takes
// the full path (it logs the hit), so the two can be compared.
func TestFastPathAnswersLikeFullPath(t *testing.T) {
	t.Parallel()
	for _, v := range protocol.Versions {
		t.Run(v, func(t *testing.T) {
			n := newNode(t, awsemu.Options{})
			if r := n.run(request(v, privateImg)); r.code != 0 {
				t.Fatalf("priming: exit %d: %s", r.code, r.stderr)
			}
			fast := n.run(request(v, privateImg))
			full := n.run(request(v, privateImg), "-v=2")
			if fast.code != 0 || full.code != 0 {
				t.Fatalf("exits %d %d: %s %s", fast.code, full.code, fast.stderr, full.stderr)
			}
			if !strings.Contains(full.stderr, "served from disk cache") {
				t.Fatalf("-v=2 did not take the full path; stderr %q", full.stderr)
			}
			if fast.stderr != "" {
				t.Fatalf("fast path wrote stderr %q", fast.stderr)
			}
			// Runs a moment apart may differ by a second of cacheDuration.
			df, dl := fast.resp.CacheDuration, full.resp.CacheDuration
			if df == nil || dl == nil || (df.Duration-dl.Duration).Abs() > time.Second {
				t.Fatalf("cacheDuration fast %v, full %v", df, dl)
			}
			fast.resp.CacheDuration, full.resp.CacheDuration = nil, nil
			fb, _ := json.Marshal(fast.resp)
			lb, _ := json.Marshal(full.resp)
			if !bytes.Equal(fb, lb) {
				t.Fatalf("fast path answered\n%s\nfull path\n%s", fb, lb)
			}
			if n.emu.Stats().Op(awsemu.TargetECR, "GetAuthorizationToken").Requests != 1 {
				t.Fatal("a hit called ECR")
			}
		})
	}
}

func TestBinaryLinksNoKubernetes(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "version", "-m", binary).CombinedOutput()
	if err != nil {
		t.Fatal(err, string(out))
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		// k8s.io/ covers client-go; the refresher's other libraries must
		// not leak in either.
		if len(f) >= 2 && f[0] == "dep" && (strings.HasPrefix(f[1], "k8s.io/") || strings.HasPrefix(f[1], "sigs.k8s.io/json") ||
			strings.HasPrefix(f[1], "helm.sh/") || strings.HasPrefix(f[1], "github.com/prometheus/")) {
			t.Errorf("binary links %s", f[1])
		}
	}
}

func TestThrottlingIsRetried(t *testing.T) {
	t.Parallel()
	for _, target := range []string{awsemu.TargetECR, awsemu.TargetIMDS} {
		t.Run(target, func(t *testing.T) {
			t.Parallel()
			n := newNode(t, awsemu.Options{Seed: 7})
			n.emu.SetFault(target, awsemu.Fault{ErrorRate: 0.5, Kind: awsemu.FaultThrottle})
			const calls = 12
			for i := range calls {
				if r := n.run(request(protocol.V1, privateImg), "--no-cache"); r.code != 0 {
					t.Fatalf("call %d failed: %s", i, r.stderr)
				}
			}
			throttled := 0
			for _, rec := range n.emu.Requests() {
				if rec.Target == target && (rec.Status == 400 || rec.Status == 429) {
					throttled++
				}
			}
			if throttled == 0 {
				t.Fatal("the fault never fired, so the test proved nothing")
			}
		})
	}
}

func TestServerErrorsAreRetried(t *testing.T) {
	t.Parallel()
	n := newNode(t, awsemu.Options{Seed: 3})
	n.emu.SetFault(awsemu.TargetECR, awsemu.Fault{ErrorRate: 0.5, Kind: awsemu.Fault5xx, Status: 503})
	for i := range 6 {
		if r := n.run(request(protocol.V1, privateImg), "--no-cache"); r.code != 0 {
			t.Fatalf("call %d failed: %s", i, r.stderr)
		}
	}
}

func TestECRHangWithoutCacheFailsWithinDeadline(t *testing.T) {
	t.Parallel()
	n := newNode(t, awsemu.Options{})
	n.emu.SetFault(awsemu.TargetECR, awsemu.Fault{HangRate: 1})
	r := n.run(request(protocol.V1, privateImg), "--timeout", "2s")
	if r.code == 0 || r.stdout != "" {
		t.Fatalf("exit %d stdout %q", r.code, r.stdout)
	}
	if !strings.Contains(r.stderr, "did not complete in time") {
		t.Fatalf("stderr %q: want a clear deadline error", r.stderr)
	}
}

// A token due for refresh but still valid is served when ECR hangs.
func TestECRHangServesValidCachedToken(t *testing.T) {
	t.Parallel()
	n := newNode(t, awsemu.Options{})
	getenv := func(k string) string {
		for _, kv := range n.env {
			if strings.HasPrefix(kv, k+"=") {
				return kv[len(k)+1:]
			}
		}
		return ""
	}
	reg, _ := ecrhost.Parse(privateImg)
	d, err := cache.Open(n.cache)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := d.Put(cache.Entry{Key: plugin.CacheKey(reg, getenv), Registry: reg.Host, Username: "AWS", Password: "cached-pw",
		FetchedAt: now.Add(-7 * time.Hour), ExpiresAt: now.Add(5 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	n.emu.SetFault(awsemu.TargetECR, awsemu.Fault{HangRate: 1})
	r := n.run(request(protocol.V1, privateImg), "--refresh-timeout", "1s")
	if r.code != 0 || r.resp.Auth[privateHost].Password != "cached-pw" {
		t.Fatalf("exit %d auth %v: %s", r.code, r.resp.Auth, r.stderr)
	}
	if r.resp.CacheDuration.Duration > plugin.StaleCacheDuration {
		t.Fatalf("stale token offered for %v", r.resp.CacheDuration.Duration)
	}
	if !strings.Contains(r.stderr, "serving the cached token") {
		t.Fatalf("no warning: %q", r.stderr)
	}
}

// TestHelpReachesMain checks that the fast path leaves -h to the CLI even
// with a request waiting on stdin, as a person piping one in would have.
func TestHelpReachesMain(t *testing.T) {
	t.Parallel()
	n := newNode(t, awsemu.Options{})
	for _, args := range [][]string{{"--help"}, {"-h"}, {"get-credentials", "--help"}, {"-v", "1", "-h"}, {"help", "doctor"}} {
		cmd := exec.Command(binary, args...)
		cmd.Env = n.env
		cmd.Stdin = strings.NewReader(request(protocol.V1, privateImg))
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil || errb.Len() > 0 || !strings.Contains(out.String(), "Usage:") || !strings.Contains(out.String(), "Example:") {
			t.Errorf("%q: %v, stderr %q, stdout:\n%s", args, err, errb.String(), out.String())
		}
	}
	if st := n.emu.Stats(); st.Requests != 0 {
		t.Errorf("help made %d AWS requests", st.Requests)
	}
}

// A go build from the source tree has no linked-in version; the binary then
// reports the commit the go command stamped into it, as go version -m shows.
func TestVersionFromBuildInfo(t *testing.T) {
	out, err := exec.Command("go", "version", "-m", binary).CombinedOutput()
	if err != nil {
		t.Fatal(err, string(out))
	}
	want, modified := "dev", false
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == "build" && strings.HasPrefix(f[1], "vcs.revision=") {
			want = strings.TrimPrefix(f[1], "vcs.revision=")
		}
		if len(f) == 2 && f[0] == "build" && f[1] == "vcs.modified=true" {
			modified = true
		}
	}
	if modified {
		want += "-dirty"
	}
	n := newNode(t, awsemu.Options{})
	for _, arg := range []string{"version", "--version", "-version"} {
		cmd := exec.Command(binary, arg)
		cmd.Env = n.env
		cmd.Stdin = strings.NewReader(request(protocol.V1, privateImg))
		got, err := cmd.Output()
		if err != nil || string(got) != "ecr-credential-provider "+want+"\n" {
			t.Errorf("%s: %v, printed %q, want version %q", arg, err, got, want)
		}
	}
	if n.emu.Stats().Requests != 0 {
		t.Fatal("printing the version called AWS")
	}
}

// Every plugin call runs the init of every package the binary links, and
// touching an init's code maps the pages around it into the process. The
// operator commands' packages must therefore do no work at start-up (no
// map literals, no regexps, no sync.OnceValue calls in package-level
// vars): GODEBUG=inittrace=1 lists only packages whose init does some.
func TestOperatorPackagesDoNoInitWork(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(binary, "version")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("version: %v\n%s", err, out)
	}
	pkgs := initTrace(string(out))
	if !slices.Contains(pkgs, "github.com/kubecred/ecr-credential-provider/internal/fastpath") {
		t.Fatalf("no init trace in the output (GODEBUG ignored?):\n%s", out)
	}
	for _, p := range []string{"doctor", "nodesetup", "kubeletwiring", "kubeapi", "noderbac", "lazyregexp", "containerdhosts"} {
		if p = "github.com/kubecred/ecr-credential-provider/internal/" + p; slices.Contains(pkgs, p) {
			t.Errorf("%s does work in its init, in every plugin call; build its package-level values lazily or statically", p)
		}
	}
}
