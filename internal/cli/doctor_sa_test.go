package cli

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

func TestDoctorServiceAccountFlags(t *testing.T) {
	proc := t.TempDir()
	dir := t.TempDir()
	tok := writeConfig(t, dir, "sa.jwt", "a.b.c\n")
	empty := writeConfig(t, dir, "empty", "\n")
	missing := filepath.Join(dir, "nope")
	cases := []struct {
		name   string
		args   []string
		stdin  string
		code   int
		stdout []string
		stderr string
	}{
		{"token without a service account", []string{"--service-account-token", tok}, "", 2, nil, "go with --service-account NAMESPACE/NAME"},
		{"kubeconfig without a service account", []string{"--kubeconfig", tok}, "", 2, nil, "go with --service-account"},
		{"no namespace", []string{"--service-account", "app"}, "", 2, nil, `--service-account "app" is not NAMESPACE/NAME`},
		{"token file missing", []string{"--service-account", "team/app", "--service-account-token", missing}, "", 2, nil, "--service-account-token: open " + missing},
		{"empty token on stdin", []string{"--service-account", "team/app", "--service-account-token", "-"}, "  \n", 2, nil, "--service-account-token: - is empty"},
		{"empty trust policy", []string{"--service-account", "team/app", "--trust-policy", empty}, "", 2, nil, "--trust-policy: " + empty + " is empty"},
		{"both on stdin", []string{"--service-account", "team/app", "--trust-policy", "-", "--service-account-token", "-"}, "x", 2, nil, "only one of"},
		{"the checks run and name the missing kubeconfig", []string{"--service-account", "team/app", "--kubeconfig", missing, "--service-account-token", "-"}, "a.b.c", 1,
			[]string{"Per-pod: audience RBAC", "kubeconfig " + missing, "pass the kubelet's own kubeconfig with --kubeconfig FILE", "Per-pod: web identity"}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			env := &Env{Stdin: strings.NewReader(c.stdin), Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }}
			code := runDoctor(context.Background(), env, append([]string{"--proc", proc, "--root", t.TempDir(), "ghcr.io/org/app:v1"}, c.args...))
			if code != c.code || !strings.Contains(stderr.String(), c.stderr) {
				t.Errorf("exit %d (want %d), stderr %q (want %q)\n%s", code, c.code, stderr.String(), c.stderr, stdout.String())
			}
			for _, s := range c.stdout {
				if !strings.Contains(stdout.String(), s) {
					t.Errorf("stdout lacks %q:\n%s", s, stdout.String())
				}
			}
		})
	}
}
