package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kubecred/ecr-credential-provider/internal/awsemu"
	"github.com/kubecred/ecr-credential-provider/internal/noderbac"
)

// The per-pod scenarios' cast: two roles whose images live in registries
// that only the role's own password opens, a role whose trust policy names
// someone else, and the node's registry.
const (
	ppNamespace = "e2e"
	ppAudience  = "sts.amazonaws.com"
	ppRoleKey   = "eks.amazonaws.com/ecr-role-arn"
	ppSession   = "ecr-credential-provider" // the plugin's role session name

	roleA     = "arn:aws:iam::111111111111:role/team-a-puller"
	roleB     = "arn:aws:iam::222222222222:role/team-b-puller"
	roleC     = "arn:aws:iam::111111111111:role/trusts-someone-else"
	hostA     = "111111111111.dkr.ecr.us-east-1.amazonaws.com"
	hostB     = "222222222222.dkr.ecr.us-east-1.amazonaws.com"
	imageA    = hostA + "/app-a:v1"
	imageB    = hostB + "/app-b:v1"
	nodeImage = ecrHost + "/" + demoRepo + ":" + demoTag
	greetingA = "hello from role A's image"
	greetingB = "hello from role B's image"
)

// ppServiceAccounts are the service accounts and the role each names
// ("" = no annotation).
var ppServiceAccounts = map[string]string{
	"sa-a":     roleA,
	"sa-b":     roleB,
	"sa-c":     roleC,
	"sa-rbac":  roleA, // scenario 5's own, so no earlier pull left it in the kubelet's cache
	"sa-plain": "",
}

// perPodProviderConfig is what `config print --per-pod-roles` writes, with
// the plugin's env: the kubelet requests a token for the STS audience and
// passes the role annotation when there is one, and pods without it keep
// the node's credentials.
func perPodProviderConfig(t *testing.T, plugin, kubeletVersion string, env []string) string {
	t.Helper()
	args := []string{"config", "print", "--per-pod-roles", "--kubelet-version", kubeletVersion}
	for _, kv := range env {
		args = append(args, "--env", kv)
	}
	out, err := exec.Command(plugin, args...).Output()
	if err != nil {
		t.Fatalf("config print --per-pod-roles: %v", err)
	}
	for _, want := range []string{"serviceAccountTokenAudience: " + ppAudience, "- " + ppRoleKey} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("config print --per-pod-roles lacks %q:\n%s", want, out)
		}
	}
	return string(out)
}

// audienceRBAC is what `ecr-credential-provider rbac` prints: it lets nodes
// request service account tokens for the STS audience (enforced by
// NodeRestriction since ServiceAccountNodeAudienceRestriction).
func audienceRBAC(t *testing.T) []struct{ collection, name, manifest string } {
	t.Helper()
	role, binding, err := noderbac.Objects(ppAudience)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := json.Marshal(role)
	b, _ := json.Marshal(binding)
	return []struct{ collection, name, manifest string }{
		{"/apis/rbac.authorization.k8s.io/v1/clusterroles", role.Metadata.Name, string(r)},
		{"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", binding.Metadata.Name, string(b)},
	}
}

// perPodCluster is what the scenarios of every kubelet version share.
type perPodCluster struct {
	cp         *controlPlane
	emu        *awsemu.Server
	a          artifacts
	binDir     string
	registries map[string]string // host -> address
	passwords  map[string]string // role ARN -> the registry password of its tokens
	regLogs    []string
}

// TestPerPodRoles proves per-pod IAM roles the way a cluster runs them: a
// kubelet registered to a real API server that mints the pods' service
// account tokens, the emulator's STS judging them against the API server's
// own OIDC discovery and keys and each role's trust policy, and registries
// that only the right role's password opens. One control plane at the
// newest version serves every kubelet version (skew is allowed).
func TestPerPodRoles(t *testing.T) {
	requireNode(t)
	if _, err := os.Stat(loopbackCNIPlugin); err != nil {
		t.Fatalf("%s is missing (the nodes need it to become Ready)\ninstall it with:\n  apt-get update && apt-get install -y containernetworking-plugins", loopbackCNIPlugin)
	}
	versions := kubeletVersions()
	cpVersion := newestVersion(versions)
	a := sharedArtifacts(t)
	bins := controlPlaneBinaries(t, cpVersion)
	c := &perPodCluster{a: a, cp: startControlPlane(t, bins, cpVersion)}
	c.setUpAWS(t)
	c.setUpRegistries(t)
	c.setUpKubernetes(t)

	for _, version := range versions {
		t.Run(version, func(t *testing.T) {
			kubelet := bins["kubelet"] // built with the control plane
			if version != cpVersion {
				kubelet = kubeletBinary(t, version)
			}
			s := c.startNode(t, version, kubelet)
			// 5 runs first: it needs the cluster without the audience RBAC,
			// which it then grants for the others.
			t.Run("5-no-audience-rbac", s.noAudienceRBAC)
			c.grantAudience(t)
			t.Run("1-role-a", s.roleA)
			t.Run("2-two-roles-together", s.twoRoles)
			t.Run("3-trust-policy-refuses", s.trustRefuses)
			t.Run("4-no-annotation-node-credentials", s.noAnnotation)
		})
	}
}

