package main_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubecred/ecr-credential-provider/internal/awsemu"
	"github.com/kubecred/ecr-credential-provider/internal/providerconfig"
)

// TestDoctorServiceAccount runs 'doctor --service-account' in the built
// binary: a kubeconfig file, a token on stdin, an API server that answers
// as kube-apiserver does, and STS through the SDK to the emulator. The image
// is not ECR, so nothing but the per-pod path talks to the network.
func TestDoctorServiceAccount(t *testing.T) {
	const role = "arn:aws:iam::123456789012:role/team-app-ecr"
	const apiToken = "node-bearer-token-secret"
	var mu sync.Mutex
	var seen []string
	rbac := false
	api := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, r.Method+" "+r.URL.Path)
		if r.Header.Get("Authorization") != "Bearer "+apiToken {
			w.WriteHeader(401)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews":
			w.WriteHeader(201)
			json.NewEncoder(w).Encode(map[string]any{"status": map[string]any{"allowed": rbac}})
		case "/api/v1/namespaces/team/serviceaccounts/app":
			json.NewEncoder(w).Encode(map[string]any{"metadata": map[string]any{"name": "app", "namespace": "team",
				"annotations": map[string]string{"eks.amazonaws.com/ecr-role-arn": role}}})
		default:
			w.WriteHeader(403)
			json.NewEncoder(w).Encode(map[string]any{"kind": "Status", "reason": "Forbidden", "message": "forbidden", "code": 403})
		}
	}))
	defer api.Close()

	dir := t.TempDir()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: api.Certificate().Raw})
	kubeconfig := filepath.Join(dir, "kubelet.conf")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(kubeconfig, []byte("apiVersion: v1\nkind: Config\ncurrent-context: n\ncontexts: [{name: n, context: {cluster: c, user: u}}]\n"+
		"clusters: [{name: c, cluster: {server: '"+api.URL+"', certificate-authority-data: "+base64.StdEncoding.EncodeToString(ca)+"}}]\n"+
		"users: [{name: u, user: {token: "+apiToken+"}}]\n"), 0o600))
	cfg, err := providerconfig.Recommended(providerconfig.RecommendedOptions{PerPodRoles: true, Name: "ghcr"})
	must(err)
	// The provider must match the image for its tokenAttributes to count.
	cfgPath := filepath.Join(dir, "config.yaml")
	must(os.WriteFile(cfgPath, bytes.Replace(cfg, []byte("    matchImages:\n"), []byte("    matchImages:\n      - ghcr.io\n"), 1), 0o644))

	emu, err := awsemu.Start(awsemu.Options{})
	must(err)
	defer emu.Close()
	env, err := emu.IsolatedEnv(t.TempDir())
	must(err)
	payload, _ := json.Marshal(map[string]any{"iss": "https://oidc.example.com/id/C1", "sub": "system:serviceaccount:team:app", "aud": []string{"sts.amazonaws.com"}, "exp": time.Now().Add(time.Hour).Unix()})
	saToken := "eyJhbGciOiJSUzI1NiJ9." + base64.RawURLEncoding.EncodeToString(payload) + ".c2lnLXNlY3JldA"

	run := func() (int, string, string) {
		cmd := exec.Command(binary, "doctor", "--service-account", "team/app", "--kubeconfig", kubeconfig, "--service-account-token", "-",
			"--config", cfgPath, "--proc", t.TempDir(), "ghcr.io/org/app:v1")
		cmd.Env, cmd.Stdin = env, strings.NewReader(saToken+"\n")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{saToken, apiToken} {
			if strings.Contains(out.String()+errb.String(), secret) {
				t.Errorf("a secret appears in the output:\n%s", out.String())
			}
		}
		return code, out.String(), errb.String()
	}

	code, out, errOut := run()
	for _, want := range []string{
		"✓ Per-pod: tokenAttributes",
		"✗ Per-pod: audience RBAC",
		"ecr-credential-provider rbac | kubectl apply -f -",
		"✓ Per-pod: service account   service account team/app names role " + role,
		"✓ Per-pod: web identity      assumed " + role + " with a token for system:serviceaccount:team:app",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("without RBAC the report lacks %q (exit %d, stderr %q):\n%s", want, code, errOut, out)
		}
	}
	if code != 1 {
		t.Errorf("exit %d with the RBAC missing, want 1", code)
	}
	if n := emu.Stats().Op(awsemu.TargetSTS, "AssumeRoleWithWebIdentity").Requests; n != 1 {
		t.Errorf("STS saw %d AssumeRoleWithWebIdentity calls, want 1", n)
	}

	mu.Lock()
	rbac = true
	mu.Unlock()
	_, out, _ = run()
	if !strings.Contains(out, "✓ Per-pod: audience RBAC") {
		t.Errorf("with the RBAC the check still fails:\n%s", out)
	}
}
