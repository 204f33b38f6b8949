// Package ecrhost holds the rules that turn an image reference into an ECR
// registry: its host, account, region, partition, and whether it is FIPS,
// dual-stack or ECR Public; and the policy of which hosts may be given the
// node's token at all (Policy). Nothing here touches the network.
package ecrhost

import (
	"strings"

	"github.com/kubecred/ecr-credential-provider/internal/imageref"
)

// PublicRegion is the only region that serves ECR Public's GetAuthorizationToken.
const PublicRegion = "us-east-1"

// PublicHosts are ECR Public's registry hosts (IPv4-only and dual-stack).
var PublicHosts = []string{"public.ecr.aws", "ecr-public.aws.com"}

// Partition is one AWS partition as far as ECR hosts are concerned.
type Partition struct {
	ID string
	// Suffix is the registry DNS suffix: <acct>.dkr.ecr.<region>.<Suffix>.
	Suffix string
	// DualStackSuffix is the dual-stack registry suffix, if ECR offers one:
	// <acct>.dkr-ecr.<region>.<DualStackSuffix>.
	DualStackSuffix string
	// regionPrefixes are the region name prefixes the partition claims, as
	// in the SDK's partition table: a region is <prefix>-<word>-<digits>.
	regionPrefixes []string
}

// Partitions lists every partition, in the order regions are matched: the
// commercial partition's region pattern is the loosest, so it comes last.
var Partitions = []Partition{
	{ID: "aws-cn", Suffix: "amazonaws.com.cn", DualStackSuffix: "on.amazonwebservices.com.cn", regionPrefixes: []string{"cn"}},
	{ID: "aws-us-gov", Suffix: "amazonaws.com", DualStackSuffix: "on.aws", regionPrefixes: []string{"us-gov"}},
	{ID: "aws-iso", Suffix: "c2s.ic.gov", regionPrefixes: []string{"us-iso"}},
	{ID: "aws-iso-b", Suffix: "sc2s.sgov.gov", regionPrefixes: []string{"us-isob"}},
	{ID: "aws-iso-e", Suffix: "cloud.adc-e.uk", regionPrefixes: []string{"eu-isoe"}},
	{ID: "aws-iso-f", Suffix: "csp.hci.ic.gov", regionPrefixes: []string{"us-isof"}},
	{ID: "aws-eusc", Suffix: "amazonaws.eu", regionPrefixes: []string{"eusc-de"}},
	{ID: "aws", Suffix: "amazonaws.com", DualStackSuffix: "on.aws", regionPrefixes: []string{"us", "eu", "ap", "sa", "ca", "me", "af", "il", "mx"}},
}

// PartitionForRegion returns the partition a region belongs to, and false for
// a region no partition claims.
func PartitionForRegion(region string) (Partition, bool) {
	for _, p := range Partitions {
		for _, pre := range p.regionPrefixes {
			if rest, ok := strings.CutPrefix(region, pre+"-"); ok && wordDashDigits(rest) {
				return p, true
			}
		}
	}
	return Partition{}, false
}

// wordDashDigits matches the SDK's `\w+-\d+`. Hand-written rather than a
// regexp: compiling regexps at start-up costs every plugin call.
func wordDashDigits(s string) bool {
	word, digits, ok := strings.Cut(s, "-")
	return ok && word != "" && all(word, isWord) && digits != "" && all(digits, isDigit)
}

