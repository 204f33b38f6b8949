package doctor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kubecred/ecr-credential-provider/internal/protocol"
	"github.com/kubecred/ecr-credential-provider/internal/providerconfig"
)

// checkPlugin runs the installed plugin the way the kubelet does: the
// provider's args, the kubelet's environment plus the provider's env, the
// request in the provider's apiVersion on stdin, and a time limit.
func (r *run) checkPlugin(ctx context.Context) Check {
	if r.wiring.binPath == "" {
		switch {
		case r.o.RunPlugin:
			return skipped(CheckPlugin, "--run-plugin: no usable provider binary (see the provider checks; pass --config and --bin-dir when no kubelet runs here)")
		case !r.wiring.found:
			return skipped(CheckPlugin, "no kubelet found; pass --run-plugin with --config and --bin-dir to run an installed plugin")
		}
		return skipped(CheckPlugin, "no usable provider binary (see the provider checks)")
	}
	if !r.wiring.found && !r.o.RunPlugin {
		return skipped(CheckPlugin, "no kubelet found; pass --run-plugin to run "+r.wiring.binPath)
	}
	p := r.wiring.matching[0]
	name, _ := providerconfig.ImageName(r.o.Image)
	req, _ := json.Marshal(protocol.Request{Kind: protocol.RequestKind, APIVersion: p.APIVersion, Image: name})

	env, envFrom := r.wiring.environ, "the kubelet's environment"
	if env == nil {
		env, envFrom = r.o.Environ(), "this shell's environment (the kubelet's could not be read)"
	}
	env = slices.Clone(env)
	for _, e := range p.Env {
		env = append(env, e.Name+"="+e.Value)
	}

	pctx, cancel := context.WithTimeout(ctx, r.o.PluginTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(pctx, r.wiring.binPath, p.Args...)
	cmd.Env, cmd.Stdin, cmd.Stdout, cmd.Stderr = env, bytes.NewReader(req), &stdout, &stderr
	// A plugin that leaves a child holding its pipes must not hold the
	// doctor past its deadline.
	cmd.WaitDelay = time.Second
	shown := filepath.Join(r.shownBinDir(), p.Name)
	how := "ran " + strings.Join(append([]string{shown}, p.Args...), " ") + " with " + envFrom
	err := cmd.Run()
	if err != nil {
		tail := lastLines(stderr.String(), 3)
		var c Check
		switch {
		case pctx.Err() != nil:
			c = failed(CheckPlugin, fmt.Sprintf("%s: no answer within %s", how, r.o.PluginTimeout), "the plugin hangs: see the network and credentials checks above; the kubelet gives it one minute")
		default:
			var ee *exec.ExitError
			status := err.Error()
			if errors.As(err, &ee) {
				status = fmt.Sprintf("exit status %d", ee.ExitCode())
			}
			c = failed(CheckPlugin, fmt.Sprintf("%s: %s: %s", how, status, tail), "the plugin's message says why; the checks above point at the cause")
		}
		return c
	}
	resp, err := decodeResponse(stdout.Bytes(), p.APIVersion)
	if err != nil {
		return failed(CheckPlugin, how+": "+err.Error(), "the kubelet drops answers it cannot decode: install a plugin build that speaks "+p.APIVersion)
	}
	var keys []string
	var user, pass string
	for k, a := range resp.Auth {
		r.secrets.add(a.Password)
		if ok, _ := providerconfig.URLsMatchStr(k, name); ok && user == "" {
			user, pass = a.Username, a.Password
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if user == "" {
		return failed(CheckPlugin, fmt.Sprintf("%s: the answer has auth for %s, none of which matches %s", how, strings.Join(keys, ", "), name),
			"the kubelet uses an auth entry only if its key matches the image: the plugin must answer for the image's registry host")
	}
	s := fmt.Sprintf("%s: auth for %s: user %s, password %s (%d chars), cacheKeyType %s", how, strings.Join(keys, ", "), user, redacted, len(pass), resp.CacheKeyType)
	if resp.CacheDuration != nil {
		s += ", cacheDuration " + resp.CacheDuration.String()
	}
	if r.tokOK && r.loggedIn && r.rc.scheme == "basic" {
		// The plugin may use other credentials than this shell: try its
		// answer against the registry too.
		rc := &registryClient{r: r, base: r.rc.base, hc: r.rc.hc, user: user, pass: pass}
		if _, err := rc.login(ctx, r.ref.Path); err != nil {
			return failed(CheckPlugin, s+"; but the registry refuses it: "+oneLine(err.Error()),
				"the plugin's credentials differ from this shell's: compare the provider's env in the config with the shell's AWS settings")
		}
		s += "; the registry accepts it"
	}
	c := passed(CheckPlugin, s)
	c.fact("username", user)
	c.fact("cacheKeyType", string(resp.CacheKeyType))
	return c
}

func (r *run) shownBinDir() string {
	s, _ := r.binDir()
	return s
}

// decodeResponse checks the answer as the kubelet does: its apiVersion
// must be the request's.
func decodeResponse(data []byte, apiVersion string) (protocol.Response, error) {
	var resp protocol.Response
	if err := json.Unmarshal(data, &resp); err != nil {
		// The kubelet never echoes an undecodable answer: it may hold a password.
		return resp, errors.New("its answer on stdout is not a CredentialProviderResponse JSON")
	}
	if resp.APIVersion != apiVersion {
		return resp, fmt.Errorf("its answer has apiVersion %q, the kubelet wants %q (the request's)", resp.APIVersion, apiVersion)
	}
	if resp.Kind != protocol.ResponseKind {
		return resp, fmt.Errorf("its answer has kind %q, want %s", resp.Kind, protocol.ResponseKind)
	}
	return resp, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return oneLine(strings.Join(lines, " | "))
}