// newestVersion is the highest v1.MINOR.PATCH of versions.
func newestVersion(versions []string) string {
	best, bestMinor, bestPatch := "", -1, -1
	for _, v := range versions {
		var minor, patch int
		if _, err := fmt.Sscanf(v, "v1.%d.%d", &minor, &patch); err != nil {
			continue
		}
		if minor > bestMinor || minor == bestMinor && patch > bestPatch {
			best, bestMinor, bestPatch = v, minor, patch
		}
	}
	return best
}

// setUpAWS starts the emulator and registers, as an account admin would,
// the cluster's issuer as an IAM OIDC provider and the roles with their
// trust policies. The emulator reaches the issuer over HTTPS with the
// cluster CA, as IAM does with a public one.
func (c *perPodCluster) setUpAWS(t *testing.T) {
	emu, err := awsemu.Start(awsemu.Options{})
	if err != nil {
		t.Fatalf("starting the AWS emulator: %v", err)
	}
	t.Cleanup(emu.Close)
	c.emu = emu
	if err := emu.RegisterOIDCProvider(awsemu.OIDCProvider{URL: c.cp.url, ClientIDs: []string{ppAudience}, CAPEM: string(c.cp.pki.caPEM)}); err != nil {
		t.Fatal(err)
	}
	sa := func(name string) string { return "system:serviceaccount:" + ppNamespace + ":" + name }
	c.passwords = map[string]string{}
	for role, subs := range map[string][]string{
		roleA: {sa("sa-a"), sa("sa-rbac")},
		roleB: {sa("sa-b")},
		roleC: {sa("someone-else")},
	} {
		c.passwords[role] = "pw-" + role[strings.LastIndex(role, "/")+1:] + "-e2e"
		if err := emu.RegisterRole(awsemu.Role{ARN: role, Password: c.passwords[role], TrustPolicy: irsaTrustPolicy(emu.OIDCProviderARN(c.cp.url), c.cp.url, subs)}); err != nil {
			t.Fatal(err)
		}
	}
	// The issuer is reachable the way IAM reaches it: anonymously.
	if code, body, err := c.cp.fetchAnonymous("/.well-known/openid-configuration"); err != nil || code != http.StatusOK || !strings.Contains(string(body), c.cp.url+"/openid/v1/jwks") {
		t.Fatalf("anonymous OIDC discovery: %d %v %s", code, err, body)
	}
}

// irsaTrustPolicy is the trust policy EKS documents for IAM roles for
// service accounts, for the given subjects and the STS audience.
func irsaTrustPolicy(providerARN, issuer string, subs []string) string {
	hostPath := strings.TrimPrefix(issuer, "https://")
	b, err := json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": []any{map[string]any{
		"Effect":    "Allow",
		"Principal": map[string]string{"Federated": providerARN},
		"Action":    "sts:AssumeRoleWithWebIdentity",
		"Condition": map[string]any{"StringEquals": map[string]any{hostPath + ":sub": subs, hostPath + ":aud": ppAudience}},
	}}})
	if err != nil {
		panic(err)
	}
	return string(b)
}

