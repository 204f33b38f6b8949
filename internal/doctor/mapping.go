package doctor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/kubecred/ecr-credential-provider/internal/containerdhosts"
	"github.com/kubecred/ecr-credential-provider/internal/providerconfig"
)

// CheckRegistryMap is the rule of the provider's registry map that sends a
// non-ECR image (docker.io, ghcr.io, a custom domain) to an ECR registry.
const CheckRegistryMap = "registry-map"

// PolicyPullOnly is the managed policy that adds ecr:BatchImportUpstreamImage
// to a pull (AmazonEC2ContainerRegistryReadOnly does not have it).
const PolicyPullOnly = "AmazonEC2ContainerRegistryPullOnly"

// CacheActions are what a node needs, beyond a pull, for a pull-through
// cache to fetch an image it has not cached yet: CreateRepository for the
// first image of a repository, BatchImportUpstreamImage for every new one.
var CacheActions = []string{"ecr:BatchImportUpstreamImage", "ecr:CreateRepository"}

// mapping is where the registry map sent the image.
type mapping struct {
	Source, Target, Prefix string
	// Image is the ECR image the doctor checks instead of the one given.
	Image string
	// Provider is the provider whose args or env hold the rule.
	Provider string
}

// Rule is the rule as the operator wrote it.
func (m *mapping) Rule() string {
	if m.Prefix == "" {
		return m.Source + "=" + m.Target
	}
	return m.Source + "=" + m.Target + "/" + m.Prefix
}

// checkRegistryMap looks the image up in the registry map of the providers
// that match it. ok is false when none maps it (the image then stays a
// non-ECR image); a map the plugin would refuse is a failed check.
func (r *run) checkRegistryMap() (Check, bool) {
	name, err := providerconfig.ImageName(r.o.Image)
	if err != nil || len(r.wiring.matching) == 0 {
		return Check{}, false
	}
	full := name + refSuffix(r.o.Image)
	for _, p := range r.wiring.matching {
		target, ok, err := providerconfig.Mapping(p, full)
		if err != nil {
			c := failed(CheckRegistryMap, fmt.Sprintf("provider %s: %v", p.Name, err),
				"fix the entry in the provider's args or env: 'ecr-credential-provider config validate' names it; the plugin refuses the whole map until then")
			return c, true
		}
		if !ok {
			continue
		}
		source, rest, _ := strings.Cut(name, "/")
		host, repo, _ := strings.Cut(strings.TrimSuffix(target, refSuffix(r.o.Image)), "/")
		m := &mapping{Source: source, Target: host, Prefix: strings.TrimSuffix(strings.TrimSuffix(repo, rest), "/"), Image: target, Provider: p.Name}
		r.mapped = m
		c := passed(CheckRegistryMap, fmt.Sprintf("rule %s (provider %s) maps %s to %s; the plugin answers for %s with the token of %s", m.Rule(), p.Name, full, target, source, host))
		c.fact("rule", m.Rule())
		c.fact("source", source)
		c.fact("target", host)
		c.fact("repository", repo)
		if m.Prefix != "" {
			c.Notes = append(c.Notes, fmt.Sprintf("the runtime must fetch %s's images from %s/v2/%s (a containerd hosts.toml with no fallback to %s: 'ecr-credential-provider install --pull-through-cache %s' writes it)", source, host, m.Prefix, source, m.Rule()))
		}
		return c, true
	}
	return Check{}, false
}

// refSuffix is an image's ":tag" or "@digest", as given.
func refSuffix(image string) string {
	if i := strings.Index(image, "@"); i >= 0 {
		return image[i:]
	}
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		return image[i:]
	}
	return ""
}

// cacheMiss is the manifest check for a mapped image whose repository
// the pull-through cache has not created (404), or was refused the right
// to create (403 naming one of CacheActions).
func (r *run) cacheMiss(summary, action string) Check {
	m := r.mapped
	repo := fmt.Sprintf("arn:%s:ecr:%s:%s:repository/%s/*", r.reg.Partition, r.reg.Region, r.reg.Account, m.Prefix)
	who := "the node's role"
	if r.identOK {
		who = RoleARN(r.ident.ARN)
	}
	var remedy string
	if action != "" {
		remedy = fmt.Sprintf("%s may not fill the pull-through cache (it lacks %s): attach %s (for ecr:BatchImportUpstreamImage) and the statement below (ecr:CreateRepository, for the first image of each repository), or pre-create the repository", who, action, PolicyPullOnly)
	} else {
		remedy = fmt.Sprintf("the pull-through cache creates %s on the first pull only if the caller may: %s needs %s (attach %s and the statement below); check that a pull-through cache rule for prefix %s exists: aws ecr describe-pull-through-cache-rules --registry-id %s --region %s; and that %s exists upstream",
			r.ref.Path, who, strings.Join(CacheActions, " and "), PolicyPullOnly, m.Prefix, r.reg.Account, r.reg.Region, m.Source+"/"+strings.TrimPrefix(r.ref.Path, m.Prefix+"/"))
	}
	c := failed(CheckManifest, summary, remedy)
	c.Policy = cachePolicy(repo)
	c.fact("missingAction", action)
	c.fact("pullThroughCache", m.Prefix)
	return c
}

