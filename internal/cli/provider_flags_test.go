package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubecred/ecr-credential-provider/internal/providerconfig"
)

// TestConfigPrintPerPodAndEnv: the flags reach the config, and what is
// printed passes 'config validate' for the same kubelet.
func TestConfigPrintPerPodAndEnv(t *testing.T) {
	cases := []struct {
		name     string
		args     []string
		validate []string
		want     []string
		wantNot  []string
	}{
		{"per-pod roles, newest kubelet", []string{"--per-pod-roles"}, nil,
			[]string{"tokenAttributes:", "serviceAccountTokenAudience: sts.amazonaws.com", "cacheType: ServiceAccount", "requireServiceAccount: false", "- eks.amazonaws.com/ecr-role-arn"}, []string{"args:"}},
		{"1.33 with the gate", []string{"--per-pod-roles", "--kubelet-version", "v1.33", "--feature-gates", "KubeletServiceAccountTokenForCredentialProviders=true"},
			[]string{"--kubelet-version", "v1.33", "--feature-gates", "KubeletServiceAccountTokenForCredentialProviders=true"},
			[]string{"requireServiceAccount: false"}, []string{"cacheType"}},
		{"own annotation keys and audience", []string{"--per-pod-roles", "--role-annotation", "example.com/ecr-role", "--role-annotation", "eks.amazonaws.com/ecr-role-arn", "--audience", "ecr.example.com"}, nil,
			[]string{"serviceAccountTokenAudience: ecr.example.com", "- \"--role-annotation=example.com/ecr-role\"", "- example.com/ecr-role\n"}, nil},
		{"env", []string{"--env", "AWS_PROFILE=ecr", "--env", "NO_PROXY=169.254.169.254,.svc"}, nil,
			[]string{"env:\n      - name: \"AWS_PROFILE\"\n        value: ecr\n      - name: \"NO_PROXY\"\n        value: \"169.254.169.254,.svc\"\n"}, []string{"tokenAttributes"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := runCmd(runConfig, append([]string{"print"}, c.args...)...)
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			contains(t, "config print", out, c.want...)
			for _, w := range c.wantNot {
				if strings.Contains(out, w) {
					t.Errorf("config print says %q:\n%s", w, out)
				}
			}
			path := writeConfig(t, t.TempDir(), "c.yaml", out)
			code, vout, _ := runCmd(runConfig, append(append([]string{"validate"}, c.validate...), path)...)
			if code != 0 || !strings.Contains(vout, "0 errors, 0 warnings") {
				t.Errorf("config validate of the printed config: exit %d\n%s", code, vout)
			}
		})
	}
}

func TestProviderFlagErrors(t *testing.T) {
	cases := []struct {
		args   []string
		stderr string
	}{
		{[]string{"--per-pod-roles", "--kubelet-version", "v1.32"}, "kubelet v1.32 cannot pass service account tokens"},
		{[]string{"--per-pod-roles", "--kubelet-version", "v1.33"}, "start the kubelet with --feature-gates=KubeletServiceAccountTokenForCredentialProviders=true"},
		{[]string{"--per-pod-roles", "--api-version", "v1beta1"}, "per-pod roles need plugin apiVersion"},
		{[]string{"--audience", "x"}, "--audience only applies with --per-pod-roles"},
		{[]string{"--role-annotation", "a.io/r"}, "--role-annotation only applies with --per-pod-roles"},
		{[]string{"--env", "AWS_PROFILE"}, `--env: env "AWS_PROFILE" is not KEY=VALUE`},
		{[]string{"--env", "HTTPS-PROXY=x"}, `env name "HTTPS-PROXY" is not an environment variable name`},
		{[]string{"--env", "A=1", "--env", "A=2"}, "env A is given twice"},
	}
	bin := filepath.Join(t.TempDir(), "ecr-credential-provider")
	os.WriteFile(bin, []byte("\x7fELF fake plugin\n"), 0o755)
	for _, c := range cases {
		code, out, errOut := runCmd(runConfig, append([]string{"print"}, c.args...)...)
		if code != 2 || out != "" || !strings.Contains(errOut, c.stderr) {
			t.Errorf("config print %q: exit %d, stdout %q, stderr %q; want exit 2 saying %q", c.args, code, out, errOut, c.stderr)
		}
		if strings.Contains(strings.Join(c.args, " "), "api-version") {
			continue // install has no --api-version
		}
		root := k3sNode(t, "")
		before := tree(t, root)
		code, _, errOut = run(t, runInstall, append([]string{"--root", root, "--binary", bin}, c.args...)...)
		if code != 2 || !strings.Contains(errOut, c.stderr) {
			t.Errorf("install %q: exit %d, stderr %q; want exit 2 saying %q", c.args, code, errOut, c.stderr)
		}
		sameTree(t, "after the refused install", before, tree(t, root))
	}
}

func TestInstallOnEKSRefusesProviderFlags(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "ecr-credential-provider")
	os.WriteFile(bin, []byte("\x7fELF fake plugin\n"), 0o755)
	for _, args := range [][]string{{"--per-pod-roles"}, {"--env", "AWS_PROFILE=ecr"}} {
		root := k3sNode(t, "")
		before := tree(t, root)
		code, _, errOut := run(t, runInstall, append([]string{"--root", root, "--binary", bin, "--distro", "eks"}, args...)...)
		if code != 2 || !strings.Contains(errOut, "this is an EKS node") || !strings.Contains(errOut, "do not apply") {
			t.Errorf("install --distro eks %q: exit %d, stderr %q", args, code, errOut)
		}
		sameTree(t, "after the refused install", before, tree(t, root))
	}
}

func TestInstallPerPodRolesAndEnv(t *testing.T) {
	root := k3sNode(t, "")
	bin := filepath.Join(t.TempDir(), "ecr-credential-provider")
	os.WriteFile(bin, []byte("\x7fELF fake plugin\n"), 0o755)
	code, out, errs := run(t, runInstall, "--root", root, "--binary", bin, "--per-pod-roles", "--env", "AWS_PROFILE=ecr")
	if code != 0 {
		t.Fatalf("install: exit %d: %s\n%s", code, errs, out)
	}
	path := filepath.Join(root, "var/lib/rancher/credentialprovider/config.yaml")
	cfg, err := providerconfig.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if fs := providerconfig.Validate(cfg, providerconfig.Options{}); len(fs) > 0 {
		t.Errorf("installed config has findings: %+v", fs)
	}
	p := cfg.Providers()[0]
	if ta := p.TokenAttributes; ta == nil || ta.ServiceAccountTokenAudience != providerconfig.DefaultAudience || len(ta.OptionalServiceAccountAnnotationKeys) != 1 {
		t.Errorf("tokenAttributes %+v", p.TokenAttributes)
	}
	if len(p.Env) != 1 || p.Env[0] != (providerconfig.ExecEnvVar{Name: "AWS_PROFILE", Value: "ecr"}) {
		t.Errorf("env %+v", p.Env)
	}
}
