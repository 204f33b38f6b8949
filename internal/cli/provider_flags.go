package cli

import (
	"flag"
	"fmt"
	"strings"

	"github.com/kubecred/ecr-credential-provider/internal/plugin"
	"github.com/kubecred/ecr-credential-provider/internal/providerconfig"
)

// providerFlags are the flags, shared by 'config print' and 'install', that
// shape the provider entry written: per-pod roles and the plugin's env.
type providerFlags struct {
	kubelet  kubeletFlags
	perPod   bool
	audience string
	roleKeys []string
	env      []string
}

func (p *providerFlags) register(fs *flag.FlagSet) {
	p.kubelet.register(fs)
	fs.BoolVar(&p.perPod, "per-pod-roles", false, "let pods pull with their service account's IAM role: write tokenAttributes (kubelet v1.33+), and apply 'ecr-credential-provider rbac' to the cluster")
	fs.StringVar(&p.audience, "audience", "", "with --per-pod-roles: the service account token audience (default "+providerconfig.DefaultAudience+")")
	fs.Func("role-annotation", "with --per-pod-roles: a service account annotation key naming the pod's role (repeatable; default "+plugin.DefaultRoleAnnotation+")", func(v string) error {
		p.roleKeys = append(p.roleKeys, v)
		return nil
	})
	fs.Func("env", "KEY=VALUE for the plugin's environment, e.g. AWS_PROFILE=ecr or HTTPS_PROXY=http://proxy:3128 (repeatable)", func(v string) error {
		p.env = append(p.env, v)
		return nil
	})
}

// options returns the RecommendedOptions the flags ask for, or a usage error.
func (p *providerFlags) options() (providerconfig.RecommendedOptions, error) {
	var o providerconfig.RecommendedOptions
	env, err := providerconfig.ParseEnv(p.env)
	if err != nil {
		return o, fmt.Errorf("--env: %v", err)
	}
	o.Env = env
	if !p.perPod && (p.audience != "" || len(p.roleKeys) > 0) {
		var given []string
		if p.audience != "" {
			given = append(given, "--audience")
		}
		if len(p.roleKeys) > 0 {
			given = append(given, "--role-annotation")
		}
		return o, fmt.Errorf("%s only applies with --per-pod-roles: add it", strings.Join(given, " and "))
	}
	if !p.perPod {
		return o, nil
	}
	ko, err := p.kubelet.options()
	if err != nil {
		return o, err
	}
	o.PerPodRoles, o.Audience, o.RoleAnnotations = true, p.audience, p.roleKeys
	o.KubeletVersion, o.ServiceAccountTokenGate = ko.KubeletVersion, ko.ServiceAccountTokenGate
	return o, nil
}
