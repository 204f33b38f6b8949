package providerconfig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubecred/ecr-credential-provider/internal/plugin"
	"github.com/kubecred/ecr-credential-provider/internal/protocol"
)

// TestRecommendedPerPodRoles: with per-pod roles the config carries the
// tokenAttributes that the kubelet of that version accepts without a
// finding, and is refused, saying what to do, for kubelets that cannot.
func TestRecommendedPerPodRoles(t *testing.T) {
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, DefaultName), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	on, off := true, false
	cases := []struct {
		name      string
		o         RecommendedOptions
		refuse    string // substring of the error; "" means accepted
		cacheType string
		keys      []string
		audience  string
		args      []string
	}{
		{"newest kubelet, defaults", RecommendedOptions{}, "", "ServiceAccount", []string{plugin.DefaultRoleAnnotation}, DefaultAudience, nil},
		{"1.34: gate on by default", RecommendedOptions{KubeletVersion: Version{34}}, "", "ServiceAccount", []string{plugin.DefaultRoleAnnotation}, DefaultAudience, nil},
		{"1.33 with the gate: no cacheType field yet", RecommendedOptions{KubeletVersion: Version{33}, ServiceAccountTokenGate: &on}, "", "", []string{plugin.DefaultRoleAnnotation}, DefaultAudience, nil},
		{"own keys and audience reach args too", RecommendedOptions{Audience: "ecr.example.com", RoleAnnotations: []string{"example.com/role", "eks.amazonaws.com/ecr-role-arn"}},
			"", "ServiceAccount", []string{"example.com/role", "eks.amazonaws.com/ecr-role-arn"}, "ecr.example.com", []string{"--role-annotation=example.com/role", "--role-annotation=eks.amazonaws.com/ecr-role-arn"}},
		{"1.33 without the gate", RecommendedOptions{KubeletVersion: Version{33}}, "--feature-gates=KubeletServiceAccountTokenForCredentialProviders=true", "", nil, "", nil},
		{"1.37 with the gate off", RecommendedOptions{ServiceAccountTokenGate: &off}, "it is turned off", "", nil, "", nil},
		{"1.32 has no tokenAttributes", RecommendedOptions{KubeletVersion: Version{32}}, "upgrade the kubelet to v1.34", "", nil, "", nil},
		{"1.26", RecommendedOptions{KubeletVersion: Version{26}}, "tokenAttributes came in v1.33", "", nil, "", nil},
		{"old plugin API", RecommendedOptions{APIVersion: protocol.V1Beta1}, "need plugin apiVersion", "", nil, "", nil},
		{"bad key", RecommendedOptions{RoleAnnotations: []string{"not a key"}}, `role annotation key "not a key" is invalid`, "", nil, "", nil},
		{"key twice", RecommendedOptions{RoleAnnotations: []string{"a.io/r", "a.io/r"}}, "given twice", "", nil, "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.o.PerPodRoles = true
			out, err := Recommended(c.o)
			if c.refuse != "" {
				if err == nil || !strings.Contains(err.Error(), c.refuse) {
					t.Fatalf("error %v, want one containing %q\n%s", err, c.refuse, out)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			cfg := mustDecode(t, out)
			if fs := Validate(cfg, Options{KubeletVersion: c.o.KubeletVersion, ServiceAccountTokenGate: c.o.ServiceAccountTokenGate, BinDir: bin}); len(fs) > 0 {
				t.Fatalf("findings %+v\n%s", fs, out)
			}
			p := cfg.Providers()[0]
			ta := p.TokenAttributes
			if ta == nil {
				t.Fatalf("no tokenAttributes\n%s", out)
			}
			if ta.ServiceAccountTokenAudience != c.audience || ta.CacheType != c.cacheType || ta.RequireServiceAccount == nil || *ta.RequireServiceAccount ||
				len(ta.RequiredServiceAccountAnnotationKeys) > 0 || strings.Join(ta.OptionalServiceAccountAnnotationKeys, ",") != strings.Join(c.keys, ",") {
				t.Errorf("tokenAttributes %+v\n%s", ta, out)
			}
			if strings.Join(p.Args, " ") != strings.Join(c.args, " ") {
				t.Errorf("args %q, want %q", p.Args, c.args)
			}
		})
	}
	if _, err := Recommended(RecommendedOptions{Audience: "x"}); err == nil || !strings.Contains(err.Error(), "--per-pod-roles") {
		t.Errorf("an audience without per-pod roles: %v", err)
	}
	// Negative control: the same kubelet that takes per-pod roles refuses
	// the config with the gate off, so the accepted cases above mean it.
	out, _ := Recommended(RecommendedOptions{PerPodRoles: true, KubeletVersion: Version{33}, ServiceAccountTokenGate: &on})
	if !HasErrors(Validate(mustDecode(t, out), Options{KubeletVersion: Version{33}})) {
		t.Error("kubelet 1.33 without the gate accepted tokenAttributes")
	}
}