func all(s string, f func(byte) bool) bool {
	for i := range len(s) {
		if !f(s[i]) {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isWord(c byte) bool {
	return isDigit(c) || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_'
}

// Registry is what an image's host says about where its credentials come from.
type Registry struct {
	// Host is the registry host with its port, if the image had one. It keys
	// the response's auth map, as the kubelet looks credentials up by it.
	Host string
	// Hostname is Host without the port.
	Hostname string
	// ECR is false for a host that is not ECR-shaped (a vanity CNAME, say).
	ECR       bool
	Public    bool
	Account   string
	Region    string
	Partition string
	FIPS      bool
	DualStack bool
}

// Kind names the registry's flavour for logs and the doctor.
func (r Registry) Kind() string {
	switch {
	case r.Public:
		return "ECR Public"
	case !r.ECR:
		return "not ECR-shaped"
	}
	var mods []string
	if r.FIPS {
		mods = append(mods, "FIPS")
	}
	if r.DualStack {
		mods = append(mods, "dual-stack")
	}
	s := "ECR private (" + r.Partition
	if len(mods) > 0 {
		s += ", " + strings.Join(mods, ", ")
	}
	return s + ")"
}

// splitPrivate splits <12 digits>.<dkr.ecr|dkr.ecr-fips|dkr-ecr|dkr-ecr-fips>.<region>.<suffix>.
func splitPrivate(name string) (account, label, region, suffix string, ok bool) {
	account, rest, ok := strings.Cut(name, ".")
	if !ok || len(account) != 12 || !all(account, isDigit) {
		return "", "", "", "", false
	}
	for _, l := range []string{"dkr.ecr-fips", "dkr.ecr", "dkr-ecr-fips", "dkr-ecr"} {
		if r, found := strings.CutPrefix(rest, l+"."); found {
			label, rest = l, r
			break
		}
	}
	if label == "" {
		return "", "", "", "", false
	}
	region, suffix, ok = strings.Cut(rest, ".")
	if !ok || region == "" || suffix == "" || region[0] == '-' ||
		!all(region, func(c byte) bool { return isDigit(c) || 'a' <= c && c <= 'z' || c == '-' }) {
		return "", "", "", "", false
	}
	return account, label, region, suffix, true
}

// Parse reads the registry out of an image reference such as
// "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:v1", by the kubelet's
// rules (package imageref). A host that is not ECR-shaped is no error: it
// comes back with ECR false, and the caller decides what to do with it.
func Parse(image string) (Registry, error) {
	ref, err := imageref.Parse(image)
	if err != nil {
		return Registry{}, err
	}
	return Of(ref), nil
}

// Of says what an image's registry host is.
func Of(ref imageref.Reference) Registry {
	r := Registry{Host: ref.Host, Hostname: ref.Hostname()}
	name := strings.ToLower(r.Hostname)
	for _, p := range PublicHosts {
		if name == p {
			r.ECR, r.Public, r.Region, r.Partition = true, true, PublicRegion, "aws"
			r.DualStack = name == "ecr-public.aws.com"
			return r
		}
	}
	account, label, region, suffix, ok := splitPrivate(name)
	if !ok {
		return r
	}
	dual := strings.HasPrefix(label, "dkr-ecr")
	fips := strings.HasSuffix(label, "-fips")
	part, ok := PartitionForRegion(region)
	if !ok {
		return r
	}
	want := part.Suffix
	if dual {
		want = part.DualStackSuffix
	}
	if want == "" || suffix != want {
		return r
	}
	r.ECR, r.Account, r.Region, r.Partition, r.FIPS, r.DualStack = true, account, region, part.ID, fips, dual
	return r
}

// HostOf returns the registry host of an image reference, port included,
// as the kubelet reads it: "nginx" belongs to docker.io.
func HostOf(image string) (string, error) {
	ref, err := imageref.Parse(image)
	if err != nil {
		return "", err
	}
	return ref.Host, nil
}

// MatchImages returns the kubelet matchImages patterns that cover every
// private ECR host form in every partition, and ECR Public if public is true.
func MatchImages(public bool) []string {
	pats := []string{
		"*.dkr.ecr.*.amazonaws.com",
		"*.dkr.ecr-fips.*.amazonaws.com",
		"*.dkr-ecr.*.on.aws",
		"*.dkr-ecr-fips.*.on.aws",
		"*.dkr.ecr.*.amazonaws.com.cn",
		"*.dkr-ecr.*.on.amazonwebservices.com.cn",
		"*.dkr.ecr.*.c2s.ic.gov",
		"*.dkr.ecr.*.sc2s.sgov.gov",
		"*.dkr.ecr.*.cloud.adc-e.uk",
		"*.dkr.ecr.*.csp.hci.ic.gov",
		"*.dkr.ecr.*.amazonaws.eu",
	}
	if public {
		pats = append(pats, PublicHosts...)
	}
	return pats
}

// Forms lists one example host per private ECR form, named, so a config
// check can say which forms a set of matchImages misses.
var Forms = []struct{ Name, Host string }{
	{"commercial", "123456789012.dkr.ecr.us-east-1.amazonaws.com"},
	{"commercial FIPS", "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com"},
	{"commercial dual-stack", "123456789012.dkr-ecr.us-east-1.on.aws"},
	{"commercial dual-stack FIPS", "123456789012.dkr-ecr-fips.us-east-1.on.aws"},
	{"GovCloud", "123456789012.dkr.ecr.us-gov-west-1.amazonaws.com"},
	{"GovCloud FIPS", "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com"},
	{"China", "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn"},
	{"China dual-stack", "123456789012.dkr-ecr.cn-north-1.on.amazonwebservices.com.cn"},
	{"ISO", "123456789012.dkr.ecr.us-iso-east-1.c2s.ic.gov"},
	{"ISO-B", "123456789012.dkr.ecr.us-isob-east-1.sc2s.sgov.gov"},
	{"ISO-E", "123456789012.dkr.ecr.eu-isoe-west-1.cloud.adc-e.uk"},
	{"ISO-F", "123456789012.dkr.ecr.us-isof-south-1.csp.hci.ic.gov"},
	{"EUSC", "123456789012.dkr.ecr.eusc-de-east-1.amazonaws.eu"},
}