// setUpRegistries starts one registry per role and one for the node, each
// accepting only its own password, and pushes an image to each.
func (c *perPodCluster) setUpRegistries(t *testing.T) {
	c.registries = map[string]string{}
	nodePassword := c.emu.PasswordFor(c.emu.InstanceARN())
	for _, r := range []struct{ host, image, password, greeting string }{
		{hostA, imageA, c.passwords[roleA], greetingA},
		{hostB, imageB, c.passwords[roleB], greetingB},
		{ecrHost, nodeImage, nodePassword, demoGreeting},
	} {
		reg := startRegistry(t, shortTempDir(t, "e2e-registry-"), r.password)
		c.registries[r.host] = reg.addr
		c.regLogs = append(c.regLogs, reg.proc.log)
		img, err := newImage(c.a.sleeper, []string{r.greeting})
		if err != nil {
			t.Fatal(err)
		}
		repo, tag, _ := strings.Cut(strings.TrimPrefix(r.image, r.host+"/"), ":")
		if err := img.push(reg.addr, repo, tag, "AWS", r.password); err != nil {
			t.Fatalf("pushing %s: %v", r.image, err)
		}
		// Negative control of the registry itself: the other passwords
		// are refused, so a pull proves which role's token the kubelet had.
		for _, other := range []string{c.passwords[roleA], c.passwords[roleB], nodePassword} {
			if other != r.password && registryAccepts(t, reg.addr, other) {
				t.Fatalf("the registry for %s accepts another principal's password", r.host)
			}
		}
	}
	c.binDir = pluginBinDir(t, c.a)
}

