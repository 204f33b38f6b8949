package cli

import (
	"strings"
	"testing"

	"github.com/kubecred/ecr-credential-provider/internal/noderbac"
)

func TestRBACCommand(t *testing.T) {
	cases := []struct {
		args   []string
		code   int
		stdout string // the exact manifest for this audience, when exit 0
		stderr string
	}{
		{nil, 0, "sts.amazonaws.com", ""},
		{[]string{"--audience", "ecr.example.com"}, 0, "ecr.example.com", ""},
		{[]string{"--audience="}, 2, "", "rbac: the audience is empty"},
		{[]string{"extra"}, 2, "", `unexpected argument "extra"`},
		{[]string{"-h"}, 0, "", ""},
	}
	for _, c := range cases {
		code, out, errOut := run(t, runRBAC, c.args...)
		want := ""
		if c.stdout != "" {
			m, err := noderbac.Manifest(c.stdout)
			if err != nil {
				t.Fatal(err)
			}
			want = string(m)
		}
		if len(c.args) == 1 && c.args[0] == "-h" {
			// Help goes to stdout, as every command's does (help_test.go).
			want = out
			if !strings.Contains(out, "kubectl apply -f -") {
				t.Errorf("rbac -h does not show the kubectl apply example:\n%s", out)
			}
		}
		if code != c.code || out != want || !strings.Contains(errOut, c.stderr) {
			t.Errorf("rbac %q: exit %d (want %d), stderr %q (want %q), stdout:\n%s", c.args, code, c.code, errOut, c.stderr, out)
		}
	}
	_, out, _ := run(t, runRBAC)
	contains(t, "rbac", out, "resources:\n  - sts.amazonaws.com\n", "name: system:nodes", "- request-serviceaccounts-token-audience")
	var help strings.Builder
	Main([]string{"help"}, &Env{Stdout: &help, Stderr: &help})
	contains(t, "help", help.String(), "rbac ")
}
