package e2e

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kubecred/ecr-credential-provider/internal/awsemu"
	"github.com/kubecred/ecr-credential-provider/internal/ecrhost"
)

const (
	ecrHost  = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
	demoRepo = "demo"
	demoTag  = "v1"
	demoRef  = ecrHost + "/" + demoRepo + ":" + demoTag
	// demoGreeting is what the demo container prints: finding it in the
	// container log proves the pulled image ran.
	demoGreeting = "hello from a private ECR image"
	// registryPassword is the only password the registry accepts and the
	// one the emulator puts in every token it issues.
	registryPassword = "e2e-ecr-token-password-5f3a"
)

var demoPod = fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: demo
  namespace: default
spec:
  hostNetwork: true
  restartPolicy: Always
  containers:
  - name: demo
    image: %s
    imagePullPolicy: IfNotPresent
`, demoRef)

// providerConfig is a CredentialProviderConfig for our plugin in the given
// config and request API versions, with matchImages as `config print`
// recommends.
func providerConfig(configVersion, requestVersion string, env []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: kubelet.config.k8s.io/%s\nkind: CredentialProviderConfig\nproviders:\n", configVersion)
	b.WriteString("- name: ecr-credential-provider\n  matchImages:\n")
	for _, m := range ecrhost.MatchImages(true) {
		fmt.Fprintf(&b, "  - %q\n", m)
	}
	fmt.Fprintf(&b, "  defaultCacheDuration: 12h\n  apiVersion: credentialprovider.kubelet.k8s.io/%s\n  env:\n", requestVersion)
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		fmt.Fprintf(&b, "  - name: %s\n    value: %q\n", k, v)
	}
	return b.String()
}

// pluginEnv is what the kubelet hands the plugin: the emulator's
// endpoints, a cache directory and empty AWS config files of the test's
// own, so nothing of the host's AWS setup is read. The proxy variables
// send any request that is not to loopback (the SDK never proxies
// loopback) to a dead loopback port: a plugin that ignored the endpoint
// settings fails instead of reaching AWS.
func pluginEnv(t *testing.T, emu *awsemu.Server, dir string) []string {
	t.Helper()
	for _, f := range []string{"aws-config", "aws-credentials"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	env := append([]string{}, emu.Env()...)
	return append(env,
		"ECR_CREDENTIAL_PROVIDER_CACHE_DIR="+filepath.Join(dir, "plugin-cache"),
		"AWS_CONFIG_FILE="+filepath.Join(dir, "aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "aws-credentials"),
		"HTTPS_PROXY=http://127.0.0.1:9",
		"HTTP_PROXY=http://127.0.0.1:9",
	)
}

func startEmulator(t *testing.T) *awsemu.Server {
	t.Helper()
	emu, err := awsemu.Start(awsemu.Options{Password: registryPassword})
	if err != nil {
		t.Fatalf("starting the AWS emulator: %v", err)
	}
	t.Cleanup(emu.Close)
	return emu
}

// TestKubelet runs a real kubelet of each selected version against
// containerd, a private registry that only our plugin's token opens, and
// the AWS emulator.
func TestKubelet(t *testing.T) {
	requireNode(t)
	a := sharedArtifacts(t)
	reg := demoRegistry(t, a)
	binDir := pluginBinDir(t, a)

	for _, version := range kubeletVersions() {
		t.Run(version, func(t *testing.T) {
			kubelet := kubeletBinary(t, version)
			sc := scenario{kubelet: kubelet, a: a, reg: reg, binDir: binDir}
			t.Run("pull-through-plugin", sc.pullThroughPlugin)
			t.Run("no-provider-gets-401", sc.noProvider)
			t.Run("denied-names-permission", sc.denied)
			for _, v := range []string{"v1alpha1", "v1beta1"} {
				t.Run("config-"+v, func(t *testing.T) { sc.configVersion(t, v) })
			}
		})
	}
}

// demoRegistry starts the private registry and pushes the demo image to it.
func demoRegistry(t *testing.T, a artifacts) *registry {
	t.Helper()
	reg := startRegistry(t, shortTempDir(t, "e2e-registry-"), registryPassword)
	img, err := newImage(a.sleeper, []string{demoGreeting})
	if err != nil {
		t.Fatal(err)
	}
	if err := img.push(reg.addr, demoRepo, demoTag, "AWS", registryPassword); err != nil {
		t.Fatalf("pushing the demo image: %v\n%s", err, reg.proc.logTail(20))
	}
	return reg
}

// pluginBinDir is the kubelet's --image-credential-provider-bin-dir for
// the scenarios: the plugin built from this checkout, under the name the
// provider configs give it.
func pluginBinDir(t *testing.T, a artifacts) string {
	t.Helper()
	binDir := filepath.Join(a.dir, "plugins")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(a.plugin, filepath.Join(binDir, "ecr-credential-provider")); err != nil && !os.IsExist(err) {
		t.Fatal(err)
	}
	return binDir
}

type scenario struct {
	kubelet string
	a       artifacts
	reg     *registry
	binDir  string
}

// start brings up a node and a kubelet running the demo pod; with
// configVersion "" the kubelet gets no credential provider flags.
func (sc scenario) start(t *testing.T, emu *awsemu.Server, configVersion, requestVersion string) *node {
	t.Helper()
	n := startNode(t, sc.a, ecrHost, sc.reg.addr)
	n.registries = []string{sc.reg.proc.log}
	o := kubeletOptions{bin: sc.kubelet, pods: map[string]string{"demo": demoPod}}
	if configVersion != "" {
		o.pluginBinDir = sc.binDir
		o.providerConfig = providerConfig(configVersion, requestVersion, pluginEnv(t, emu, n.dir))
	}
	n.startKubelet(o)
	return n
}

// waitRunning waits until the demo container runs and has printed its
// greeting. A failed pull ends the wait at once: in these scenarios the
// first pull must succeed.
func waitRunning(t *testing.T, n *node) {
	t.Helper()
	var pullErr string
	ok := waitFor(90*time.Second, func() bool {
		if e := klogEntries(n.kubelet.logText(), "ErrImagePull", ecrHost+"/"+demoRepo); len(e) > 0 {
			pullErr = e[0]
			return true
		}
		return n.kubelet.exited() || strings.Contains(n.containerLog("demo"), demoGreeting) && n.containerState("demo") == "RUNNING"
	})
	switch {
	case pullErr != "":
		t.Fatalf("the kubelet failed to pull the demo image:\n%s", clip(pullErr))
	case !ok || n.kubelet.exited():
		t.Fatalf("the demo container did not start (state %q, kubelet exited: %v)", n.containerState("demo"), n.kubelet.exited())
	}
	if !n.hasImage(demoRef) {
		t.Errorf("containerd does not list %s after the pod ran", demoRef)
	}
}

// klogHeaderRE starts each klog entry; an entry with a multi-line value
// (err=<...>) continues on the lines after it.
var klogHeaderRE = regexp.MustCompile(`(?m)^[IWEF]\d{4} `)

// klogEntries returns the kubelet log entries that contain all of needles.
func klogEntries(log string, needles ...string) []string {
	var out []string
	starts := klogHeaderRE.FindAllStringIndex(log, -1)
	for i, s := range starts {
		end := len(log)
		if i+1 < len(starts) {
			end = starts[i+1][0]
		}
		e := log[s[0]:end]
		ok := true
		for _, n := range needles {
			ok = ok && strings.Contains(e, n)
		}
		if ok {
			out = append(out, e)
		}
	}
	return out
}

// waitPullFailure waits for the kubelet to report that pulling the demo
// image failed, and returns that log entry.
func waitPullFailure(t *testing.T, n *node) string {
	t.Helper()
	var line string
	ok := waitFor(90*time.Second, func() bool {
		if e := klogEntries(n.kubelet.logText(), "ErrImagePull", ecrHost+"/"+demoRepo); len(e) > 0 {
			line = e[0]
			return true
		}
		return n.kubelet.exited()
	})
	if !ok || line == "" {
		t.Fatalf("the kubelet reported no failed pull of %s (kubelet exited: %v)", demoRef, n.kubelet.exited())
	}
	return line
}

// assertNoSecrets checks the kubelet's log (which carries the plugin's
// stderr on errors) for the registry password and the token.
func assertNoSecrets(t *testing.T, n *node) {
	t.Helper()
	log := n.kubelet.logText()
	token := base64.StdEncoding.EncodeToString([]byte("AWS:" + registryPassword))
	for _, secret := range []string{registryPassword, token} {
		if strings.Contains(log, secret) {
			t.Errorf("the kubelet log contains a registry secret")
		}
	}
}

// pullThroughPlugin: the kubelet runs our plugin, which gets a token with
// one signed GetAuthorizationToken, and the private image is pulled and runs.
func (sc scenario) pullThroughPlugin(t *testing.T) {
	emu := startEmulator(t)
	n := sc.start(t, emu, "v1", "v1")
	waitRunning(t, n)

	st := emu.Stats().Op(awsemu.TargetECR, "GetAuthorizationToken")
	if st.Requests != 1 || st.Status[200] != 1 || st.SignatureFailures != 0 {
		t.Errorf("emulator saw GetAuthorizationToken %+v; want exactly one signed call answered 200", st)
	}
	for _, r := range emu.Requests() {
		if r.Target == awsemu.TargetECR && r.Principal != emu.InstanceARN() {
			t.Errorf("GetAuthorizationToken signed as %q; want the instance role %q", r.Principal, emu.InstanceARN())
		}
		if r.Target == awsemu.TargetECR && r.Region != "us-east-1" {
			t.Errorf("GetAuthorizationToken went to region %q; want the image's region us-east-1", r.Region)
		}
	}
	assertNoSecrets(t, n)
}

// noProvider is the negative control: the same pod on a kubelet without
// the provider flags is refused by the registry.
func (sc scenario) noProvider(t *testing.T) {
	emu := startEmulator(t)
	n := sc.start(t, emu, "", "")
	line := waitPullFailure(t, n)
	if !strings.Contains(line, "401 Unauthorized") {
		t.Errorf("pull failure is not the registry's 401:\n%s", line)
	}
	if n.hasImage(demoRef) {
		t.Errorf("containerd holds %s although the pull was refused", demoRef)
	}
	if st := emu.Stats(); st.Requests != 0 {
		t.Errorf("emulator saw %d requests without the plugin configured; want 0", st.Requests)
	}
}

// denied: with ecr:GetAuthorizationToken denied, the pull fails and the
// kubelet's log carries our plugin's message naming the permission.
func (sc scenario) denied(t *testing.T) {
	emu := startEmulator(t)
	emu.Deny("ecr:GetAuthorizationToken", "")
	n := sc.start(t, emu, "v1", "v1")
	waitPullFailure(t, n)
	if n.hasImage(demoRef) {
		t.Errorf("containerd holds %s although the token was denied", demoRef)
	}
	// The wording around it changed across minors; this part did not.
	entries := klogEntries(n.kubelet.logText(), "error execing credential provider plugin ecr-credential-provider")
	if len(entries) == 0 {
		t.Fatalf("the kubelet log has no credential provider failure")
	}
	pluginLine := entries[0]
	if !strings.Contains(pluginLine, "ecr:GetAuthorizationToken") {
		t.Errorf("the plugin's error does not name the missing permission ecr:GetAuthorizationToken:\n%s", pluginLine)
	}
	st := emu.Stats().Op(awsemu.TargetECR, "GetAuthorizationToken")
	if st.Requests == 0 || st.Status[200] != 0 {
		t.Errorf("emulator saw GetAuthorizationToken %+v; want only refused calls", st)
	}
	assertNoSecrets(t, n)
}

// configVersion: the older CredentialProviderConfig versions the kubelet
// still reads, each with the request version of the same name, work too.
func (sc scenario) configVersion(t *testing.T, version string) {
	emu := startEmulator(t)
	n := sc.start(t, emu, version, version)
	waitRunning(t, n)
	if st := emu.Stats().Op(awsemu.TargetECR, "GetAuthorizationToken"); st.Status[200] != 1 {
		t.Errorf("emulator saw GetAuthorizationToken %+v; want one call answered 200", st)
	}
}
