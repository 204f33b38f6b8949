package providerconfig

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

const allECR = `["*.dkr.ecr.*.amazonaws.com", "*.dkr.ecr-fips.*.amazonaws.com", "*.dkr-ecr.*.on.aws", "*.dkr-ecr-fips.*.on.aws",` +
	` "*.dkr.ecr.*.amazonaws.com.cn", "*.dkr-ecr.*.on.amazonwebservices.com.cn", "*.dkr.ecr.*.c2s.ic.gov", "*.dkr.ecr.*.sc2s.sgov.gov",` +
	` "*.dkr.ecr.*.cloud.adc-e.uk", "*.dkr.ecr.*.csp.hci.ic.gov", "*.dkr.ecr.*.amazonaws.eu"]`

// entry is one provider in YAML with the fields the kubelet requires;
// each line of set ("key: value") replaces that field or adds one, and
// "-key" drops it.
func entry(name string, defaults map[string]string, set ...string) string {
	fields := []string{"matchImages", "defaultCacheDuration", "apiVersion"}
	vals := map[string]string{"apiVersion": "credentialprovider.kubelet.k8s.io/v1"}
	for k, v := range defaults {
		vals[k] = v
	}
	for _, l := range set {
		if strings.HasPrefix(l, "-") {
			delete(vals, l[1:])
			continue
		}
		k, v, _ := strings.Cut(l, ": ")
		if _, ok := vals[k]; !ok && !contains(fields, k) {
			fields = append(fields, k)
		}
		vals[k] = v
	}
	s := "  - name: " + name + "\n"
	for _, k := range fields {
		if v, ok := vals[k]; ok {
			s += "    " + k + ": " + v + "\n"
		}
	}
	return s
}

// provider is an ECR provider covering every ECR form.
func provider(name string, set ...string) string {
	return entry(name, map[string]string{"matchImages": allECR, "defaultCacheDuration": "12h"}, set...)
}

// plain is a provider for a non-ECR registry, so no ECR warning applies.
func plain(name string, set ...string) string {
	return entry(name, map[string]string{"matchImages": `["registry.example.com"]`, "defaultCacheDuration": "1h"}, set...)
}

func doc(apiVersion string, providers ...string) string {
	return "apiVersion: kubelet.config.k8s.io/" + apiVersion + "\nkind: CredentialProviderConfig\nproviders:\n" + strings.Join(providers, "")
}

const tokenOK = "tokenAttributes: {serviceAccountTokenAudience: sts.amazonaws.com, cacheType: ServiceAccount, requireServiceAccount: false}"

// w is an expected finding: severity, file (relative to the test dir; "."
// for the dir itself), field, and a piece of the message.
type w struct {
	sev               Severity
	file, field, text string
}

