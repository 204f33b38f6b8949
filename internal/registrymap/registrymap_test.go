package registrymap

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseRule(t *testing.T) {
	tests := []struct {
		entry                        string
		source, target, prefix, part string
		region                       string
		fips, dual                   bool
		err                          string
	}{
		{entry: "docker.io=123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub", source: "docker.io", target: "123456789012.dkr.ecr.us-east-1.amazonaws.com", prefix: "docker-hub", part: "aws", region: "us-east-1"},
		{entry: " Index.Docker.IO = 123456789012.dkr.ecr.us-east-1.amazonaws.com/hub/ ", source: "docker.io", target: "123456789012.dkr.ecr.us-east-1.amazonaws.com", prefix: "hub", part: "aws", region: "us-east-1"},
		{entry: "registry.example.com=123456789012.dkr.ecr.eu-west-1.amazonaws.com", source: "registry.example.com", target: "123456789012.dkr.ecr.eu-west-1.amazonaws.com", part: "aws", region: "eu-west-1"},
		{entry: "ghcr.io=123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com/ghcr", source: "ghcr.io", target: "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com", prefix: "ghcr", part: "aws-us-gov", region: "us-gov-west-1", fips: true},
		{entry: "quay.io=123456789012.dkr-ecr.us-west-2.on.aws/quay/mirror", source: "quay.io", target: "123456789012.dkr-ecr.us-west-2.on.aws", prefix: "quay/mirror", part: "aws", region: "us-west-2", dual: true},
		{entry: "registry.k8s.io=123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/k8s", source: "registry.k8s.io", target: "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", prefix: "k8s", part: "aws-cn", region: "cn-north-1"},
		{entry: "reg.internal:5000=123456789012.dkr.ecr.us-east-1.amazonaws.com", source: "reg.internal:5000", target: "123456789012.dkr.ecr.us-east-1.amazonaws.com", part: "aws", region: "us-east-1"},
		{entry: "[fd00::1]:5000=123456789012.dkr.ecr.us-east-1.amazonaws.com", source: "[fd00::1]:5000", target: "123456789012.dkr.ecr.us-east-1.amazonaws.com", part: "aws", region: "us-east-1"},

		{entry: "docker.io", err: "want SOURCE=TARGET"},
		{entry: "=123456789012.dkr.ecr.us-east-1.amazonaws.com", err: "want SOURCE=TARGET"},
		{entry: "docker.io=", err: "want SOURCE=TARGET"},
		{entry: "docker.io=public.ecr.aws/docker", err: "not a private ECR registry"},
		{entry: "docker.io=example.com/x", err: "not a private ECR registry"},
		{entry: "docker.io=123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.example", err: "not a private ECR registry"},
		{entry: "docker.io=https://123456789012.dkr.ecr.us-east-1.amazonaws.com", err: "without a scheme"},
		{entry: "docker.io=123456789012.dkr.ecr.us-east-1.amazonaws.com:443", err: "has a port"},
		{entry: "docker.io=123456789012.dkr.ecr.us-east-1.amazonaws.com/Docker", err: "not a repository path"},
		{entry: "docker.io=123456789012.dkr.ecr.us-east-1.amazonaws.com/a//b", err: "not a repository path"},
		{entry: "docker.io/library=123456789012.dkr.ecr.us-east-1.amazonaws.com", err: "not a registry host"},
		{entry: "https://docker.io=123456789012.dkr.ecr.us-east-1.amazonaws.com", err: "not a registry host"},
		{entry: "bad_host=123456789012.dkr.ecr.us-east-1.amazonaws.com", err: "not a registry host"},
		{entry: "host:port=123456789012.dkr.ecr.us-east-1.amazonaws.com", err: "bad port"},
		{entry: "[::1=123456789012.dkr.ecr.us-east-1.amazonaws.com", err: "unclosed"},
		{entry: "111111111111.dkr.ecr.us-east-1.amazonaws.com=123456789012.dkr.ecr.us-east-1.amazonaws.com", err: "already an ECR registry"},
	}
	for _, tt := range tests {
		t.Run(tt.entry, func(t *testing.T) {
			r, err := ParseRule(tt.entry)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseRule(%q) = %+v, %v; want error containing %q", tt.entry, r, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRule(%q): %v", tt.entry, err)
			}
			if r.Source != tt.source || r.Target.Host != tt.target || r.Prefix != tt.prefix ||
				r.Target.Partition != tt.part || r.Target.Region != tt.region || r.Target.FIPS != tt.fips || r.Target.DualStack != tt.dual {
				t.Errorf("ParseRule(%q) = source %q target %q prefix %q partition %q region %q fips %v dual %v", tt.entry,
					r.Source, r.Target.Host, r.Prefix, r.Target.Partition, r.Target.Region, r.Target.FIPS, r.Target.DualStack)
			}
			again, err := ParseRule(r.String())
			if err != nil || again != r {
				t.Errorf("ParseRule(%q.String()=%q) = %+v, %v; want the same rule", tt.entry, r.String(), again, err)
			}
		})
	}
}

