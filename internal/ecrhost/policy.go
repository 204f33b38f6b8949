package ecrhost

import (
	"fmt"
	"strings"

	"github.com/kubecred/ecr-credential-provider/internal/protocol"
)

// Policy decides which registry hosts may be given the node's ECR token. It
// is the one place that rule lives: the plugin checks every request against
// it before a cache lookup or an AWS call.
//
// ECR hosts are always allowed. So is a custom domain of the operator's own
// (a CNAME to ECR, a pull-through proxy), which gets a token for the SDK's
// configured region as upstream does. Refused: the well-known
// public registries (a too-broad matchImages pattern would otherwise send
// the node's password to Docker Hub), IP literals and loopback names (any
// local process could listen there), names that end in a dot, and names that
// look like AWS's without being a valid ECR host (such as
// 123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.example).
//
// The operator sends such a host's pulls to ECR with the plugin's registry
// map, which answers with the mapped ECR registry's token: that registry,
// not the host, is what the policy then judges.
type Policy struct{}

// wellKnown are public registries, by DNS suffix: a name equal to one or
// below one is refused. They either serve public images or hold their own
// credentials; none of them may ever see an ECR password.
var wellKnown = []string{
	"docker.io", "docker.com", "ghcr.io", "github.com", "githubusercontent.com", "quay.io",
	"k8s.io", "gcr.io", "pkg.dev", "mcr.microsoft.com", "azurecr.io", "gitlab.com", "nvcr.io",
	"cgr.dev", "icr.io", "redhat.io", "redhat.com", "lscr.io", "docker.elastic.co", "ocir.io",
	"container-registry.oracle.com", "registry.suse.com", "fedoraproject.org", "jfrog.io",
}

// awsDomains are the DNS names AWS registry hosts live under. A host under
// one of them (or holding one as a run of its labels) that did not parse as
// ECR is a typo or a look-alike.
var awsDomains = []string{
	"amazonaws.com", "amazonaws.com.cn", "amazonwebservices.com.cn", "on.aws", "ecr.aws", "aws.com",
	"aws.dev", "c2s.ic.gov", "sc2s.sgov.gov", "cloud.adc-e.uk", "csp.hci.ic.gov", "amazonaws.eu",
}

var loopbackNames = []string{
	"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback", "localhost6", "localhost6.localdomain6",
}

// Check returns nil when reg's host may be given the node's token, or an
// error that says why not and what to fix.
func (p Policy) Check(reg Registry) error {
	if reg.ECR {
		return nil
	}
	reason := refusal(strings.ToLower(reg.Hostname))
	if reason == "" {
		return nil
	}
	return fmt.Errorf("refusing to hand the node's ECR token to %q: %s; fix the provider's matchImages in the kubelet's CredentialProviderConfig so it matches only ECR hosts (see 'ecr-credential-provider config print')",
		protocol.Clip(reg.Host), reason)
}

func refusal(name string) string {
	switch {
	case name == "" || strings.HasSuffix(name, ".") || strings.HasPrefix(name, ".") || strings.Contains(name, ".."):
		return "a host name with an empty label or a trailing dot is not one the node's registries use"
	case strings.Contains(name, ":"):
		return "it is an IP address literal"
	}
	labels := strings.Split(name, ".")
	if last := labels[len(labels)-1]; isDigit(last[0]) {
		// No top-level domain starts with a digit: this is an IPv4 literal
		// in one of its many spellings (dotted, one number, octal, hex).
		return "it is an IP address literal"
	}
	for _, l := range loopbackNames {
		if name == l {
			return "it is a loopback name"
		}
	}
	if labels[len(labels)-1] == "localhost" {
		return "it is a loopback name"
	}
	for _, d := range wellKnown {
		if name == d || strings.HasSuffix(name, "."+d) {
			return "it is a well-known public registry (" + d + ")"
		}
	}
	dotted := "." + name + "."
	for _, d := range awsDomains {
		if strings.Contains(dotted, "."+d+".") {
			return "it looks like an AWS host (" + d + ") but is not a valid ECR registry host"
		}
	}
	if strings.Contains(dotted, ".dkr.ecr") || strings.Contains(dotted, ".dkr-ecr") ||
		strings.Contains(name, "amazonaws") || strings.Contains(name, "amazonwebservices") {
		return "it looks like an AWS or ECR host but is not a valid ECR registry host"
	}
	return ""
}
