package providerconfig

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/kubecred/ecr-credential-provider/internal/ecrhost"
	"github.com/kubecred/ecr-credential-provider/internal/plugin"
	"github.com/kubecred/ecr-credential-provider/internal/protocol"
)

// Severity says whether the kubelet would refuse the config (Error) or
// accept it while it likely does not do what its author meant (Warning).
type Severity string

// The two severities.
const (
	Error   Severity = "error"
	Warning Severity = "warning"
)

// Finding is one problem, located by file and field path (such as
// "providers[0].matchImages[2]", indexed within that file).
type Finding struct {
	Severity Severity `json:"severity"`
	File     string   `json:"file"`
	Field    string   `json:"field,omitempty"`
	Message  string   `json:"message"`
	Hint     string   `json:"hint,omitempty"`
}

// Options shape Validate.
type Options struct {
	// KubeletVersion selects the kubelet's rules; zero means NewestVersion.
	KubeletVersion Version
	// BinDir, if set, is the kubelet's --image-credential-provider-bin-dir,
	// checked for each provider's executable.
	BinDir string
	// ServiceAccountTokenGate overrides the kubelet feature gate
	// KubeletServiceAccountTokenForCredentialProviders; nil means the
	// version's default (off in 1.33, on from 1.34).
	ServiceAccountTokenGate *bool
	// CredentialProvidersGate overrides the kubelet feature gate
	// KubeletCredentialProviders of kubelets before 1.26; nil means the
	// version's default (off before 1.24, on in 1.24 and 1.25).
	CredentialProvidersGate *bool
}

// HasErrors reports whether any finding is an Error.
func HasErrors(fs []Finding) bool {
	for _, f := range fs {
		if f.Severity == Error {
			return true
		}
	}
	return false
}

// Validate reports every reason the kubelet of opts.KubeletVersion would
// refuse cfg (errors: exactly the kubelet's own rules), and configurations
// it accepts that cannot work as meant (warnings).
func Validate(cfg *Config, opts Options) []Finding {
	v := &validation{cfg: cfg, ver: opts.KubeletVersion.orNewest(), binDir: opts.BinDir}
	v.tokenGate = v.ver.tokenGateDefault()
	if opts.ServiceAccountTokenGate != nil {
		v.tokenGate = *opts.ServiceAccountTokenGate
	}
	v.run()
	if gate := v.ver.providersGateDefault(); v.ver.hasProvidersGate() {
		if opts.CredentialProvidersGate != nil {
			gate = *opts.CredentialProvidersGate
		}
		if !gate {
			v.gateOff()
		}
	}
	return v.out
}

// gateOff reports a config for a kubelet that does not read it: with
// KubeletCredentialProviders off, the kubelet logs a warning and starts
// without providers, so what would refuse it is only a warning now.
func (v *validation) gateOff() {
	for i := range v.out {
		if v.out[i].Severity == Error {
			v.out[i].Severity = Warning
			v.out[i].Message = "once the feature gate is on: " + v.out[i].Message
		}
	}
	v.out = append([]Finding{{Severity: Warning, File: v.cfg.Path,
		Message: fmt.Sprintf("kubelet %s ignores this config while its feature gate KubeletCredentialProviders is off (the default before v1.24), and starts without providers", v.ver),
		Hint:    "add --feature-gates=KubeletCredentialProviders=true to the kubelet's flags (and to this check)"}}, v.out...)
}

type validation struct {
	cfg       *Config
	ver       Version
	binDir    string
	tokenGate bool
	out       []Finding
	// unreadable is set when a file could not be decoded at all, so that
	// its missing providers are not reported a second time.
	unreadable bool
	// badType holds "file|field" of values with a type error, so that the
	// field is not also reported as missing.
	badType map[string]bool
}

// Not inlined (go:noinline): it has some 50 call sites, and one out-of-line copy
// keeps the plugin binary, which links every operator command, smaller.
//
//go:noinline
func (v *validation) add(sev Severity, file, field, hint, format string, args ...any) {
	v.out = append(v.out, Finding{Severity: sev, File: file, Field: field, Message: fmt.Sprintf(format, args...), Hint: hint})
}

