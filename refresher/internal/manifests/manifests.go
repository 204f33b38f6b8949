// Package manifests renders the project's Helm charts (the refresher's
// ecr-pull-secrets and the fleet installer's ecr-credential-provider) into
// the plain manifests shipped beside them, with Helm's own template engine,
// so the two cannot drift. Helm hooks are left out: plain manifests have
// no release to delete.
package manifests

import (
	"fmt"
	"path"
	"strings"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/releaseutil"
)

// Release names the release and namespace the plain manifests install as.
const Release = "ecr-pull-secrets"

// Header opens the generated file.
const Header = "# Generated from deploy/charts/ecr-pull-secrets with its default values\n" +
	"# (plus createNamespace: true) by `make refresher-manifests`. Do not edit:\n" +
	"# change the chart and regenerate.\n"

// Render renders the chart in chartDir with its default values, overridden
// by overrides, in Helm's install order, as `helm template` prints it.
func Render(chartDir string, overrides map[string]any) (string, error) {
	return RenderRelease(chartDir, Release, Release, Header, overrides)
}

// Chart is one chart and its plain manifests.
type Chart struct {
	Dir, Out           string // relative to the repository's root
	Release, Namespace string
	Header             string
	Overrides          map[string]any
}

// Charts are every chart whose plain manifests are committed.
var Charts = []Chart{
	{Dir: "deploy/charts/ecr-pull-secrets", Out: "deploy/manifests/ecr-pull-secrets.yaml",
		Release: Release, Namespace: Release, Header: Header, Overrides: PlainOverrides()},
	{Dir: "deploy/charts/ecr-credential-provider", Out: "deploy/manifests/ecr-credential-provider.yaml",
		Release: "ecr-credential-provider", Namespace: "kube-system",
		Header: "# Generated from deploy/charts/ecr-credential-provider with its default values\n" +
			"# by `make manifests`. Do not edit: change the chart and regenerate.\n" +
			"# To remove: set the DaemonSet's ECR_NODE_INSTALLER_MODE to uninstall, wait for\n" +
			"# `kubectl -n kube-system rollout status ds/ecr-credential-provider`, then delete.\n"},
}

// KubeVersion is the Kubernetes version the plain manifests are rendered
// for: the oldest they serve (the node installer's admission policy needs
// 1.30). Helm's library default is v1.20.
var KubeVersion = chartutil.KubeVersion{Version: "v1.30.0", Major: "1", Minor: "30"}

// RenderRelease is Render as release in namespace, the file opening with
// header.
func RenderRelease(chartDir, release, namespace, header string, overrides map[string]any) (string, error) {
	return renderRelease(chartDir, release, namespace, header, overrides, KubeVersion)
}

func renderRelease(chartDir, release, namespace, header string, overrides map[string]any, kube chartutil.KubeVersion) (string, error) {
	chrt, err := loader.Load(chartDir)
	if err != nil {
		return "", fmt.Errorf("loading chart %s: %w", chartDir, err)
	}
	caps := chartutil.DefaultCapabilities.Copy()
	caps.KubeVersion = kube
	vals, err := chartutil.ToRenderValues(chrt, overrides, chartutil.ReleaseOptions{
		Name: release, Namespace: namespace, Revision: 1, IsInstall: true,
	}, caps)
	if err != nil {
		return "", err
	}
	files, err := engine.Render(chrt, vals)
	if err != nil {
		return "", fmt.Errorf("rendering chart: %w", err)
	}
	for name := range files {
		if strings.HasPrefix(path.Base(name), "_") || !strings.HasSuffix(name, ".yaml") {
			delete(files, name)
		}
	}
	_, manifests, err := releaseutil.SortManifests(files, caps.APIVersions, releaseutil.InstallOrder)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(header)
	for _, m := range manifests {
		fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", m.Name, strings.TrimSpace(m.Content))
	}
	return b.String(), nil
}

// PlainOverrides are the values the plain manifests differ from the chart's
// defaults by: they create their namespace.
func PlainOverrides() map[string]any { return map[string]any{"createNamespace": true} }
