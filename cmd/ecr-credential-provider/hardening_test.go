//go:build unix

package main_test

// Faults and bad input a node can throw at the built binary: each call must
// end with one response on stdout, or nothing and one line on stderr.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kubecred/ecr-credential-provider/internal/awsemu"
	"github.com/kubecred/ecr-credential-provider/internal/ecrhost"
	"github.com/kubecred/ecr-credential-provider/internal/plugin"
	"github.com/kubecred/ecr-credential-provider/internal/protocol"
)

// getenv reads the node's environment as the plugin will see it.
func (n *node) getenv(k string) string {
	for _, kv := range n.env {
		if v, ok := strings.CutPrefix(kv, k+"="); ok {
			return v
		}
	}
	return ""
}

// oneLine fails unless s is exactly one line.
func oneLine(t *testing.T, what, s string) string {
	t.Helper()
	s = strings.TrimSpace(s)
	if s == "" || strings.Contains(s, "\n") {
		t.Fatalf("%s: want one line, got %q", what, s)
	}
	return s
}

func ecrCalls(n *node) int {
	return n.emu.Stats().Op(awsemu.TargetECR, "GetAuthorizationToken").Requests
}

// The node's token never goes to a host that is not ECR or the operator's
// own: no AWS call is made for it, and the error says to fix matchImages.
func TestForeignHostsGetNoToken(t *testing.T) {
	n := newNode(t, awsemu.Options{})
	for _, img := range []string{"nginx", "docker.io/library/nginx", "ghcr.io/o/app", "localhost:5000/app", "127.0.0.1:5000/app",
		"[::1]:5000/app", "123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.example/app", privateHost + "./app"} {
		r := n.run(request(protocol.V1, img))
		if r.code == 0 || r.stdout != "" {
			t.Errorf("%s: exit %d stdout %q", img, r.code, r.stdout)
			continue
		}
		// A trailing dot is no valid reference at all (the kubelet
		// refuses it too): the error says that instead.
		want := "matchImages"
		if strings.HasSuffix(img, "./app") {
			want = "invalid reference format"
		}
		if line := oneLine(t, img, r.stderr); !strings.Contains(line, want) {
			t.Errorf("%s: %q does not say %q", img, line, want)
		}
	}
	if got := n.emu.Stats().Requests; got != 0 {
		t.Fatalf("foreign hosts made %d AWS requests", got)
	}
}

// An explicit ECR endpoint (the emulator's, here) serves FIPS and
// dual-stack hosts, and -v 1 says it is used.
func TestExplicitEndpointServesFIPSHosts(t *testing.T) {
	n := newNode(t, awsemu.Options{})
	for _, host := range []string{"123456789012.dkr.ecr-fips.us-east-1.amazonaws.com", "123456789012.dkr-ecr-fips.us-west-2.on.aws"} {
		r := n.run(request(protocol.V1, host+"/app"), "-v", "1")
		if r.code != 0 || r.resp.Auth[host].Password == "" {
			t.Fatalf("%s: exit %d: %s", host, r.code, r.stderr)
		}
		if !strings.Contains(r.stderr, "explicit endpoint") {
			t.Fatalf("%s: -v 1 does not say the explicit endpoint is used: %q", host, r.stderr)
		}
	}
}

// Registries of several accounts in one region cost one
// GetAuthorizationToken, and each answer is keyed by its own host.
func TestAccountsShareTheRegionsToken(t *testing.T) {
	n := newNode(t, awsemu.Options{})
	for _, acct := range []string{"111111111111", "222222222222", "333333333333"} {
		host := acct + ".dkr.ecr.us-east-1.amazonaws.com"
		r := n.run(request(protocol.V1, host+"/app"))
		if r.code != 0 || len(r.resp.Auth) != 1 || r.resp.Auth[host].Password == "" {
			t.Fatalf("%s: exit %d auth %v: %s", host, r.code, r.resp.Auth, r.stderr)
		}
	}
	if got := ecrCalls(n); got != 1 {
		t.Fatalf("3 accounts cost %d GetAuthorizationToken calls, want 1", got)
	}
}