func registryAccepts(t *testing.T, addr, password string) bool {
	req, _ := http.NewRequest("GET", "http://"+addr+"/v2/", nil)
	req.SetBasicAuth("AWS", password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func (c *perPodCluster) setUpKubernetes(t *testing.T) {
	c.cp.mustApply(t, "/api/v1/namespaces", "apiVersion: v1\nkind: Namespace\nmetadata: {name: "+ppNamespace+"}\n")
	for name, role := range ppServiceAccounts {
		ann := ""
		if role != "" {
			ann = fmt.Sprintf("\n  annotations: {%q: %q}", ppRoleKey, role)
		}
		c.cp.mustApply(t, "/api/v1/namespaces/"+ppNamespace+"/serviceaccounts",
			fmt.Sprintf("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: %s%s\n", name, ann))
	}
}

// revokeAudience and grantAudience remove and add the nodes' permission to
// request tokens for the STS audience.
func (c *perPodCluster) revokeAudience(t *testing.T) {
	for _, o := range audienceRBAC(t) {
		c.cp.mustDelete(t, o.collection+"/"+o.name)
	}
}

func (c *perPodCluster) grantAudience(t *testing.T) {
	for _, o := range audienceRBAC(t) {
		code, body := c.cp.do("POST", o.collection, o.manifest, nil)
		if code != http.StatusCreated && code != http.StatusConflict {
			t.Fatalf("creating %s: %d %s", o.name, code, body)
		}
	}
}

// ppNode is one kubelet version's node, registered to the control plane.
type ppNode struct {
	c      *perPodCluster
	n      *node
	name   string
	suffix string // tells this version's pods apart: the minor
}

func (c *perPodCluster) startNode(t *testing.T, version, kubelet string) *ppNode {
	var minor int
	fmt.Sscanf(version, "v1.%d.", &minor) //nolint:errcheck // kubeletBinary checked the form
	s := &ppNode{c: c, suffix: fmt.Sprint(minor), name: fmt.Sprintf("e2e-node-%d", minor)}
	s.n = startNodeWith(t, c.a, nodeSpec{registries: c.registries, loopbackCNI: true})
	s.n.registries = c.regLogs
	s.n.startKubelet(kubeletOptions{
		bin:            kubelet,
		pluginBinDir:   c.binDir,
		providerConfig: perPodProviderConfig(t, c.a.plugin, version, pluginEnv(t, c.emu, s.n.dir)),
		kubeconfig:     c.cp.nodeKubeconfig(t, s.name),
		nodeName:       s.name,
		clientCA:       c.cp.pki.CAFile,
	})
	c.cp.waitNodeReady(t, s.name, s.n.kubelet)
	return s
}

// createPod starts a pod of sa pulling image on this node (Always, so the
// kubelet asks the registry, and so the plugin, every time) and deletes it
// when the scenario ends. It returns the pod's name, which is also its
// container's.
func (s *ppNode) createPod(t *testing.T, base, sa, image string) string {
	name := base + "-" + s.suffix
	s.c.cp.mustApply(t, "/api/v1/namespaces/"+ppNamespace+"/pods", fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %[1]s, namespace: %[2]s}
spec:
  nodeName: %[3]s
  # The loopback-only CNI network makes the node Ready, but containerd 1.6
  # finds no pod IP in it ("failed to find network info for sandbox"):
  # pods use the host's network, which they never change.
  hostNetwork: true
  serviceAccountName: %[4]s
  automountServiceAccountToken: false
  restartPolicy: Always
  terminationGracePeriodSeconds: 0
  tolerations: [{operator: Exists}]
  containers:
  - {name: %[1]s, image: %[5]q, imagePullPolicy: Always}
`, name, ppNamespace, s.name, sa, image))
	t.Cleanup(func() { s.c.cp.mustDelete(t, "/api/v1/namespaces/"+ppNamespace+"/pods/"+name+"?gracePeriodSeconds=0") })
	return name
}

// waitGreeting checks the pod ran the image: its container printed the
// image's greeting.
func (s *ppNode) waitGreeting(t *testing.T, pod, greeting string) {
	t.Helper()
	s.c.cp.waitPod(t, ppNamespace, pod, "running")
	if !waitFor(30*time.Second, func() bool { return strings.Contains(s.n.containerLog(pod), greeting) }) {
		t.Errorf("pod %s runs but its log lacks %q: %q", pod, greeting, s.n.containerLog(pod))
	}
}

// webIdentityCalls are the emulator's AssumeRoleWithWebIdentity records.
func (s *ppNode) webIdentityCalls() []awsemu.Record {
	var out []awsemu.Record
	for _, r := range s.c.emu.Requests() {
		if r.Operation == "AssumeRoleWithWebIdentity" {
			out = append(out, r)
		}
	}
	return out
}

// 1: a pod whose service account names role A pulls the image only role
// A's password opens, and STS saw a verified token of that service account
// for the STS audience.
func (s *ppNode) roleA(t *testing.T) {
	s.c.emu.ResetStats()
	pod := s.createPod(t, "role-a", "sa-a", imageA)
	s.waitGreeting(t, pod, greetingA)
	calls := s.webIdentityCalls()
	ok := slices.ContainsFunc(calls, func(r awsemu.Record) bool {
		return r.Status == http.StatusOK && r.WebIdentitySubject == "system:serviceaccount:"+ppNamespace+":sa-a" &&
			r.WebIdentityAudience == ppAudience && r.Principal == awsemu.AssumedRoleARN(roleA, ppSession)
	})
	if !ok {
		t.Errorf("STS saw no accepted AssumeRoleWithWebIdentity of role A for sa-a with audience %s: %+v", ppAudience, calls)
	}
	for _, r := range s.c.emu.Requests() {
		if r.Target == awsemu.TargetECR && r.Principal != awsemu.AssumedRoleARN(roleA, ppSession) {
			t.Errorf("ECR was called as %s; want only role A", r.Principal)
		}
	}
}

// 2: two pods with different service accounts and roles, started
// together, each run their own role's image, and the plugin's disk cache
// holds nothing of either (per-pod credentials are never shared).
func (s *ppNode) twoRoles(t *testing.T) {
	pa := s.createPod(t, "two-a", "sa-a", imageA)
	pb := s.createPod(t, "two-b", "sa-b", imageB)
	s.waitGreeting(t, pa, greetingA)
	s.waitGreeting(t, pb, greetingB)
	var secrets []string
	for _, role := range []string{roleA, roleB} {
		pw := s.c.passwords[role]
		secrets = append(secrets, pw, base64.StdEncoding.EncodeToString([]byte("AWS:"+pw)), role, awsemu.AssumedRoleARN(role, ppSession))
	}
	cache := filepath.Join(s.n.dir, "plugin-cache")
	err := filepath.WalkDir(cache, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, sec := range secrets {
			if strings.Contains(string(b), sec) || strings.Contains(p, sec) {
				t.Errorf("the plugin's cache file %s holds per-pod credentials or their role", p)
			}
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
}

// 3: a role whose trust policy names another service account: STS refuses
// the token, the pull fails, and the kubelet's log carries the plugin's
// one-line error naming the trust policy.
func (s *ppNode) trustRefuses(t *testing.T) {
	s.c.emu.ResetStats()
	pod := s.createPod(t, "trust-c", "sa-c", imageA)
	s.c.cp.waitPod(t, ppNamespace, pod, "pull-failed")
	calls := s.webIdentityCalls()
	if !slices.ContainsFunc(calls, func(r awsemu.Record) bool {
		return r.Error == "AccessDenied" && r.WebIdentitySubject == "system:serviceaccount:"+ppNamespace+":sa-c"
	}) {
		t.Errorf("STS did not refuse sa-c's token for role C: %+v", calls)
	}
	var entries []string
	waitFor(30*time.Second, func() bool {
		entries = klogEntries(s.n.kubelet.logText(), "error execing credential provider plugin ecr-credential-provider", "trust policy")
		return len(entries) > 0
	})
	if len(entries) == 0 {
		t.Fatalf("the kubelet log has no plugin error naming the trust policy")
	}
	if !strings.Contains(entries[0], "sts:AssumeRoleWithWebIdentity") {
		t.Errorf("the plugin's error does not name sts:AssumeRoleWithWebIdentity:\n%s", entries[0])
	}
}

// 4: a pod whose service account has no role annotation pulls with the
// node's credentials.
func (s *ppNode) noAnnotation(t *testing.T) {
	s.c.emu.ResetStats()
	pod := s.createPod(t, "plain", "sa-plain", nodeImage)
	s.waitGreeting(t, pod, demoGreeting)
	// Calls for another service account are not this pod's: scenario 3's
	// pod stays in image pull back-off, and the kubelet's retry of it asks
	// STS for role C again. A call whose token names no subject counts.
	if calls := slices.DeleteFunc(s.webIdentityCalls(), func(r awsemu.Record) bool {
		return r.WebIdentitySubject != "" && r.WebIdentitySubject != "system:serviceaccount:"+ppNamespace+":sa-plain"
	}); len(calls) != 0 {
		t.Errorf("STS was asked to assume a role for a pod without one: %+v", calls)
	}
	for _, r := range s.c.emu.Requests() {
		if r.Target == awsemu.TargetECR && r.Principal != s.c.emu.InstanceARN() {
			t.Errorf("ECR was called as %s; want the node's role %s", r.Principal, s.c.emu.InstanceARN())
		}
	}
}

// 5: without the RBAC that lets nodes request tokens for the STS
// audience, the kubelet never calls the plugin and the pull gets the
// registry's 401; with it, the same pod spec pulls.
func (s *ppNode) noAudienceRBAC(t *testing.T) {
	s.c.revokeAudience(t)
	s.c.emu.ResetStats()
	pod := s.createPod(t, "rbac", "sa-rbac", imageA)
	msg := s.c.cp.waitPod(t, ppNamespace, pod, "pull-failed")
	if !strings.Contains(msg, "401") {
		t.Errorf("the pull failed, but not with the registry's 401: %s", msg)
	}
	if st := s.c.emu.Stats(); st.Requests != 0 {
		t.Errorf("the emulator saw %d requests: the plugin was called without the audience RBAC", st.Requests)
	}
	denied := klogEntries(s.n.kubelet.logText(), "not authorized to request tokens for audience", ppAudience)
	if len(denied) == 0 {
		t.Errorf("the kubelet log does not say the node may not request tokens for %s", ppAudience)
	}

	// The doctor, asking the API server as this node, names what is missing.
	out := s.doctorServiceAccount(t, "sa-rbac")
	if !strings.Contains(out, noderbac.ClusterRoleName) || !strings.Contains(out, noderbac.Apply) {
		t.Errorf("doctor --service-account without the audience RBAC does not name %s and %q:\n%s", noderbac.ClusterRoleName, noderbac.Apply, out)
	}

	s.c.grantAudience(t)
	if out := s.doctorServiceAccount(t, "sa-rbac"); strings.Contains(out, noderbac.Apply) {
		t.Errorf("doctor --service-account still asks for the audience RBAC after it was granted:\n%s", out)
	}
	s.c.emu.ResetStats()
	again := s.createPod(t, "rbac-granted", "sa-rbac", imageA)
	s.waitGreeting(t, again, greetingA)
	if !slices.ContainsFunc(s.webIdentityCalls(), func(r awsemu.Record) bool {
		return r.Status == http.StatusOK && r.WebIdentitySubject == "system:serviceaccount:"+ppNamespace+":sa-rbac"
	}) {
		t.Errorf("with the audience RBAC, STS saw no accepted token of sa-rbac")
	}
}

// doctorServiceAccount runs the plugin binary's doctor for imageA and the
// service account sa as this node would: with the node's kubeconfig, the
// provider config the kubelet reads and the plugin's environment.
func (s *ppNode) doctorServiceAccount(t *testing.T, sa string) string {
	t.Helper()
	cfg := filepath.Join(s.n.dir, "doctor-provider-config.yaml")
	env := pluginEnv(t, s.c.emu, s.n.dir)
	if err := os.WriteFile(cfg, []byte(perPodProviderConfig(t, s.c.a.plugin, "v1."+s.suffix, env)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(s.c.a.plugin, "doctor", imageA, "--service-account", ppNamespace+"/"+sa,
		"--kubeconfig", s.c.cp.nodeKubeconfig(t, s.name), "--config", cfg, "--bin-dir", s.c.binDir, "--timeout", "60s")
	cmd.Env = append(baseEnv(), env...)
	out, _ := cmd.CombinedOutput() // its exit status is 1 when any check fails; the text says which
	return string(out)
}