func cachePolicy(resource string) string {
	b, _ := json.MarshalIndent(map[string]any{
		"Version": "2012-10-17",
		"Statement": []any{map[string]any{
			"Sid":      "EcrPullThroughCache",
			"Effect":   "Allow",
			"Action":   CacheActions,
			"Resource": resource,
		}},
	}, "", "  ")
	return string(b)
}

// CheckRuntimeMirror is whether the runtime fetches a pull-through cache's
// source from the cache, and from nowhere else: the kubelet's credentials
// for the source are then an ECR token, and containerd sends them to every
// endpoint it tries.
const CheckRuntimeMirror = "runtime-mirror"

// checkRuntimeMirror reads containerd's config_path and the source's
// hosts.toml on the node.
func (r *run) checkRuntimeMirror() Check {
	m := r.mapped
	switch {
	case m == nil || m.Prefix == "":
		return skipped(CheckRuntimeMirror, "no pull-through cache rule applies (a custom domain needs no mirror)")
	case r.wiring.proc == "k3s" || r.wiring.proc == "rke2":
		return skipped(CheckRuntimeMirror, r.wiring.proc+" generates containerd's hosts.toml from /etc/rancher/"+r.wiring.proc+"/registries.yaml, which the doctor does not read yet")
	case !r.wiring.found && (r.o.Root == "/" || r.o.Root == ""):
		return skipped(CheckRuntimeMirror, "no kubelet found, so this may not be the node: pass --root for a node's filesystem")
	}
	want := "https://" + m.Target + "/v2/" + m.Prefix
	install := "ecr-credential-provider install --pull-through-cache " + m.Rule()
	leak := fmt.Sprintf("containerd pulls %s's images from %s itself, and sends it the node's ECR token", m.Source, m.Source)
	cfg, err := os.ReadFile(r.hostPath(containerdhosts.Config))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return failed(CheckRuntimeMirror, err.Error(), "run the doctor as root")
	}
	dir, err := containerdhosts.Dir(cfg, err == nil)
	var nc *containerdhosts.NoConfigPathError
	switch {
	case errors.As(err, &nc):
		return failed(CheckRuntimeMirror, fmt.Sprintf("%v, so containerd reads no hosts.toml: %s", err, leak),
			fmt.Sprintf("add to %s and restart containerd:\n%s\nthen run: %s", containerdhosts.Config, nc.Snippet(), install))
	case err != nil:
		return failed(CheckRuntimeMirror, err.Error(), "fix "+containerdhosts.Config)
	}
	hostsPath := filepath.Join(dir, m.Source, "hosts.toml")
	data, err := os.ReadFile(r.hostPath(hostsPath))
	if err != nil {
		return failed(CheckRuntimeMirror, fmt.Sprintf("%s: %v: %s", hostsPath, err, leak), "run: "+install)
	}
	eps, err := containerdhosts.Endpoints(data, m.Source)
	if err != nil {
		return failed(CheckRuntimeMirror, fmt.Sprintf("%s: %v", hostsPath, err), "fix it, or remove it and run: "+install)
	}
	var others []string
	for _, e := range eps {
		if strings.TrimSuffix(e, "/") != want {
			others = append(others, e)
		}
	}
	c := passed(CheckRuntimeMirror, fmt.Sprintf("%s sends %s pulls only to the cache, %s", hostsPath, m.Source, want))
	switch {
	case len(others) == len(eps):
		c = failed(CheckRuntimeMirror, fmt.Sprintf("%s sends %s pulls to %s, not the cache %s: containerd sends them the node's ECR token", hostsPath, m.Source, strings.Join(others, ", "), want),
			"remove it and run: "+install)
	case len(others) > 0:
		c = failed(CheckRuntimeMirror, fmt.Sprintf("%s falls back to %s: an image the cache cannot serve is pulled from there with the node's ECR token", hostsPath, strings.Join(others, ", ")),
			"make the cache the server too (no fallback): remove the file and run: "+install)
		c.Advisory = true
	}
	c.fact("hostsToml", hostsPath)
	c.fact("endpoints", strings.Join(eps, " "))
	return c
}
