package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kubecred/ecr-credential-provider/internal/awsemu"
	"github.com/kubecred/ecr-credential-provider/internal/cache"
	"github.com/kubecred/ecr-credential-provider/internal/ecrhost"
	"github.com/kubecred/ecr-credential-provider/internal/plugin"
	"github.com/kubecred/ecr-credential-provider/internal/protocol"
	"github.com/kubecred/ecr-credential-provider/test/bench/internal/spawnproto"
)

const (
	registryHost = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
	image        = registryHost + "/team/app"
	request      = `{"kind":"CredentialProviderRequest","apiVersion":"` + protocol.V1 + `","image":"` + image + `"}`
	cacheEnv     = "ECR_CREDENTIAL_PROVIDER_CACHE_DIR"
	// The plugin's default --timeout and --refresh-timeout: every scenario
	// runs the binary with the flags a kubelet config would give it, none.
	pluginTimeout  = 20 * time.Second
	refreshTimeout = 5 * time.Second
	// grace is what a timed-out process may take past its deadline to
	// print its answer and exit.
	grace = time.Second
	// plantedPassword marks a token the benchmark wrote into the cache, so a
	// hang scenario can tell it was served rather than a fetched one.
	plantedPassword = "planted-cached-password"
)

type scenario struct {
	name, desc string
	run        func(b *bench, o options) (*result, error)
}

var scenarios = []scenario{
	{"floor", "not the plugin: a Go hello world, the least a fresh Go process costs here", runFloor},
	{"warm", "cache hit: populated cache, every call served from disk", runWarm},
	{"cold", "cold: empty cache dir per call", func(b *bench, o options) (*result, error) {
		r, err := b.cold(o.n, nil)
		if err != nil {
			return nil, err
		}
		r.check("<= 4 HTTP requests per call", fmt.Sprintf("%.2f", r.HTTPPerCall), r.HTTPPerCall <= 4)
		r.check("p50 <= 7 ms", fmt.Sprintf("%.2f ms", r.P50ms), r.P50ms <= 7)
		r.check("100% success", pct(r.SuccessPct), r.SuccessPct == 100)
		return r, nil
	}},
	{"concurrent-8", "8 cold processes at once on one empty cache dir, per round", runConcurrent},
	{"latency", "cold with realistic latency: ECR +30 ms, IMDS +1 ms per request", faulty(map[string]awsemu.Fault{
		awsemu.TargetECR:  {Latency: 30 * time.Millisecond},
		awsemu.TargetIMDS: {Latency: time.Millisecond},
	}, 100)},
	{"ecr-throttle", "cold; ECR answers 50% of requests with ThrottlingException",
		faulty(map[string]awsemu.Fault{awsemu.TargetECR: {ErrorRate: 0.5, Kind: awsemu.FaultThrottle}}, 100)},
	{"imds-429", "cold; IMDS answers 50% of requests with 429",
		faulty(map[string]awsemu.Fault{awsemu.TargetIMDS: {ErrorRate: 0.5, Kind: awsemu.FaultThrottle}}, 99)},
	{"hang-cached", "ECR hangs; a valid cached token is due for refresh; calls side by side, one cache dir each", func(b *bench, o options) (*result, error) {
		return b.hangCached(o.hangN, false)
	}},
	{"hang-cached-8", "as hang-cached, but 8 processes at once share one cache dir (one registry, 8 images)", func(b *bench, o options) (*result, error) {
		return b.hangCached(8, true)
	}},
	{"hang-nocache", "ECR hangs; no cached token; calls side by side; ok = a clear error", runHangNoCache},
	{"storm", "node-restart storm: -storm-nodes nodes (a cache dir each) start at once, each pulling one image from each of -storm-accounts accounts in us-east-1; GetAuthorizationToken behind a token bucket", runStorm},
}