func TestParseRefusesDuplicatesAndKeepsOrder(t *testing.T) {
	m, err := Parse([]string{
		"docker.io=123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub",
		"ghcr.io=123456789012.dkr.ecr.us-east-1.amazonaws.com/ghcr",
		"registry-1.docker.io=123456789012.dkr.ecr.us-west-2.amazonaws.com/hub",
		"not-a-rule",
	})
	if err == nil || !strings.Contains(err.Error(), "already mapped") || !strings.Contains(err.Error(), "want SOURCE=TARGET") {
		t.Fatalf("Parse error = %v; want both the duplicate and the bad entry named", err)
	}
	var got []string
	for _, r := range m.Rules() {
		got = append(got, r.Source)
	}
	if strings.Join(got, ",") != "docker.io,ghcr.io" {
		t.Errorf("rules = %v; want docker.io,ghcr.io", got)
	}
}

func TestLookup(t *testing.T) {
	m, err := Parse([]string{
		"docker.io=123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub",
		"registry.example.com=210987654321.dkr.ecr.eu-west-1.amazonaws.com",
	})
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]string{
		"docker.io":                "docker.io",
		"index.docker.io":          "docker.io",
		"registry-1.docker.io":     "docker.io",
		"Registry.Example.com":     "registry.example.com",
		"registry.example.com.":    "registry.example.com",
		"registry.example.com:443": "",
		"example.com":              "",
		"ghcr.io":                  "",
	} {
		r, ok := m.Lookup(host)
		if ok != (want != "") || r.Source != want {
			t.Errorf("Lookup(%q) = %q, %v; want %q", host, r.Source, ok, want)
		}
	}
	r, _ := m.Lookup("docker.io")
	if got := r.Repository("library/nginx"); got != "docker-hub/library/nginx" {
		t.Errorf("Repository = %q", got)
	}
	r, _ = m.Lookup("registry.example.com")
	if got := r.Repository("team/app"); got != "team/app" {
		t.Errorf("Repository = %q", got)
	}
}

func TestSplitList(t *testing.T) {
	got := SplitList(" a=b, ,c=d ,")
	if strings.Join(got, "|") != "a=b|c=d" {
		t.Errorf("SplitList = %q", got)
	}
}

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "map")
	os.WriteFile(good, []byte("# pull-through caches\ndocker.io=123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub\r\n\n  ghcr.io=123456789012.dkr.ecr.us-east-1.amazonaws.com/ghcr\n"), 0o644)
	entries, err := ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 || entries[1] != "ghcr.io=123456789012.dkr.ecr.us-east-1.amazonaws.com/ghcr" {
		t.Errorf("entries = %q", entries)
	}
	if _, err := Parse(entries); err != nil {
		t.Errorf("Parse: %v", err)
	}

	if _, err := ReadFile(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("ReadFile(dir) = %v; want 'not a regular file'", err)
	}
	big := filepath.Join(dir, "big")
	os.WriteFile(big, make([]byte, maxFileSize+1), 0o644)
	if _, err := ReadFile(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("ReadFile(big) = %v; want 'larger than'", err)
	}
	if _, err := ReadFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("ReadFile(missing) = nil error")
	}
}

func FuzzParseRule(f *testing.F) {
	for _, s := range []string{
		"docker.io=123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub",
		"[::1]:5000=123456789012.dkr-ecr-fips.us-east-1.on.aws",
		"a=b", "=", "x.y:99999=123456789012.dkr.ecr.us-east-1.amazonaws.com/..",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, entry string) {
		r, err := ParseRule(entry)
		if err != nil {
			if len(err.Error()) > 600 { // clipped echoes keep a hostile entry from making a huge line
				t.Errorf("error is %d bytes long", len(err.Error()))
			}
			return
		}
		if !r.Target.ECR || r.Target.Public {
			t.Errorf("ParseRule(%q) accepted target %+v", entry, r.Target)
		}
		again, err := ParseRule(r.String())
		if err != nil || again != r {
			t.Errorf("ParseRule(%q).String() = %q does not parse back: %+v, %v", entry, r.String(), again, err)
		}
		if got, ok := (Map{rules: []Rule{r}}).Lookup(r.Source); !ok || got != r {
			t.Errorf("Lookup(%q) did not find its own rule", r.Source)
		}
	})
}