func mustDecode(t *testing.T, data []byte) *Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestParseEnv(t *testing.T) {
	cases := []struct {
		in     []string
		want   []ExecEnvVar
		refuse string
	}{
		{[]string{"AWS_PROFILE=ecr", "HTTPS_PROXY=http://proxy:3128", "NO_PROXY=169.254.169.254,.svc", "EMPTY="},
			[]ExecEnvVar{{"AWS_PROFILE", "ecr"}, {"HTTPS_PROXY", "http://proxy:3128"}, {"NO_PROXY", "169.254.169.254,.svc"}, {"EMPTY", ""}}, ""},
		{[]string{"A=b=c"}, []ExecEnvVar{{"A", "b=c"}}, ""},
		{[]string{"_x1=1"}, []ExecEnvVar{{"_x1", "1"}}, ""},
		{[]string{"AWS_PROFILE"}, nil, "not KEY=VALUE"},
		{[]string{"=v"}, nil, "not an environment variable name"},
		{[]string{"1A=v"}, nil, "not an environment variable name"},
		{[]string{"A-B=v"}, nil, "not an environment variable name"},
		{[]string{"A B=v"}, nil, "not an environment variable name"},
		{[]string{"AWS_PROFILE=a", "AWS_PROFILE=b"}, nil, "AWS_PROFILE is given twice"},
		{[]string{"AWS_ACCESS_KEY_ID=AKIA", "AWS_SECRET_ACCESS_KEY=s"}, nil, "env AWS_SECRET_ACCESS_KEY would put a secret in the provider config"},
		{[]string{"AWS_SESSION_TOKEN=t"}, nil, "pass AWS_SHARED_CREDENTIALS_FILE and AWS_PROFILE instead"},
	}
	for _, c := range cases {
		got, err := ParseEnv(c.in)
		if c.refuse != "" {
			if err == nil || !strings.Contains(err.Error(), c.refuse) {
				t.Errorf("ParseEnv(%q) = %v, want an error containing %q", c.in, err, c.refuse)
			}
			continue
		}
		if err != nil || len(got) != len(c.want) {
			t.Errorf("ParseEnv(%q) = %v, %v", c.in, got, err)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("ParseEnv(%q)[%d] = %v, want %v", c.in, i, got[i], c.want[i])
			}
		}
	}
	if _, err := Recommended(RecommendedOptions{Env: []ExecEnvVar{{"A", "1"}, {"A", "2"}}}); err == nil {
		t.Error("Recommended wrote a config with an env name twice")
	}
	// Values the YAML could misread round-trip as the same strings.
	env, _ := ParseEnv([]string{"AWS_PROFILE=yes", "N=007", "Q=a: b # c", "E="})
	out, err := Recommended(RecommendedOptions{Env: env})
	if err != nil {
		t.Fatal(err)
	}
	p := mustDecode(t, out).Providers()[0]
	for i, e := range env {
		if p.Env[i] != e {
			t.Errorf("env[%d] = %v, want %v\n%s", i, p.Env[i], e, out)
		}
	}
}