// faulty is a cold scenario of n/2 calls under faults, which should still
// succeed at least minPct of the time.
func faulty(faults map[string]awsemu.Fault, minPct float64) func(*bench, options) (*result, error) {
	return func(b *bench, o options) (*result, error) {
		r, err := b.cold(o.n/2, faults)
		if err != nil {
			return nil, err
		}
		target := fmt.Sprintf(">= %g%% success", minPct)
		if minPct == 100 {
			target = "100% success"
		}
		r.check(target, pct(r.SuccessPct), r.SuccessPct >= minPct)
		return r, nil
	}
}

func scenarioNames() []string {
	var names []string
	for _, s := range scenarios {
		names = append(names, s.name)
	}
	return names
}

// result is one scenario's figures.
type result struct {
	Name                  string   `json:"name"`
	Desc                  string   `json:"description"`
	Calls                 int      `json:"calls"`
	P50ms                 float64  `json:"p50Ms"`
	P90ms                 float64  `json:"p90Ms"`
	P99ms                 float64  `json:"p99Ms"`
	MaxMs                 float64  `json:"maxMs"`
	MeanCPUms             float64  `json:"meanCpuMs"` // user + sys
	MeanSysMs             float64  `json:"meanSysMs"`
	PeakRSSMiB            float64  `json:"peakRssMiB"`
	HTTPPerCall           float64  `json:"httpRequestsPerCall"`
	GetAuthorizationToken int      `json:"getAuthorizationToken"`
	GetAuthPerRound       []int    `json:"getAuthorizationTokenPerRound,omitempty"`
	SuccessPct            float64  `json:"successPct"`
	Notes                 []string `json:"notes,omitempty"`
	Checks                []check  `json:"checks"`
}

func (r *result) check(target, got string, pass bool) {
	r.Checks = append(r.Checks, check{Target: target, Got: got, Pass: pass})
}

func (r *result) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

func pct(v float64) string { return fmt.Sprintf("%.1f%%", v) }

type bench struct {
	root, tmp, bin string
	sp             *spawner
	// rssFloorKiB is the spawner's own peak RSS: no process it starts can
	// show a smaller one.
	rssFloorKiB int64
}

// node is one emulated EC2 instance: an emulator and a clean environment
// that points the plugin at it and at nothing of this machine's AWS setup.
type node struct {
	emu  *awsemu.Server
	home string
	env  []string
	dirs int
}

func (b *bench) newNode(faults map[string]awsemu.Fault) (*node, error) {
	emu, err := awsemu.Start(awsemu.Options{})
	if err != nil {
		return nil, err
	}
	for target, f := range faults {
		emu.SetFault(target, f)
	}
	home, err := os.MkdirTemp(b.tmp, "home-")
	if err != nil {
		emu.Close()
		return nil, err
	}
	env, err := emu.IsolatedEnv(home)
	if err != nil {
		emu.Close()
		return nil, err
	}
	return &node{emu: emu, home: home, env: env}, nil
}

// cacheDir names a cache directory no call has used yet, and the exact
// environment that points the plugin at it.
func (n *node) cacheDir() (string, []string) {
	n.dirs++
	dir := filepath.Join(n.home, fmt.Sprintf("cache-%d", n.dirs))
	return dir, append(slices.Clip(n.env), cacheEnv+"="+dir)
}

// sample is one plugin process.
type sample struct {
	wall, user, sys time.Duration
	rssKiB          int64
	code            int
	stdout, stderr  string
}

// call runs the plugin once, as the kubelet does: the request on stdin,
// one response expected on stdout.
func (b *bench) call(env []string) (sample, error) { return b.run(b.bin, env) }

func (b *bench) run(bin string, env []string) (sample, error) {
	ss, err := b.spawn(bin, [][]string{env})
	if err != nil {
		return sample{}, err
	}
	return ss[0], nil
}

// together starts one plugin process per environment at the same moment.
func (b *bench) together(envs [][]string) ([]sample, error) { return b.spawn(b.bin, envs) }

// spawner is test/bench/spawn, which forks the measured processes so that
// their peak RSS is not inflated by ours (see its package doc).
type spawner struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	enc *json.Encoder
	dec *json.Decoder
}