func (v *validation) run() {
	cfg := v.cfg
	if cfg.Dir {
		if !v.ver.configDirectory() {
			v.add(Error, cfg.Path, "", "point the kubelet at a single file, or upgrade the kubelet",
				"kubelet %s reads the config path as a single file; a directory of config files needs kubelet v1.34 or later", v.ver)
		}
		if len(cfg.Files) == 0 {
			v.add(Error, cfg.Path, "", "add a file such as 10-ecr.yaml ('ecr-credential-provider config print' writes one)",
				"no configuration files found in directory: the kubelet reads only *.json, *.yaml and *.yml files and refuses to start without one")
		}
		for _, s := range cfg.Skipped {
			v.add(Warning, s, "", "rename it with a lower-case extension", "the kubelet ignores this file: extensions are matched case-sensitively (.json, .yaml, .yml)")
		}
	}
	binOK := v.checkBinDir()

	var providers []CredentialProvider
	for _, f := range cfg.Files {
		providers = append(providers, v.file(f)...)
	}
	if len(providers) == 0 && len(cfg.Files) > 0 && !v.unreadable {
		file := cfg.Path
		if !cfg.Dir {
			file = cfg.Files[0].Path
		}
		v.add(Error, file, "providers", "add a provider ('ecr-credential-provider config print' shows one)", "at least 1 provider is required")
	}
	seen := map[string]CredentialProvider{}
	for _, p := range providers {
		if first, dup := seen[p.Name]; dup {
			msg := "duplicate provider name %q (also %s in %s): the kubelet refuses to start"
			if !v.ver.validatesDuplicates() {
				msg = "duplicate provider name %q (also %s in %s): the kubelet exits when it registers the second one"
			}
			v.add(Error, p.File, field(p, "name"), "give each provider a unique name", msg, p.Name, field(first, ""), first.File)
		} else {
			seen[p.Name] = p
		}
		v.provider(p, binOK)
	}
}

// Not inlined (go:noinline): it has some 40 call sites, and one out-of-line copy
// keeps the plugin binary, which links every operator command, smaller.
//
//go:noinline
func field(p CredentialProvider, sub string) string {
	s := fmt.Sprintf("providers[%d]", p.Index)
	if sub != "" {
		s += "." + sub
	}
	return s
}

func (v *validation) checkBinDir() bool {
	if v.binDir == "" {
		return false
	}
	if _, err := os.Stat(v.binDir); err != nil {
		msg := "plugin binary directory %s: %v: the kubelet refuses to start"
		if errors.Is(err, fs.ErrNotExist) {
			msg = "plugin binary directory %s does not exist: the kubelet refuses to start"
			v.add(Error, v.binDir, "", "create it, or fix --image-credential-provider-bin-dir", msg, v.binDir)
			return false
		}
		v.add(Error, v.binDir, "", "", msg, v.binDir, err)
		return false
	}
	return true
}