// A cache the plugin cannot use costs a warning, never the pull.
func TestUnusableCacheNeverFailsThePull(t *testing.T) {
	t.Run("lock path is a directory", func(t *testing.T) {
		n := newNode(t, awsemu.Options{})
		if r := n.run(request(protocol.V1, privateImg)); r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		reg, _ := ecrhost.Parse(privateImg)
		lock := filepath.Join(n.cache, plugin.CacheKey(reg, n.getenv)+".lock")
		if err := os.Remove(lock); err != nil {
			t.Fatalf("the first call left no lock at %s: %v", lock, err)
		}
		os.Mkdir(lock, 0o700)
		os.Remove(filepath.Join(n.cache, plugin.CacheKey(reg, n.getenv)+".json"))
		r := n.run(request(protocol.V1, privateImg))
		if r.code != 0 || r.resp.Auth[privateHost].Password == "" {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		if line := oneLine(t, "stderr", r.stderr); strings.Contains(line, "another process") {
			t.Fatalf("blames another process: %q", line)
		}
	})
	t.Run("parent writable by others", func(t *testing.T) {
		n := newNode(t, awsemu.Options{})
		parent := filepath.Join(t.TempDir(), "open")
		os.Mkdir(parent, 0o755)
		os.Chmod(parent, 0o777)
		r := n.runEnv([]string{"ECR_CREDENTIAL_PROVIDER_CACHE_DIR=" + filepath.Join(parent, "cache")}, request(protocol.V1, privateImg))
		if r.code != 0 || r.resp.Auth[privateHost].Password == "" {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		if line := oneLine(t, "stderr", r.stderr); !strings.Contains(line, parent) {
			t.Fatalf("warning %q does not name %s", line, parent)
		}
	})
}

// runWithStdin runs the plugin with stdin a pipe holding data whose writer
// stays open until the plugin exits. A test that hangs here is the bug.
func (n *node) runWithStdin(data string, args ...string) result {
	n.t.Helper()
	rd, w, err := os.Pipe()
	if err != nil {
		n.t.Fatal(err)
	}
	defer w.Close()
	defer rd.Close()
	w.WriteString(data)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = n.env
	cmd.Stdin = rd
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	if ctx.Err() != nil {
		n.t.Fatalf("the plugin did not end on its own (stdin left open): %q", errb.String())
	}
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	}
	return r
}

// The deadline covers stdin: a complete request is answered though stdin
// stays open; a request that never completes ends the call at --timeout.
func TestStdinLeftOpen(t *testing.T) {
	n := newNode(t, awsemu.Options{})
	for _, args := range [][]string{nil, {"-v", "2"}} {
		r := n.runWithStdin(request(protocol.V1, privateImg), args...)
		if r.code != 0 || !strings.Contains(r.stdout, `"password"`) {
			t.Fatalf("%v: complete request on open stdin: exit %d stdout %q stderr %q", args, r.code, r.stdout, r.stderr)
		}
	}
	r := n.runWithStdin(`{"kind":"CredentialProviderRequest",`, "--timeout", "2s")
	if r.code == 0 || r.stdout != "" {
		t.Fatalf("incomplete request: exit %d stdout %q", r.code, r.stdout)
	}
	if line := oneLine(t, "stderr", r.stderr); !strings.Contains(line, "stdin") {
		t.Fatalf("stderr %q does not name stdin", line)
	}
}

// --log-file never follows a symlink nor blocks on a FIFO: the call goes on
// logging to stderr, and the symlink's target is untouched.
func TestLogFileMustBeARegularFile(t *testing.T) {
	n := newNode(t, awsemu.Options{})
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	os.WriteFile(target, []byte("keep\n"), 0o600)
	link := filepath.Join(dir, "link.log")
	os.Symlink(target, link)
	fifo := filepath.Join(dir, "fifo.log")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{link, fifo} {
		r := n.runWithStdin(request(protocol.V1, privateImg), "--log-file", p, "--no-cache")
		if r.code != 0 || !strings.Contains(r.stdout, `"password"`) {
			t.Fatalf("%s: exit %d stderr %q", p, r.code, r.stderr)
		}
		if line := oneLine(t, p, r.stderr); !strings.Contains(line, "log-file") {
			t.Fatalf("%s: warning %q does not name --log-file", p, line)
		}
	}
	if b, _ := os.ReadFile(target); string(b) != "keep\n" {
		t.Fatalf("the symlink's target was written: %q", b)
	}
}

// Bad settings are refused with one line and nothing on stdout; so is a
// request with a huge field, in a line of sane length; and /dev/null on
// stdin gets no interactive prompt.
func TestBadSettingsAndInputOneLine(t *testing.T) {
	n := newNode(t, awsemu.Options{})
	for name, c := range map[string]struct {
		env   []string
		args  []string
		stdin string
	}{
		"timeout past the kubelet's kill": {args: []string{"--timeout", "61s"}, stdin: request(protocol.V1, privateImg)},
		"env timeout not a duration":      {env: []string{plugin.EnvTimeout + "=20"}, stdin: request(protocol.V1, privateImg)},
		"env verbosity not a number":      {env: []string{plugin.EnvLogLevel + "=loud"}, stdin: request(protocol.V1, privateImg)},
		"1 MB kind":                       {stdin: `{"kind":"` + strings.Repeat("k", 1<<20-100) + `","apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":"x/y"}`},
	} {
		r := n.runEnv(c.env, c.stdin, c.args...)
		if r.code == 0 || r.stdout != "" {
			t.Errorf("%s: exit %d stdout %q", name, r.code, r.stdout)
			continue
		}
		if line := oneLine(t, name, r.stderr); len(line) > 1024 {
			t.Errorf("%s: error line is %d bytes", name, len(line))
		}
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	cmd := exec.Command(binary)
	cmd.Env, cmd.Stdin = n.env, devnull
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err == nil || out.Len() != 0 {
		t.Fatalf("/dev/null: err %v stdout %q", err, out.String())
	}
	if line := oneLine(t, "/dev/null", errb.String()); strings.Contains(line, "Ctrl-D") {
		t.Fatalf("prompted with stdin not a terminal: %q", line)
	}
}

// A node-restart storm in miniature: nodes with a cache dir each start at
// once, each pulling from registries in several accounts of one region,
// with GetAuthorizationToken behind a token bucket. Every call gets a
// token, and each node costs one successful GetAuthorizationToken however
// many accounts it pulls from.
func TestRestartStormCostsOneCallPerNode(t *testing.T) {
	n := newNode(t, awsemu.Options{})
	n.emu.SetRateLimit(awsemu.TargetECR, awsemu.RateLimit{PerSecond: 5, Burst: 2})
	const nodes = 6
	accounts := []string{"111111111111", "222222222222", "333333333333"}
	results := make([][]result, nodes)
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			env := []string{"ECR_CREDENTIAL_PROVIDER_CACHE_DIR=" + filepath.Join(t.TempDir(), "cache")}
			for _, acct := range accounts {
				results[i] = append(results[i], n.runEnv(env, request(protocol.V1, acct+".dkr.ecr.us-east-1.amazonaws.com/app")))
			}
		}()
	}
	wg.Wait()
	for i, rs := range results {
		for j, r := range rs {
			if host := accounts[j] + ".dkr.ecr.us-east-1.amazonaws.com"; r.code != 0 || r.resp.Auth[host].Password == "" {
				t.Fatalf("node %d, account %s: exit %d: %s", i, accounts[j], r.code, r.stderr)
			}
		}
	}
	st := n.emu.Stats().Op(awsemu.TargetECR, "GetAuthorizationToken")
	if st.Status[200] != nodes {
		t.Fatalf("%d nodes made %d successful GetAuthorizationToken calls, want one each", nodes, st.Status[200])
	}
	if st.Status[400] == 0 {
		t.Fatalf("the token bucket throttled nothing (%v): the storm did not test retrying", st.Status)
	}
}