func (b *bench) startSpawner() error {
	bin, err := b.build("./test/bench/spawn", "spawn", shippedFlags...)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin)
	cmd.Env = []string{}
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	b.sp = &spawner{cmd: cmd, in: in, enc: json.NewEncoder(in), dec: json.NewDecoder(out)}
	return nil
}

func (b *bench) stopSpawner() {
	if b.sp != nil {
		b.sp.in.Close()
		b.sp.cmd.Wait()
	}
}

func (b *bench) spawn(bin string, envs [][]string) ([]sample, error) {
	return b.spawnWith(bin, envs, slices.Repeat([]string{request}, len(envs)))
}

// spawnWith is spawn with a request of its own for each process.
func (b *bench) spawnWith(bin string, envs [][]string, stdins []string) ([]sample, error) {
	calls := make([]spawnproto.Call, len(envs))
	for i, env := range envs {
		calls[i] = spawnproto.Call{Path: bin, Env: env, Stdin: stdins[i]}
	}
	if err := b.sp.enc.Encode(calls); err != nil {
		return nil, fmt.Errorf("spawner: %w", err)
	}
	var r spawnproto.Reply
	if err := b.sp.dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("spawner: %w", err)
	}
	b.rssFloorKiB = max(b.rssFloorKiB, r.SelfMaxRSSKiB)
	out := make([]sample, len(r.Outcomes))
	for i, o := range r.Outcomes {
		if o.Err != "" {
			return nil, fmt.Errorf("running %s: %s", bin, o.Err)
		}
		out[i] = sample{wall: time.Duration(o.WallNs), user: time.Duration(o.UserNs), sys: time.Duration(o.SysNs), rssKiB: o.MaxRSSKiB,
			code: o.Code, stdout: o.Stdout, stderr: o.Stderr}
	}
	return out, nil
}

// password is the registry password of a successful answer, or "".
func password(s sample) string { return hostPassword(s, registryHost) }

// hostPassword is the password a successful answer gives host, or "".
func hostPassword(s sample, host string) string {
	if s.code != 0 {
		return ""
	}
	var resp protocol.Response
	dec := json.NewDecoder(strings.NewReader(s.stdout))
	if dec.Decode(&resp) != nil || dec.More() {
		return ""
	}
	return resp.Auth[host].Password
}

func gotToken(s sample) bool { return password(s) != "" }

// clearError is what the kubelet should get when no token can be had: a
// failed exit, nothing on stdout, and one line on stderr saying why.
func clearError(s sample) bool {
	msg := strings.TrimSpace(s.stderr)
	return s.code != 0 && s.stdout == "" && msg != "" && !strings.Contains(msg, "\n")
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}

// summarize turns samples and the emulator's counters before and after
// them into a result.
func summarize(samples []sample, ok func(sample) bool, before, after awsemu.Stats) *result {
	r := &result{Calls: len(samples)}
	if len(samples) == 0 {
		return r
	}
	walls := make([]time.Duration, len(samples))
	var user, sys time.Duration
	good := 0
	for i, s := range samples {
		walls[i] = s.wall
		user += s.user
		sys += s.sys
		r.PeakRSSMiB = max(r.PeakRSSMiB, float64(s.rssKiB)/1024)
		if ok(s) {
			good++
		}
	}
	slices.Sort(walls)
	r.P50ms, r.P90ms, r.P99ms = quantile(walls, 0.50), quantile(walls, 0.90), quantile(walls, 0.99)
	r.MaxMs = msOf(walls[len(walls)-1])
	r.MeanCPUms = msOf(user+sys) / float64(len(samples))
	r.MeanSysMs = msOf(sys) / float64(len(samples))
	r.HTTPPerCall = float64(after.Requests-before.Requests) / float64(len(samples))
	r.GetAuthorizationToken = getAuth(after) - getAuth(before)
	r.SuccessPct = 100 * float64(good) / float64(len(samples))
	return r
}

func getAuth(s awsemu.Stats) int {
	return s.Op(awsemu.TargetECR, "GetAuthorizationToken").Requests
}