// file reports one file's decoding problems and returns its providers as
// the kubelet keeps them.
func (v *validation) file(f *File) []CredentialProvider {
	if f.Err != nil {
		v.unreadable = true
		v.add(Error, f.Path, "", "", "%v: the kubelet refuses to start", f.Err)
		return nil
	}
	version := v.fileType(f)
	tokenKnown := v.ver.hasTokenAttributes() && version == "v1"
	unknown := append([]string(nil), f.Unknown...)
	if !tokenKnown {
		unknown = append(unknown, f.TokenAttributes...)
	} else if v.ver.Minor < 34 {
		unknown = append(unknown, f.CacheTypes...)
	}
	sort.Strings(unknown)
	for _, u := range unknown {
		why, hint := unknownWhy(u, version, v.ver)
		if v.ver.strictDecoding() {
			v.add(Error, f.Path, u, hint, "unknown field%s: kubelet %s decodes strictly and refuses to start", why, v.ver)
		} else {
			v.add(Warning, f.Path, u, hint, "unknown field%s: kubelet %s ignores it", why, v.ver)
		}
	}
	for _, e := range f.TypeErrors {
		if !tokenKnown && underAny(e.Field, f.TokenAttributes) {
			continue // the kubelet drops the whole field without looking
		}
		hint := ""
		if strings.HasSuffix(e.Message, "string, not a boolean") && !f.JSON {
			hint = "YAML reads unquoted y, n, yes, no, on, off, true and false as booleans: quote the value"
		} else if strings.HasSuffix(e.Message, "string, not a number") && !f.JSON {
			hint = "quote the value"
		}
		v.add(Error, f.Path, e.Field, hint, "%s: the kubelet cannot decode the file and refuses to start", e.Message)
		if v.badType == nil {
			v.badType = map[string]bool{}
		}
		v.badType[f.Path+"|"+e.Field] = true
	}
	for _, d := range f.Duplicates {
		if v.ver.strictDecoding() {
			v.add(Error, f.Path, "", "keep one of them", "duplicate field: %s: kubelet %s decodes strictly and refuses to start", d, v.ver)
		} else {
			v.add(Warning, f.Path, "", "keep one of them", "duplicate field: %s: the last one wins", d)
		}
	}
	if f.ExtraDocuments > 0 {
		hint := "merge the providers into one list"
		if v.ver.configDirectory() {
			hint += ", or use a directory with one file per config"
		}
		v.add(Warning, f.Path, "", hint, "the kubelet reads only the first YAML document of the file; %d more document(s) are ignored", f.ExtraDocuments)
	}
	ps := append([]CredentialProvider(nil), f.Config.Providers...)
	if !tokenKnown {
		for i := range ps {
			ps[i].TokenAttributes = nil
		}
	}
	return ps
}

// fileType checks the file's apiVersion and kind and returns its version
// ("v1", "v1beta1", "v1alpha1") when the group is the kubelet's.
func (v *validation) fileType(f *File) string {
	const fix = "start the file with 'apiVersion: kubelet.config.k8s.io/v1' and 'kind: CredentialProviderConfig'"
	if f.Kind == "" {
		v.add(Error, f.Path, "kind", fix, "kind is missing: the kubelet refuses to start")
	}
	if f.APIVersion == "" {
		v.add(Error, f.Path, "apiVersion", fix, "apiVersion is missing: the kubelet refuses to start")
		return ""
	}
	group, version, ok := strings.Cut(f.APIVersion, "/")
	if !ok {
		group, version = "", f.APIVersion
	}
	if known := v.ver.apiVersions(); group == Group && contains([]string{"v1alpha1", "v1beta1", "v1"}, version) && !contains(known, version) {
		v.add(Error, f.Path, "apiVersion", "'ecr-credential-provider config print --api-version "+known[len(known)-1]+"' writes a config this kubelet reads",
			"kubelet %s reads a CredentialProviderConfig only as %s/%s, not %s: the kubelet refuses to start", v.ver, Group, strings.Join(known, " or "), version)
		return ""
	}
	if strings.Count(f.APIVersion, "/") > 1 || group != Group || !contains([]string{"v1alpha1", "v1beta1", "v1"}, version) {
		hint := fix
		if group == protocol.Group {
			hint = "credentialprovider.kubelet.k8s.io is the plugin protocol (the providers' apiVersion); the file itself is kubelet.config.k8s.io/v1"
		}
		v.add(Error, f.Path, "apiVersion", hint, "apiVersion %q is not a version the kubelet reads a CredentialProviderConfig in (kubelet.config.k8s.io/v1, v1beta1 or v1alpha1): the kubelet refuses to start", f.APIVersion)
		return ""
	}
	if f.Kind != "" && f.Kind != Kind {
		v.add(Error, f.Path, "kind", fix, "kind %q is not CredentialProviderConfig: the kubelet refuses to start", f.Kind)
	}
	return version
}