// With the node's clock hours off AWS's, the token's life is still
// measured on AWS's (the response's Date), so the kubelet keeps it for
// about 6 hours, and a second call is a cache hit.
func TestNodeClockOffAWS(t *testing.T) {
	for name, skew := range map[string]time.Duration{"node 6h behind": 6 * time.Hour, "node 13h ahead": -13 * time.Hour} {
		t.Run(name, func(t *testing.T) {
			// MaxSkew: the emulator still accepts the node's signatures, as
			// AWS does once the SDK has corrected its signing clock.
			n := newNode(t, awsemu.Options{Now: func() time.Time { return time.Now().Add(skew) }, MaxSkew: 24 * time.Hour})
			for i := range 2 {
				r := n.run(request(protocol.V1, privateImg))
				if r.code != 0 {
					t.Fatalf("call %d: exit %d: %s", i, r.code, r.stderr)
				}
				if d := r.resp.CacheDuration.Duration; d > 6*time.Hour || d < 5*time.Hour {
					t.Fatalf("call %d: cacheDuration %v, want about 6h", i, d)
				}
			}
			if got := ecrCalls(n); got != 1 {
				t.Fatalf("two calls made %d GetAuthorizationToken calls, want 1", got)
			}
		})
	}
}

// A node with no credentials anywhere gets one line that says what the
// SDK tried and how to give it credentials outside EC2.
func TestNoCredentialsSaysWhatToDo(t *testing.T) {
	n := newNode(t, awsemu.Options{})
	r := n.runEnv([]string{"AWS_EC2_METADATA_DISABLED=true"}, request(protocol.V1, privateImg))
	if r.code == 0 || r.stdout != "" {
		t.Fatalf("exit %d stdout %q", r.code, r.stdout)
	}
	line := oneLine(t, "stderr", r.stderr)
	for _, want := range []string{"no AWS credentials", "fix:", "credential_process", "AWS_PROFILE"} {
		if !strings.Contains(line, want) {
			t.Errorf("%q does not mention %q", line, want)
		}
	}
}