// quantile is the nearest-rank quantile of sorted durations, in ms.
func quantile(sorted []time.Duration, q float64) float64 {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return msOf(sorted[max(i, 0)])
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func runFloor(b *bench, o options) (*result, error) {
	hello, err := b.build("./test/bench/hello", "hello", shippedFlags...)
	if err != nil {
		return nil, err
	}
	var samples []sample
	for i := range o.n + 5 {
		s, err := b.run(hello, nil)
		if err != nil {
			return nil, err
		}
		if i >= 5 { // the first runs load the binary into the page cache
			samples = append(samples, s)
		}
	}
	ran := func(s sample) bool { return s.code == 0 }
	return summarize(samples, ran, awsemu.Stats{}, awsemu.Stats{}), nil
}

func runWarm(b *bench, o options) (*result, error) {
	n, err := b.newNode(nil)
	if err != nil {
		return nil, err
	}
	defer n.emu.Close()
	_, env := n.cacheDir()
	// The first call fills the cache; a few more load the binary into the
	// page cache so the figures are of the plugin, not the disk.
	for range 5 {
		s, err := b.call(env)
		if err != nil {
			return nil, err
		}
		if !gotToken(s) {
			return nil, fmt.Errorf("priming call failed (exit %d): %s", s.code, firstLine(s.stderr))
		}
	}
	before := n.emu.Stats()
	samples := make([]sample, 0, o.n)
	for range o.n {
		s, err := b.call(env)
		if err != nil {
			return nil, err
		}
		samples = append(samples, s)
	}
	r := summarize(samples, gotToken, before, n.emu.Stats())
	r.check("cache-hit p50 <= 2.5 ms", fmt.Sprintf("%.2f ms", r.P50ms), r.P50ms <= 2.5)
	r.check("cache hit: 0 HTTP requests", fmt.Sprintf("%.2f per call", r.HTTPPerCall), r.HTTPPerCall == 0)
	r.check("100% success", pct(r.SuccessPct), r.SuccessPct == 100)
	return r, nil
}

// cold runs calls one after another, each on a cache directory of its own
// that does not exist yet, with the given faults on the emulator.
func (b *bench) cold(calls int, faults map[string]awsemu.Fault) (*result, error) {
	n, err := b.newNode(faults)
	if err != nil {
		return nil, err
	}
	defer n.emu.Close()
	before := n.emu.Stats()
	samples := make([]sample, 0, calls)
	var failures []string
	for range calls {
		dir, env := n.cacheDir()
		s, err := b.call(env)
		if err != nil {
			return nil, err
		}
		samples = append(samples, s)
		if !gotToken(s) {
			failures = append(failures, firstLine(s.stderr))
		}
		os.RemoveAll(dir)
	}
	r := summarize(samples, gotToken, before, n.emu.Stats())
	if r.GetAuthorizationToken != calls {
		r.note("%.2f GetAuthorizationToken attempts per call", float64(r.GetAuthorizationToken)/float64(calls))
	}
	if len(failures) > 0 {
		r.note("%d failed; first error: %s", len(failures), failures[0])
	}
	return r, nil
}

func runConcurrent(b *bench, o options) (*result, error) {
	n, err := b.newNode(nil)
	if err != nil {
		return nil, err
	}
	defer n.emu.Close()
	rounds := max(1, o.n/10)
	first := n.emu.Stats()
	var samples []sample
	var perRound []int
	for range rounds {
		_, env := n.cacheDir()
		before := n.emu.Stats()
		ss, err := b.together(slices.Repeat([][]string{env}, 8))
		if err != nil {
			return nil, err
		}
		perRound = append(perRound, getAuth(n.emu.Stats())-getAuth(before))
		samples = append(samples, ss...)
	}
	r := summarize(samples, gotToken, first, n.emu.Stats())
	r.GetAuthPerRound = perRound
	exact := 0
	for _, g := range perRound {
		if g == 1 {
			exact++
		}
	}
	r.check("exactly 1 GetAuthorizationToken per round of 8", fmt.Sprintf("%d of %d rounds (min %d, max %d)",
		exact, rounds, slices.Min(perRound), slices.Max(perRound)), exact == rounds)
	r.check("100% success", pct(r.SuccessPct), r.SuccessPct == 100)
	return r, nil
}

// hangCached plants a token that is due for refresh but valid for hours and
// makes ECR hang: the plugin should give up the refresh after
// --refresh-timeout and serve the planted token.
func (b *bench) hangCached(calls int, shared bool) (*result, error) {
	n, err := b.newNode(ecrHangs)
	if err != nil {
		return nil, err
	}
	defer n.emu.Close()
	var envs [][]string
	for i := range calls {
		if i == 0 || !shared {
			dir, env := n.cacheDir()
			if err := plant(dir, env); err != nil {
				return nil, err
			}
			envs = append(envs, env)
		} else {
			envs = append(envs, envs[0])
		}
	}
	before := n.emu.Stats()
	samples, err := b.together(envs)
	if err != nil {
		return nil, err
	}
	served := func(s sample) bool { return password(s) == plantedPassword }
	r := summarize(samples, served, before, n.emu.Stats())
	r.check("success (the valid cached token)", pct(r.SuccessPct), r.SuccessPct == 100)
	limit := refreshTimeout + grace
	r.check(fmt.Sprintf("every call within --refresh-timeout + %v = %v (deadline %v)", grace, limit, pluginTimeout),
		fmt.Sprintf("max %.2f s", r.MaxMs/1000), r.MaxMs <= msOf(limit))
	r.note("stderr: %s", firstLine(samples[0].stderr))
	if shared {
		var walls []time.Duration
		for _, s := range samples {
			walls = append(walls, s.wall)
		}
		slices.Sort(walls)
		var secs []string
		for _, w := range walls {
			secs = append(secs, fmt.Sprintf("%.1f", w.Seconds()))
		}
		r.note("wall times (s): %s", strings.Join(secs, " "))
		slow := slices.MaxFunc(samples, func(a, b sample) int { return int(a.wall - b.wall) })
		r.note("slowest call's stderr: %s", firstLine(slow.stderr))
	}
	return r, nil
}

var ecrHangs = map[string]awsemu.Fault{awsemu.TargetECR: {HangRate: 1}}

// plant writes the cache entry the plugin would look up under env: fetched
// 7 hours ago, expiring in 5, so due for refresh but still valid.
func plant(dir string, env []string) error {
	getenv := func(k string) string {
		for _, kv := range env {
			if v, ok := strings.CutPrefix(kv, k+"="); ok {
				return v
			}
		}
		return ""
	}
	reg, err := ecrhost.Parse(image)
	if err != nil {
		return err
	}
	d, err := cache.Open(dir)
	if err != nil {
		return err
	}
	now := time.Now()
	return d.Put(cache.Entry{Key: plugin.CacheKey(reg, getenv), Registry: reg.Host, Username: "AWS",
		Password: plantedPassword, FetchedAt: now.Add(-7 * time.Hour), ExpiresAt: now.Add(5 * time.Hour)})
}

func runHangNoCache(b *bench, o options) (*result, error) {
	n, err := b.newNode(ecrHangs)
	if err != nil {
		return nil, err
	}
	defer n.emu.Close()
	var envs [][]string
	for range o.hangN {
		_, env := n.cacheDir()
		envs = append(envs, env)
	}
	before := n.emu.Stats()
	samples, err := b.together(envs)
	if err != nil {
		return nil, err
	}
	r := summarize(samples, clearError, before, n.emu.Stats())
	r.check("a clear error: exit != 0, empty stdout, one stderr line", pct(r.SuccessPct), r.SuccessPct == 100)
	limit := pluginTimeout + grace
	r.check(fmt.Sprintf("within the deadline (--timeout %v + %v)", pluginTimeout, grace),
		fmt.Sprintf("max %.2f s", r.MaxMs/1000), r.MaxMs <= msOf(limit))
	r.note("exit %d after %.2f s: %s", samples[0].code, samples[0].wall.Seconds(), firstLine(samples[0].stderr))
	return r, nil
}