func unknownWhy(path, fileVersion string, ver Version) (why, hint string) {
	last := path[strings.LastIndex(path, ".")+1:]
	switch {
	case last == "tokenAttributes" && !ver.hasTokenAttributes():
		return " (tokenAttributes needs kubelet v1.33 or later)", "remove tokenAttributes, or upgrade the kubelet"
	case last == "tokenAttributes":
		return fmt.Sprintf(" (tokenAttributes exists only in kubelet.config.k8s.io/v1 files, this one is %s)", fileVersion), "change the file's apiVersion to kubelet.config.k8s.io/v1"
	case last == "cacheType" && strings.Contains(path, "tokenAttributes"):
		return " (cacheType needs kubelet v1.34 or later)", "remove cacheType for kubelet v1.33"
	}
	for _, known := range knownFieldNames {
		if strings.EqualFold(known, last) {
			return "", fmt.Sprintf("field names are case-sensitive: write %q", known)
		}
	}
	return "", "check the spelling against 'ecr-credential-provider config print'"
}

var knownFieldNames = []string{"apiVersion", "kind", "providers", "name", "matchImages", "defaultCacheDuration", "args", "env", "value",
	"tokenAttributes", "serviceAccountTokenAudience", "cacheType", "requireServiceAccount", "requiredServiceAccountAnnotationKeys", "optionalServiceAccountAnnotationKeys"}

func underAny(path string, prefixes []string) bool {
	for _, p := range prefixes {
		if path == p || strings.HasPrefix(path, p+".") || strings.HasPrefix(path, p+"[") {
			return true
		}
	}
	return false
}

func (v *validation) provider(p CredentialProvider, binOK bool) {
	file := p.File
	refuse := ": the kubelet refuses to start"
	// A field with a type error was dropped: it is not also "required".
	typeErr := func(sub string) bool { return v.badType[file+"|"+field(p, sub)] }
	if err := validName(p.Name); err != nil && (p.Name != "" || !typeErr("name")) {
		hint := "name the provider after its executable in the bin dir, e.g. ecr-credential-provider"
		if p.Name == "" && !v.ver.needsExecBit() {
			// No rule names it: the kubelet stats the bin dir itself as
			// the executable, starts, and fails each call.
			v.add(Warning, file, field(p, "name"), hint, "name is empty: kubelet %s takes the bin dir itself for the executable, starts, and fails every call", v.ver)
		} else if p.Name == "" {
			v.add(Error, file, field(p, "name"), hint, "name is required: it is the executable's file name in the bin dir")
		} else {
			v.add(Error, file, field(p, "name"), hint, "provider name %q: %v%s", p.Name, err, refuse)
		}
	}
	switch {
	case p.APIVersion == "" && typeErr("apiVersion"):
	case p.APIVersion == "":
		v.add(Error, file, field(p, "apiVersion"), "set it to "+protocol.V1, "apiVersion is required%s", refuse)
	case !v.pluginAPIVersion(p.APIVersion):
		known := v.pluginAPIVersions()
		newest := known[len(known)-1]
		hint := "use " + newest
		if strings.HasPrefix(p.APIVersion, Group+"/") {
			hint = "a provider's apiVersion is the plugin protocol, " + newest + ", not the file's " + p.APIVersion
		}
		v.add(Error, file, field(p, "apiVersion"), hint, "apiVersion %q is not supported by kubelet %s (supported: %s)%s", p.APIVersion, v.ver, strings.Join(known, ", "), refuse)
	case p.APIVersion != protocol.V1 && v.ver.Minor >= 26:
		v.add(Warning, file, field(p, "apiVersion"), "use "+protocol.V1, "%s still works, but %s is the stable plugin protocol since kubelet v1.26", p.APIVersion, protocol.V1)
	}
	if len(p.MatchImages) == 0 && !typeErr("matchImages") {
		v.add(Error, file, field(p, "matchImages"), `add patterns such as "*.dkr.ecr.*.amazonaws.com"`, "at least 1 item in matchImages is required%s", refuse)
	}
	for i, m := range p.MatchImages {
		f := field(p, fmt.Sprintf("matchImages[%d]", i))
		if _, err := parseSchemeless(m); err != nil {
			v.add(Error, file, f, "", "match image %q is invalid: %v%s", m, unwrapURLError(err), refuse)
			continue
		}
		for _, w := range patternWarnings(m) {
			v.add(Warning, file, f, w.hint, "%s", w.msg)
		}
	}
	switch {
	case p.DefaultCacheDuration == nil && typeErr("defaultCacheDuration"):
	case p.DefaultCacheDuration == nil:
		v.add(Error, file, field(p, "defaultCacheDuration"), `set it, e.g. "12h"`, "defaultCacheDuration is required%s", refuse)
	case p.DefaultCacheDuration.Duration < 0:
		v.add(Error, file, field(p, "defaultCacheDuration"), `use "12h", an ECR token's lifetime (the plugin's own cacheDuration wins when it sends one), or "0s" for no caching in the kubelet`, "defaultCacheDuration must be greater than or equal to 0%s", refuse)
	}
	if p.TokenAttributes != nil {
		v.tokenAttributes(p)
	}
	v.ecr(p)
	if binOK && p.Name != "" && validName(p.Name) == nil {
		v.binary(p)
	}
}

