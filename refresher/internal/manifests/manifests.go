// Package manifests renders the ecr-pull-secrets Helm chart into the plain
// manifests shipped beside it, with Helm's own template engine, so the two
// cannot drift.
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
	chrt, err := loader.Load(chartDir)
	if err != nil {
		return "", fmt.Errorf("loading chart %s: %w", chartDir, err)
	}
	caps := chartutil.DefaultCapabilities
	vals, err := chartutil.ToRenderValues(chrt, overrides, chartutil.ReleaseOptions{
		Name: Release, Namespace: Release, Revision: 1, IsInstall: true,
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
	b.WriteString(Header)
	for _, m := range manifests {
		fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", m.Name, strings.TrimSpace(m.Content))
	}
	return b.String(), nil
}

// PlainOverrides are the values the plain manifests differ from the chart's
// defaults by: they create their namespace.
func PlainOverrides() map[string]any { return map[string]any{"createNamespace": true} }
