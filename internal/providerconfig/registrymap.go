package providerconfig

import (
	"errors"
	"io"
	"strings"

	"github.com/kubecred/ecr-credential-provider/internal/plugin"
	"github.com/kubecred/ecr-credential-provider/internal/registrymap"
)

// registryMap checks the plugin's registry map as the plugin will read it
// (its own flag parser over the provider's args and env): a bad entry
// fails every pull this provider serves, and a source that matchImages
// does not cover is never asked about.
func (v *validation) registryMap(p CredentialProvider) {
	m, err := providerMap(p)
	if errors.Is(err, errNoFlags) {
		return
	}
	if err != nil {
		v.add(Warning, p.File, field(p, "args"), "fix or remove the entry: a target is a private ECR registry with an optional prefix, e.g. docker.io=123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub",
			"%v: the plugin refuses the whole map, so every pull this provider serves fails", err)
		return
	}
	for _, r := range m.Rules() {
		if !coversHost(p.MatchImages, r.Source) {
			v.add(Warning, p.File, field(p, "matchImages"), "add "+quoteAll([]string{r.Source}),
				"registry map source %s is not in matchImages: the kubelet never asks this provider about its images", r.Source)
		}
	}
}

// errNoFlags marks args the plugin would not accept as its flags at all;
// other checks report those.
var errNoFlags = errors.New("args are not the plugin's flags")

// providerMap reads p's registry map from its args and env as the plugin
// run by the kubelet would.
func providerMap(p CredentialProvider) (registrymap.Map, error) {
	getenv := func(k string) string {
		val := ""
		for _, e := range p.Env {
			if e.Name == k {
				val = e.Value
			}
		}
		return val
	}
	flags, err := plugin.ParseFlags(p.Args, getenv, io.Discard)
	if err != nil {
		return registrymap.Map{}, errNoFlags
	}
	return flags.Map(getenv)
}

// Mapping says where p's registry map sends image (as the kubelet names
// it): the ECR image whose registry's token answers it. ok is false when
// no rule maps the image's host.
func Mapping(p CredentialProvider, image string) (target string, ok bool, err error) {
	m, err := providerMap(p)
	if err != nil || m.Len() == 0 {
		if errors.Is(err, errNoFlags) {
			err = nil
		}
		return "", false, err
	}
	host, rest, _ := strings.Cut(image, "/")
	rule, ok := m.Lookup(host)
	if !ok {
		return "", false, nil
	}
	return rule.Target.Host + "/" + rule.Repository(rest), true, nil
}