func (v *validation) tokenAttributes(p CredentialProvider) {
	file, t := p.File, p.TokenAttributes
	refuse := ": the kubelet refuses to start"
	f := func(s string) string { return field(p, "tokenAttributes"+s) }
	if !v.tokenGate {
		v.add(Error, file, f(""), "enable the gate with --feature-gates=KubeletServiceAccountTokenForCredentialProviders=true, or remove tokenAttributes",
			"tokenAttributes is not supported when the KubeletServiceAccountTokenForCredentialProviders feature gate is disabled (it is off by default in kubelet v1.33)%s", refuse)
	}
	if t.ServiceAccountTokenAudience == "" {
		v.add(Error, file, f(".serviceAccountTokenAudience"), "", "serviceAccountTokenAudience is required%s", refuse)
	}
	if t.RequireServiceAccount == nil {
		v.add(Error, file, f(".requireServiceAccount"), "", "requireServiceAccount is required (true or false)%s", refuse)
	}
	if p.APIVersion != protocol.V1 {
		v.add(Error, file, f(""), "set the provider's apiVersion to "+protocol.V1, "tokenAttributes is only supported for %s%s", protocol.V1, refuse)
	}
	if t.RequireServiceAccount != nil && !*t.RequireServiceAccount && len(t.RequiredServiceAccountAnnotationKeys) > 0 {
		v.add(Error, file, f(".requiredServiceAccountAnnotationKeys"), "set requireServiceAccount: true, or move the keys to optionalServiceAccountAnnotationKeys",
			"requireServiceAccount cannot be false when requiredServiceAccountAnnotationKeys is set%s", refuse)
	}
	for _, list := range []struct {
		name string
		keys []string
	}{{"requiredServiceAccountAnnotationKeys", t.RequiredServiceAccountAnnotationKeys}, {"optionalServiceAccountAnnotationKeys", t.OptionalServiceAccountAnnotationKeys}} {
		seen := map[string]bool{}
		for i, k := range list.keys {
			fp := f(fmt.Sprintf(".%s[%d]", list.name, i))
			if errs := qualifiedNameErrors(strings.ToLower(k)); len(errs) > 0 {
				v.add(Error, file, fp, "", "annotation key %q is invalid: %s%s", k, strings.Join(errs, "; "), refuse)
			}
			if seen[k] {
				v.add(Error, file, fp, "", "duplicate annotation key %q%s", k, refuse)
			}
			seen[k] = true
		}
	}
	var both []string
	for _, k := range t.RequiredServiceAccountAnnotationKeys {
		if contains(t.OptionalServiceAccountAnnotationKeys, k) && !contains(both, k) {
			both = append(both, k)
		}
	}
	if len(both) > 0 {
		sort.Strings(both)
		v.add(Error, file, f(""), "list each key once", "annotation keys cannot be both required and optional: %s%s", strings.Join(both, ", "), refuse)
	}
	if v.ver.Minor >= 34 {
		switch t.CacheType {
		case "":
			v.add(Error, file, f(".cacheType"), `set cacheType: ServiceAccount (credentials per service account) or Token (per token)`, "cacheType is required when tokenAttributes is set%s", refuse)
		case "Token", "ServiceAccount":
		default:
			v.add(Error, file, f(".cacheType"), "", "cacheType %q is not supported (supported: ServiceAccount, Token)%s", t.CacheType, refuse)
		}
	}
}

