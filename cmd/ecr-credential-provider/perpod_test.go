package main_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/kubecred/ecr-credential-provider/internal/noderbac"
)

// runCommand runs an operator subcommand of the built binary.
func runCommand(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

// TestRBACManifestForKubectl: what 'rbac' prints is a YAML stream of the
// two objects kubectl apply needs, for the audience asked.
func TestRBACManifestForKubectl(t *testing.T) {
	for _, aud := range []string{"", "ecr.example.com"} {
		args := []string{"rbac"}
		want := "sts.amazonaws.com"
		if aud != "" {
			args, want = append(args, "--audience", aud), aud
		}
		code, out, errOut := runCommand(t, "", args...)
		if code != 0 || errOut != "" {
			t.Fatalf("rbac: exit %d: %s", code, errOut)
		}
		docs := strings.Split(out, "\n---\n")
		if len(docs) != 2 {
			t.Fatalf("%d YAML documents, want 2:\n%s", len(docs), out)
		}
		var role noderbac.ClusterRole
		var binding noderbac.ClusterRoleBinding
		if err := yaml.UnmarshalStrict([]byte(docs[0]), &role); err != nil {
			t.Fatal(err)
		}
		if err := yaml.UnmarshalStrict([]byte(docs[1]), &binding); err != nil {
			t.Fatal(err)
		}
		if role.Kind != "ClusterRole" || len(role.Rules) != 1 || role.Rules[0].Resources[0] != want || role.Rules[0].Verbs[0] != "request-serviceaccounts-token-audience" ||
			binding.Kind != "ClusterRoleBinding" || binding.Subjects[0].Name != "system:nodes" || binding.RoleRef.Name != role.Metadata.Name {
			t.Errorf("objects %+v %+v", role, binding)
		}
	}
	if code, out, errOut := runCommand(t, "", "rbac", "--audience", ""); code != 2 || out != "" || !strings.Contains(errOut, "audience is empty") {
		t.Errorf("empty audience: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// TestPerPodConfigPrintValidates: the printed per-pod config passes the
// binary's own validate for the kubelet it was printed for, and a kubelet
// that cannot take it is refused with one line saying what to do.
func TestPerPodConfigPrintValidates(t *testing.T) {
	dir := t.TempDir()
	for _, v := range []string{"v1.34", "v1.37"} {
		code, out, errOut := runCommand(t, "", "config", "print", "--per-pod-roles", "--kubelet-version", v, "--env", "AWS_PROFILE=ecr", "--env", "HTTPS_PROXY=http://proxy.internal:3128")
		if code != 0 || errOut != "" {
			t.Fatalf("config print %s: exit %d: %s", v, code, errOut)
		}
		path := filepath.Join(dir, v+".yaml")
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		code, vout, _ := runCommand(t, "", "config", "validate", "--kubelet-version", v, path)
		if code != 0 || !strings.Contains(vout, "0 errors, 0 warnings") {
			t.Errorf("config validate %s: exit %d\n%s\n%s", v, code, vout, out)
		}
		// Negative control: the same file on a kubelet without tokenAttributes.
		if code, vout, _ := runCommand(t, "", "config", "validate", "--kubelet-version", "v1.32", path); code != 1 || !strings.Contains(vout, "tokenAttributes") {
			t.Errorf("kubelet v1.32 accepted tokenAttributes: exit %d\n%s", code, vout)
		}
	}
	code, out, errOut := runCommand(t, "", "config", "print", "--per-pod-roles", "--kubelet-version", "v1.32")
	if code != 2 || out != "" || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, "upgrade the kubelet") {
		t.Errorf("kubelet v1.32: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}
