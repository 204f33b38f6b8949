package arn

import (
	"regexp"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want ARN
		ok   bool
	}{
		{"arn:aws:iam::123456789012:role/path/puller", ARN{"aws", "iam", "", "123456789012", "role/path/puller"}, true},
		{"arn:aws-cn:sts::123456789012:assumed-role/r/s", ARN{"aws-cn", "sts", "", "123456789012", "assumed-role/r/s"}, true},
		{"arn:aws:ecr:us-east-1:123456789012:repository/a:b", ARN{"aws", "ecr", "us-east-1", "123456789012", "repository/a:b"}, true},
		{"arn:aws:iam::123456789012", ARN{}, false},
		{"urn:aws:iam::1:role/x", ARN{}, false},
		{"", ARN{}, false},
	} {
		got, ok := Parse(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Parse(%q) = %+v, %v; want %+v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
		if ok && got.String() != tt.in {
			t.Errorf("Parse(%q).String() = %q", tt.in, got.String())
		}
	}
	if Account("arn:aws:iam::123456789012:role/x") != "123456789012" || Account("nope") != "" {
		t.Error("Account")
	}
}

func TestRoles(t *testing.T) {
	for in, want := range map[string]string{
		"arn:aws:sts::123456789012:assumed-role/puller/i-0abc":    "arn:aws:iam::123456789012:role/puller",
		"arn:aws-us-gov:sts::123456789012:assumed-role/r/session": "arn:aws-us-gov:iam::123456789012:role/r",
		"arn:aws:iam::123456789012:user/alice":                    "",
		"arn:aws:sts::123456789012:federated-user/bob":            "",
	} {
		got, ok := RoleFromSession(in)
		if got != want || ok != (want != "") {
			t.Errorf("RoleFromSession(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	a, _ := Parse("arn:aws:iam::123456789012:role/team/a/puller")
	if a.RoleName() != "puller" {
		t.Errorf("RoleName = %q", a.RoleName())
	}
	if u, _ := Parse("arn:aws:iam::123456789012:user/alice"); u.RoleName() != "" {
		t.Errorf("a user's RoleName = %q", u.RoleName())
	}
}

// rolePattern is the check IsRole is written out from.
var rolePattern = regexp.MustCompile(`^arn:aws[a-z-]*:iam::\d{12}:role/[A-Za-z0-9_+=,.@/-]{1,512}$`)

func FuzzIsRole(f *testing.F) {
	for _, s := range []string{"arn:aws:iam::123456789012:role/puller", "arn:aws-us-gov:iam::123456789012:role/a/b", "arn:aws:iam::12345678901:role/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := IsRole(s), rolePattern.MatchString(s); got != want {
			t.Fatalf("IsRole(%q) = %v; the pattern says %v", s, got, want)
		}
		if a, ok := Parse(s); ok && a.String() != s {
			t.Fatalf("Parse(%q).String() = %q", s, a.String())
		}
	})
}