// When STS is what fails on the per-pod path, the one line names STS and
// its permission, not ECR's.
func TestPerPodSTSFailureNamesSTS(t *testing.T) {
	for name, setup := range map[string]func(*awsemu.Server, string){
		"throttled": func(e *awsemu.Server, _ string) {
			e.SetFault(awsemu.TargetSTS, awsemu.Fault{ErrorRate: 1, Kind: awsemu.FaultThrottle})
		},
		"role refused": func(e *awsemu.Server, role string) { e.RefuseRole(role) },
	} {
		t.Run(name, func(t *testing.T) {
			n := newNode(t, awsemu.Options{})
			role := "arn:aws:iam::210987654321:role/team-a-puller"
			setup(n.emu, role)
			in := fmt.Sprintf(`{"kind":"CredentialProviderRequest","apiVersion":%q,"image":%q,"serviceAccountToken":"a.b.c","serviceAccountAnnotations":{"eks.amazonaws.com/ecr-role-arn":%q}}`,
				protocol.V1, privateImg, role)
			r := n.run(in, "--timeout", "10s")
			if r.code == 0 || r.stdout != "" {
				t.Fatalf("exit %d stdout %q", r.code, r.stdout)
			}
			line := oneLine(t, "stderr", r.stderr)
			if !strings.Contains(line, "STS") || !strings.Contains(line, "sts:AssumeRoleWithWebIdentity") || strings.Contains(line, "ecr:GetAuthorizationToken") {
				t.Fatalf("%q: want STS and sts:AssumeRoleWithWebIdentity named, not ecr:GetAuthorizationToken", line)
			}
		})
	}
}