func (v *validation) binary(p CredentialProvider) {
	path := filepath.Join(v.binDir, p.Name)
	hint := "install it with 'ecr-credential-provider install', or fix the name or --image-credential-provider-bin-dir"
	if v.ver.needsExecBit() {
		// The kubelet uses exec.LookPath from 1.30 on: a missing file, a
		// directory and a file without an execute bit all stop it.
		if _, err := exec.LookPath(path); err != nil {
			v.add(Error, p.File, field(p, "name"), hint, "plugin binary %s: %v: the kubelet refuses to start", path, unwrapExec(err))
		}
		return
	}
	info, err := os.Stat(path)
	if err != nil {
		v.add(Error, p.File, field(p, "name"), hint, "plugin binary %s: %v: the kubelet refuses to start", path, unwrapExec(err))
		return
	}
	if info.IsDir() || info.Mode()&0o111 == 0 {
		v.add(Warning, p.File, field(p, "name"), "chmod 0755 it", "plugin binary %s is not an executable file: kubelet %s starts, but every pull that needs this provider fails", path, v.ver)
	}
}

func unwrapExec(err error) error {
	var ee *exec.Error
	if errors.As(err, &ee) {
		err = ee.Err
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// ecr warns about providers that serve ECR but will not do so fully.
func (v *validation) ecr(p CredentialProvider) {
	ours := looksOurs(p)
	var coversAny bool
	var covered, missed []string
	var add []string
	for _, form := range ecrhost.Forms {
		if coversHost(p.MatchImages, form.Host) {
			coversAny = true
			covered = append(covered, form.Name)
			continue
		}
		missed = append(missed, form.Name)
		for _, pat := range ecrhost.MatchImages(false) {
			if ok, _ := URLsMatchStr(pat, form.Host); ok && !contains(add, pat) {
				add = append(add, pat)
			}
		}
	}
	for _, h := range ecrhost.PublicHosts {
		coversAny = coversAny || coversHost(p.MatchImages, h)
	}
	isECR := ours || coversAny || p.Name == DefaultName
	if !isECR {
		return
	}
	switch {
	case !coversAny || len(missed) == 0 || len(missed) == len(ecrhost.Forms):
	case len(missed) > len(covered):
		// Mostly a one-partition config: the list of what it misses is
		// longer than what it covers, so name what it covers.
		v.add(Warning, p.File, field(p, "matchImages"), "if nodes pull from those, use the matchImages of 'ecr-credential-provider config print', which cover every form",
			"matchImages cover only the %s ECR registry forms: images from the %d others (FIPS, dual-stack, other partitions) get no credentials from this provider", strings.Join(covered, " and "), len(missed))
	default:
		v.add(Warning, p.File, field(p, "matchImages"), "add "+quoteAll(add)+", or compare with 'ecr-credential-provider config print'",
			"matchImages miss these ECR registry forms, so their images get no credentials from this provider: %s", strings.Join(missed, ", "))
	}
	if ours && p.Name != DefaultName && p.Name != "" {
		v.add(Warning, p.File, field(p, "name"), "name the provider ecr-credential-provider, or make sure "+p.Name+" in the bin dir is this binary",
			"args/env are ecr-credential-provider's, but the kubelet runs <bin dir>/%s", p.Name)
	}
	v.roleSource(p, ours)
	v.registryMap(p)
	if d := p.DefaultCacheDuration; d != nil && d.Duration > 12*time.Hour {
		v.add(Warning, p.File, field(p, "defaultCacheDuration"), `use "12h" or less`,
			"defaultCacheDuration %s is longer than an ECR token lives (12h): if the plugin ever answers without cacheDuration, the kubelet keeps using an expired token", shortDuration(d.Duration))
	}
}

// roleSource warns when this plugin's per-pod roles cannot work: the
// kubelet sends a service account's annotations only when tokenAttributes
// lists their keys, and the plugin names a role from one of them (or from
// the AWS_ECR_ROLE_ARN env for every pod).
func (v *validation) roleSource(p CredentialProvider, ours bool) {
	keys := roleAnnotations(p.Args)
	if p.TokenAttributes == nil {
		if len(keys) > 0 {
			v.add(Warning, p.File, field(p, "args"), "add tokenAttributes (kubelet v1.33+) listing "+strings.Join(keys, ", ")+" in optionalServiceAccountAnnotationKeys",
				"--role-annotation has no effect: the kubelet sends service account annotations only to providers with tokenAttributes")
		}
		return
	}
	if !ours && p.Name != DefaultName {
		return
	}
	for _, e := range p.Env {
		if e.Name == plugin.RoleEnv && e.Value != "" {
			return
		}
	}
	keys = RoleAnnotationKeys(p)
	t := p.TokenAttributes
	for _, k := range keys {
		if contains(t.RequiredServiceAccountAnnotationKeys, k) || contains(t.OptionalServiceAccountAnnotationKeys, k) {
			return
		}
	}
	v.add(Warning, p.File, field(p, "tokenAttributes"), "add "+keys[0]+" to optionalServiceAccountAnnotationKeys, or set env "+plugin.RoleEnv,
		"no per-pod role can reach the plugin: it reads the role from annotation %s, which tokenAttributes does not list, so every pod gets the node's credentials", strings.Join(keys, " or "))
}

// RoleAnnotationKeys returns the service account annotation keys the plugin
// of p reads a pod's role from, in its order: its --role-annotation args, or
// the plugin's default.
func RoleAnnotationKeys(p CredentialProvider) []string {
	if keys := roleAnnotations(p.Args); len(keys) > 0 {
		return keys
	}
	return []string{plugin.DefaultRoleAnnotation}
}

// roleAnnotations returns the keys given with --role-annotation in args.
func roleAnnotations(args []string) []string {
	var keys []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if name != "role-annotation" {
			continue
		}
		if !hasVal && i+1 < len(args) {
			i++
			val = args[i]
		}
		for _, k := range strings.Split(val, ",") {
			if k = strings.TrimSpace(k); k != "" {
				keys = append(keys, k)
			}
		}
	}
	return keys
}

// coversHost reports whether some pattern's host part matches host, paths
// aside: the question is whether the registry is covered at all.
func coversHost(patterns []string, host string) bool {
	for _, m := range patterns {
		h, _, _ := strings.Cut(m, "/")
		if ok, _ := URLsMatchStr(h, host); ok {
			return true
		}
	}
	return false
}

// looksOurs tells whether a provider's args or env are this plugin's.
func looksOurs(p CredentialProvider) bool {
	for _, e := range p.Env {
		if strings.HasPrefix(e.Name, "ECR_CREDENTIAL_PROVIDER_") {
			return true
		}
	}
	for _, a := range p.Args {
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && contains([]string{"cache-dir", "no-cache", "refresh-timeout", "role-annotation", "registry-map", "registry-map-file"}, name) {
			return true
		}
	}
	return false
}

func quoteAll(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

// pluginAPIVersions are the plugin protocol versions the kubelet of this
// validation can speak.
func (v *validation) pluginAPIVersions() []string {
	var out []string
	for _, short := range v.ver.apiVersions() {
		out = append(out, protocol.Group+"/"+short)
	}
	return out
}

func (v *validation) pluginAPIVersion(s string) bool { return contains(v.pluginAPIVersions(), s) }