func TestValidate(t *testing.T) {
	e, wn := Error, Warning
	cases := []struct {
		name  string
		files map[string]string // one "config.yaml" key means file mode
		dir   bool
		minor int
		gate  *bool
		want  []w
	}{
		{name: "recommended-like config is clean", files: map[string]string{"config.yaml": doc("v1", provider("ecr-credential-provider"))}},
		{name: "no providers", files: map[string]string{"config.yaml": doc("v1")},
			want: []w{{e, "config.yaml", "providers", "at least 1 provider is required"}}},
		{name: "name rules", files: map[string]string{"config.yaml": doc("v1", plain("a/b"), plain(`"a b"`), plain(`"."`), plain(`".."`), plain(`""`))},
			want: []w{
				{e, "config.yaml", "providers[0].name", "must not contain '/'"},
				{e, "config.yaml", "providers[1].name", "must not contain spaces"},
				{e, "config.yaml", "providers[2].name", "must not be '.'"},
				{e, "config.yaml", "providers[3].name", "must not be '..'"},
				{e, "config.yaml", "providers[4].name", "name is required"},
			}},
		{name: "duplicate names in one file", files: map[string]string{"config.yaml": doc("v1", plain("a"), plain("b"), plain("a"))},
			want: []w{{e, "config.yaml", "providers[2].name", `duplicate provider name "a" (also providers[0]`}}},
		{name: "duplicate names before 1.33 stop the kubelet at registration", minor: 32, files: map[string]string{"config.yaml": doc("v1", plain("a"), plain("a"))},
			want: []w{{e, "config.yaml", "providers[1].name", "exits when it registers the second one"}}},
		{name: "apiVersion rules", files: map[string]string{"config.yaml": doc("v1",
			plain("a", "apiVersion: kubelet.config.k8s.io/v1"), plain("b", "apiVersion: credentialprovider.kubelet.k8s.io/v1beta1"), plain("c", `apiVersion: ""`))},
			want: []w{
				{e, "config.yaml", "providers[0].apiVersion", `apiVersion "kubelet.config.k8s.io/v1" is not supported`},
				{wn, "config.yaml", "providers[1].apiVersion", "v1beta1 still works"},
				{e, "config.yaml", "providers[2].apiVersion", "apiVersion is required"},
			}},
		{name: "matchImages rules", files: map[string]string{"config.yaml": doc("v1",
			plain("a", "matchImages: []"), plain("b", `matchImages: ["ok.example.com", "%zz", "a:port"]`))},
			want: []w{
				{e, "config.yaml", "providers[0].matchImages", "at least 1 item in matchImages is required"},
				{e, "config.yaml", "providers[1].matchImages[1]", `invalid URL escape "%zz"`},
				{e, "config.yaml", "providers[1].matchImages[2]", `invalid port ":port"`},
			}},
		{name: "defaultCacheDuration rules", files: map[string]string{"config.yaml": doc("v1",
			plain("a", "defaultCacheDuration: -1s"), plain("b", "defaultCacheDuration: null"), plain("c", `defaultCacheDuration: "0s"`), plain("d", "-defaultCacheDuration"))},
			want: []w{
				{e, "config.yaml", "providers[0].defaultCacheDuration", "must be greater than or equal to 0"},
				{e, "config.yaml", "providers[1].defaultCacheDuration", "defaultCacheDuration is required"},
				{e, "config.yaml", "providers[3].defaultCacheDuration", "defaultCacheDuration is required"},
			}},
		{name: "values of the wrong type stop the decoder", files: map[string]string{"config.yaml": doc("v1",
			plain("a", "defaultCacheDuration: 0"), plain("b", "args: [1]"), plain("c", "defaultCacheDuration: 12hours"))},
			want: []w{
				{e, "config.yaml", "providers[0].defaultCacheDuration", "not a number"},
				{e, "config.yaml", "providers[1].args[0]", "must be a string, not a number"},
				{e, "config.yaml", "providers[2].defaultCacheDuration", `"12hours" is not a duration`},
			}},
		{name: "unknown field is fatal from 1.32", minor: 32, files: map[string]string{"config.yaml": doc("v1", plain("a", "MatchImages: [x]", "cache: 1h"))},
			want: []w{
				{e, "config.yaml", "providers[0].MatchImages", "decodes strictly"},
				{e, "config.yaml", "providers[0].cache", "decodes strictly"},
			}},
		{name: "unknown field is ignored before 1.32", minor: 31, files: map[string]string{"config.yaml": doc("v1", plain("a", "MatchImages: [x]"))},
			want: []w{{wn, "config.yaml", "providers[0].MatchImages", "kubelet v1.31 ignores it"}}},
		{name: "YAML 1.1 booleans are not strings", files: map[string]string{"config.yaml": doc("v1", plain("y"), plain("b", "args: [on]"))},
			want: []w{
				{e, "config.yaml", "providers[0].name", "must be a string, not a boolean"},
				{e, "config.yaml", "providers[1].args[0]", "must be a string, not a boolean"},
			}},
		{name: "duplicate key is fatal from 1.32", files: map[string]string{"config.yaml": doc("v1", plain("a", "name: b"))},
			want: []w{{e, "config.yaml", "", `key "name" already set in map`}}},
		{name: "duplicate key: the last one wins before 1.32", minor: 26, files: map[string]string{"config.yaml": doc("v1", plain("a", "name: b"))},
			want: []w{{wn, "config.yaml", "", "the last one wins"}}},
		{name: "duplicate JSON key is named by path", files: map[string]string{"config.json": `{"apiVersion":"kubelet.config.k8s.io/v1","kind":"CredentialProviderConfig","providers":[` +
			`{"name":"a","name":"a","matchImages":["registry.example.com"],"defaultCacheDuration":"1h","apiVersion":"credentialprovider.kubelet.k8s.io/v1"}]}`},
			want: []w{{e, "config.json", "", "duplicate field: providers[0].name"}}},
		{name: "file type", files: map[string]string{"config.yaml": "apiVersion: credentialprovider.kubelet.k8s.io/v1\nkind: CredentialProviderConfig\nproviders:\n" + plain("a")},
			want: []w{{e, "config.yaml", "apiVersion", "is not a version the kubelet reads"}}},
		{name: "wrong kind", files: map[string]string{"config.yaml": "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nproviders:\n" + plain("a")},
			want: []w{{e, "config.yaml", "kind", `kind "KubeletConfiguration" is not CredentialProviderConfig`}}},
		{name: "missing type", files: map[string]string{"config.yaml": "providers:\n" + plain("a")},
			want: []w{{e, "config.yaml", "kind", "kind is missing"}, {e, "config.yaml", "apiVersion", "apiVersion is missing"}}},
		{name: "not YAML", files: map[string]string{"config.yaml": "providers: [\n"},
			want: []w{{e, "config.yaml", "", "not valid YAML"}}},
		{name: "only the first YAML document counts", files: map[string]string{"config.yaml": doc("v1", plain("a")) + "---\n" + doc("v1", plain("b"))},
			want: []w{{wn, "config.yaml", "", "1 more document(s) are ignored"}}},

		// tokenAttributes across versions.
		{name: "tokenAttributes on 1.37", files: map[string]string{"config.yaml": doc("v1", plain("a", tokenOK))}},
		{name: "tokenAttributes is off by default on 1.33", minor: 33, files: map[string]string{"config.yaml": doc("v1", plain("a", "tokenAttributes: {serviceAccountTokenAudience: x, requireServiceAccount: true}"))},
			want: []w{{e, "config.yaml", "providers[0].tokenAttributes", "feature gate is disabled"}}},
		{name: "tokenAttributes with the gate on 1.33", minor: 33, gate: ptr(true), files: map[string]string{"config.yaml": doc("v1", plain("a", "tokenAttributes: {serviceAccountTokenAudience: x, requireServiceAccount: true}"))}},
		{name: "cacheType does not exist on 1.33", minor: 33, gate: ptr(true), files: map[string]string{"config.yaml": doc("v1", plain("a", tokenOK))},
			want: []w{{e, "config.yaml", "providers[0].tokenAttributes.cacheType", "cacheType needs kubelet v1.34"}}},
		{name: "the gate can be turned off on 1.35", minor: 35, gate: ptr(false), files: map[string]string{"config.yaml": doc("v1", plain("a", tokenOK))},
			want: []w{{e, "config.yaml", "providers[0].tokenAttributes", "feature gate is disabled"}}},
		{name: "tokenAttributes does not exist on 1.32", minor: 32, files: map[string]string{"config.yaml": doc("v1", plain("a", tokenOK))},
			want: []w{{e, "config.yaml", "providers[0].tokenAttributes", "needs kubelet v1.33"}}},
		{name: "tokenAttributes is dropped on 1.31, bad values and all", minor: 31, files: map[string]string{"config.yaml": doc("v1", plain("a", "tokenAttributes: {requireServiceAccount: maybe}"))},
			want: []w{{wn, "config.yaml", "providers[0].tokenAttributes", "kubelet v1.31 ignores it"}}},
		{name: "tokenAttributes exists only in v1 files", files: map[string]string{"config.yaml": doc("v1beta1", plain("a", tokenOK))},
			want: []w{{e, "config.yaml", "providers[0].tokenAttributes", "only in kubelet.config.k8s.io/v1 files, this one is v1beta1"}}},
		{name: "tokenAttributes field rules", files: map[string]string{"config.yaml": doc("v1",
			plain("a", "apiVersion: credentialprovider.kubelet.k8s.io/v1beta1", "tokenAttributes: {cacheType: Pod, requiredServiceAccountAnnotationKeys: [a.io/x]}"),
			plain("b", "tokenAttributes: {serviceAccountTokenAudience: x, cacheType: Token, requireServiceAccount: false, requiredServiceAccountAnnotationKeys: [a.io/x, a.io/x, -bad, a/b/c], optionalServiceAccountAnnotationKeys: [a.io/x, UPPER.io/Name]}"))},
			want: []w{
				{wn, "config.yaml", "providers[0].apiVersion", "still works"},
				{e, "config.yaml", "providers[0].tokenAttributes.serviceAccountTokenAudience", "is required"},
				{e, "config.yaml", "providers[0].tokenAttributes.requireServiceAccount", "is required"},
				{e, "config.yaml", "providers[0].tokenAttributes", "only supported for credentialprovider.kubelet.k8s.io/v1"},
				{e, "config.yaml", "providers[0].tokenAttributes.cacheType", `cacheType "Pod" is not supported`},
				{e, "config.yaml", "providers[1].tokenAttributes.requiredServiceAccountAnnotationKeys", "requireServiceAccount cannot be false"},
				{e, "config.yaml", "providers[1].tokenAttributes.requiredServiceAccountAnnotationKeys[1]", `duplicate annotation key "a.io/x"`},
				{e, "config.yaml", "providers[1].tokenAttributes.requiredServiceAccountAnnotationKeys[2]", "must start and end with an alphanumeric"},
				{e, "config.yaml", "providers[1].tokenAttributes.requiredServiceAccountAnnotationKeys[3]", "optional DNS subdomain prefix"},
				{e, "config.yaml", "providers[1].tokenAttributes", "cannot be both required and optional: a.io/x"},
			}},
		{name: "cacheType is required from 1.34", minor: 34, files: map[string]string{"config.yaml": doc("v1", plain("a", "tokenAttributes: {serviceAccountTokenAudience: x, requireServiceAccount: true}"))},
			want: []w{{e, "config.yaml", "providers[0].tokenAttributes.cacheType", "cacheType is required"}}},

		// Directories.
		{name: "directory merged in lexical order", dir: true, files: map[string]string{
			"20-b.yml": doc("v1beta1", plain("b")), "10-a.json": `{"apiVersion":"kubelet.config.k8s.io/v1","kind":"CredentialProviderConfig","providers":[]}`,
			"30-c.yaml": doc("v1", plain("c"), plain("a/x")), "notes.txt": "not read", "Z.YAML": "not read either"},
			want: []w{
				{e, "30-c.yaml", "providers[1].name", "must not contain '/'"},
				{wn, "Z.YAML", "", "extensions are matched case-sensitively"},
			}},
		{name: "duplicate names across files name both files", dir: true, files: map[string]string{"a.yaml": doc("v1", plain("x")), "b.yaml": doc("v1", plain("w"), plain("x"))},
			want: []w{{e, "b.yaml", "providers[1].name", `duplicate provider name "x" (also providers[0] in {dir}/a.yaml)`}}},
		{name: "directory needs 1.34", dir: true, minor: 33, files: map[string]string{"a.yaml": doc("v1", plain("x"))},
			want: []w{{e, ".", "", "a directory of config files needs kubelet v1.34"}}},
		{name: "directory without config files", dir: true, files: map[string]string{"README": "x"},
			want: []w{{e, ".", "", "no configuration files found in directory"}}},
		{name: "directory whose files have no providers", dir: true, files: map[string]string{"a.yaml": doc("v1")},
			want: []w{{e, ".", "providers", "at least 1 provider is required"}}},
		{name: "one bad file among good ones", dir: true, files: map[string]string{"a.yaml": doc("v1", plain("x")), "b.yaml": "apiVersion: [\n"},
			want: []w{{e, "b.yaml", "", "not valid YAML"}}},

		// Warnings about patterns and ECR.
		{name: "pattern warnings", files: map[string]string{"config.yaml": doc("v1", plain("a",
			`matchImages: ["*.amazonaws.com", "registry.example.com/*", "https://registry.example.com", "*.io", "*", "registry.example.com/app:v1", "Registry.example.com", "registry.example.com:443", ""]`))},
			want: []w{
				{wn, "config.yaml", "providers[0].matchImages[0]", "ECR hosts under amazonaws.com have 6"},
				{wn, "config.yaml", "providers[0].matchImages[1]", "globs work only in the host"},
				{wn, "config.yaml", "providers[0].matchImages[2]", "has a scheme"},
				{wn, "config.yaml", "providers[0].matchImages[3]", "does not match a.k8s.io"},
				{wn, "config.yaml", "providers[0].matchImages[4]", "hosts of one label"},
				{wn, "config.yaml", "providers[0].matchImages[5]", "has a tag or digest"},
				{wn, "config.yaml", "providers[0].matchImages[6]", "upper-case"},
				{wn, "config.yaml", "providers[0].matchImages[7]", "port 443"},
				{wn, "config.yaml", "providers[0].matchImages[8]", "empty pattern"},
			}},
		{name: "ECR forms the patterns miss", files: map[string]string{"config.yaml": doc("v1", plain("ecr-credential-provider",
			`matchImages: ["*.dkr.ecr.*.amazonaws.com", "*.dkr.ecr.*.amazonaws.com.cn", "*.dkr.ecr-fips.*.amazonaws.com", "*.dkr.ecr.us-iso-east-1.c2s.ic.gov", "*.dkr.ecr.us-isob-east-1.sc2s.sgov.gov"]`))},
			want: []w{{wn, "config.yaml", "providers[0].matchImages", "commercial dual-stack, commercial dual-stack FIPS, China dual-stack, ISO-E, ISO-F, EUSC"}}},
		{name: "pinned ECR hosts are not second-guessed", files: map[string]string{"config.yaml": doc("v1", plain("ecr-credential-provider",
			`matchImages: ["111122223333.dkr.ecr.eu-west-1.amazonaws.com"]`))}},
		{name: "our args under another name", files: map[string]string{"config.yaml": doc("v1", provider("ecr", "args: [--cache-dir=/var/cache/ecr]"))},
			want: []w{{wn, "config.yaml", "providers[0].name", "the kubelet runs <bin dir>/ecr"}}},
		{name: "per-pod role annotation the kubelet never sends", files: map[string]string{"config.yaml": doc("v1",
			provider("ecr-credential-provider", tokenOK),
			plain("b", "args: [--role-annotation, example.com/role]"),
			plain("c", "args: [--role-annotation=example.com/role]", "tokenAttributes: {serviceAccountTokenAudience: x, cacheType: Token, requireServiceAccount: true, optionalServiceAccountAnnotationKeys: [example.com/role]}"),
			provider("d", "args: [--cache-dir=/c]", tokenOK, "env: [{name: AWS_ECR_ROLE_ARN, value: 'arn:aws:iam::111122223333:role/r'}]"))},
			want: []w{
				{wn, "config.yaml", "providers[0].tokenAttributes", "annotation eks.amazonaws.com/ecr-role-arn, which tokenAttributes does not list"},
				{wn, "config.yaml", "providers[1].args", "--role-annotation has no effect"},
				{wn, "config.yaml", "providers[1].name", "the kubelet runs <bin dir>/b"},
				{wn, "config.yaml", "providers[2].name", "the kubelet runs <bin dir>/c"},
				{wn, "config.yaml", "providers[3].name", "the kubelet runs <bin dir>/d"},
			}},
		{name: "cache longer than an ECR token", files: map[string]string{"config.yaml": doc("v1", provider("ecr-credential-provider", "defaultCacheDuration: 24h"))},
			want: []w{{wn, "config.yaml", "providers[0].defaultCacheDuration", "longer than an ECR token lives"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range c.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			path := dir
			if !c.dir {
				if len(c.files) != 1 {
					t.Fatal("file mode takes one file")
				}
				for name := range c.files {
					path = filepath.Join(dir, name)
				}
			}
			cfg, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			got := Validate(cfg, Options{KubeletVersion: Version{c.minor}, ServiceAccountTokenGate: c.gate})
			checkFindings(t, dir, got, c.want)
		})
	}
}

func ptr[T any](v T) *T { return &v }

// checkFindings requires got and want to hold the same findings, matched
// by severity, file and field, with want's text (where {dir} stands for
// dir) in the message.
func checkFindings(t *testing.T, dir string, got []Finding, want []w) {
	t.Helper()
	used := make([]bool, len(got))
	for _, x := range want {
		file := filepath.Join(dir, x.file)
		text := strings.ReplaceAll(x.text, "{dir}", dir)
		found := false
		for i, f := range got {
			if !used[i] && f.Severity == x.sev && filepath.Clean(f.File) == file && f.Field == x.field && strings.Contains(f.Message, text) {
				used[i], found = true, true
				break
			}
		}
		if !found {
			t.Errorf("missing %s in %s at %q containing %q", x.sev, x.file, x.field, x.text)
		}
	}
	for i, f := range got {
		if !used[i] {
			t.Errorf("unexpected %s: %s: %s: %s", f.Severity, f.File, f.Field, f.Message)
		}
	}
}

func TestValidateBinDir(t *testing.T) {
	bin := t.TempDir()
	write := func(name string, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("ok", 0o755)
	write("noexec", 0o644)
	if err := os.Mkdir(filepath.Join(bin, "adir"), 0o755); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(doc("v1", plain("ok"), plain("missing"), plain("noexec"), plain("adir"))), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		minor  int
		binDir string
		want   []w
	}{
		{"from 1.30 the file must be executable", 30, bin, []w{
			{Error, "config.yaml", "providers[1].name", "no such file or directory"},
			{Error, "config.yaml", "providers[2].name", "permission denied"},
			{Error, "config.yaml", "providers[3].name", "is a directory"},
		}},
		{"before 1.30 it only has to exist", 29, bin, []w{
			{Error, "config.yaml", "providers[1].name", "no such file or directory"},
			{Warning, "config.yaml", "providers[2].name", "not an executable file"},
			{Warning, "config.yaml", "providers[3].name", "not an executable file"},
		}},
		{"a missing bin dir", 37, filepath.Join(bin, "nope"), []w{{Error, filepath.Join(bin, "nope")[len(dir)+1:], "", "does not exist"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Validate(cfg, Options{KubeletVersion: Version{c.minor}, BinDir: c.binDir})
			if c.binDir != bin {
				// The bin dir is outside the config dir: compare it whole.
				if len(got) != 1 || got[0].File != c.binDir || !strings.Contains(got[0].Message, "does not exist") {
					t.Errorf("got %+v", got)
				}
				return
			}
			checkFindings(t, dir, got, c.want)
		})
	}
}

func TestParseVersion(t *testing.T) {
	for in, want := range map[string]int{"v1.20": 20, "v1.25.16": 25, "v1.26": 26, "1.37": 37, "v1.35.4": 35, "v1.36.0-rc.1": 36, "1.30.2+k3s1": 30} {
		v, err := ParseVersion(in)
		if err != nil || v.Minor != want {
			t.Errorf("ParseVersion(%q) = %v, %v; want minor %d", in, v, err, want)
		}
	}
	for _, in := range []string{"v1.19", "v1.38", "2.0", "latest", "", "v1"} {
		if v, err := ParseVersion(in); err == nil {
			t.Errorf("ParseVersion(%q) = %v, want an error", in, v)
		}
	}
}

func TestMatchImageOrder(t *testing.T) {
	providers := []CredentialProvider{
		{Name: "zeta", MatchImages: []string{"*.example.com"}},
		{Name: "alpha", MatchImages: []string{"registry.example.com", "other.io"}},
		{Name: "mid", MatchImages: []string{"quay.io"}},
	}
	cases := []struct {
		minor  int
		called []string
	}{{37, []string{"zeta", "alpha"}}, {33, []string{"zeta", "alpha"}}, {32, []string{"alpha", "zeta"}}, {26, []string{"alpha", "zeta"}}}
	for _, c := range cases {
		name, ms, err := MatchImage(providers, "registry.example.com/app:v1", Version{c.minor})
		if err != nil || name != "registry.example.com/app" {
			t.Fatalf("MatchImage: %q, %v", name, err)
		}
		var called []string
		for _, m := range ms {
			if m.Called {
				called = append(called, m.Provider.Name)
				if len(m.Missed) != 0 && m.Provider.Name == "zeta" {
					t.Errorf("zeta's only pattern matched, yet missed %v", m.Missed)
				}
			}
		}
		if strings.Join(called, ",") != strings.Join(c.called, ",") {
			t.Errorf("kubelet 1.%d calls %v, want %v", c.minor, called, c.called)
		}
	}
}

// TestDecodeLikeKubelet pins down decoding details the kubelet's decoder
// has: exact-case field names, type meta read loosely, repeated JSON keys
// applied in order (a repeated list re-decodes into the same elements).
func TestDecodeLikeKubelet(t *testing.T) {
	f := Decode("c.json", []byte(`{"APIVERSION":"kubelet.config.k8s.io/v1","kind":"CredentialProviderConfig",
		"providers":[{"name":"a","matchImages":["x.io"],"Args":["ignored"]}],
		"providers":[{"name":"b","defaultCacheDuration":"1m"}]}`))
	if f.Err != nil {
		t.Fatal(f.Err)
	}
	if f.APIVersion != "kubelet.config.k8s.io/v1" {
		t.Errorf("apiVersion %q: the kubelet reads type meta case-insensitively", f.APIVersion)
	}
	p := f.Config.Providers
	if len(p) != 1 || p[0].Name != "b" || strings.Join(p[0].MatchImages, ",") != "x.io" || p[0].DefaultCacheDuration == nil || p[0].Args != nil {
		t.Errorf("providers = %+v", p)
	}
	sort.Strings(f.Unknown)
	if strings.Join(f.Unknown, ",") != "APIVERSION,providers[0].Args" || strings.Join(f.Duplicates, ",") != "providers" {
		t.Errorf("unknown %v, duplicates %v", f.Unknown, f.Duplicates)
	}
}
