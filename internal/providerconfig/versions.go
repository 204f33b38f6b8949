package providerconfig

import (
	"fmt"
	"strconv"

	"github.com/kubecred/ecr-credential-provider/internal/lazyregexp"
)

// Version is a kubelet minor version. The rules the kubelet applies to its
// credential provider config changed between minors, never within one, so
// the patch level does not matter.
type Version struct{ Minor int }

// The kubelet versions whose rules this package knows, read from each
// minor's pkg/credentialprovider/plugin.
var (
	OldestVersion = Version{20}
	NewestVersion = Version{37}
)

func (v Version) String() string { return fmt.Sprintf("v1.%d", v.Minor) }

// orNewest lets a zero Version in options mean "the newest kubelet".
func (v Version) orNewest() Version {
	if v.Minor == 0 {
		return NewestVersion
	}
	return v
}

var versionRe = lazyregexp.New(`^v?(\d+)\.(\d+)(?:\.\d+)?(?:[-+][0-9A-Za-z.+-]*)?$`)

// ParseVersion reads "v1.35", "1.35", "v1.35.4" or "v1.36.0-rc.1".
func ParseVersion(s string) (Version, error) {
	m := versionRe.FindStringSubmatch(s)
	if m == nil {
		return Version{}, fmt.Errorf("kubelet version %q is not of the form v1.35 or v1.35.4", s)
	}
	major, _ := strconv.Atoi(m[1])
	minor, err := strconv.Atoi(m[2])
	if major != 1 || err != nil {
		return Version{}, fmt.Errorf("kubelet version %q: only 1.x kubelets exist", s)
	}
	v := Version{minor}
	if minor < OldestVersion.Minor || minor > NewestVersion.Minor {
		return Version{}, fmt.Errorf("kubelet version %s is not supported: this build knows the rules of %s to %s", v, OldestVersion, NewestVersion)
	}
	return v, nil
}

// strictDecoding: from 1.32 the kubelet decodes the config strictly, so an
// unknown or duplicated field stops it; before, unknown fields were dropped.
func (v Version) strictDecoding() bool { return v.Minor >= 32 }

// hasTokenAttributes: the v1 config gained tokenAttributes in 1.33 (KEP-4412).
func (v Version) hasTokenAttributes() bool { return v.Minor >= 33 }

// tokenGateDefault is the default of the kubelet feature gate
// KubeletServiceAccountTokenForCredentialProviders: alpha (off) in 1.33,
// beta (on) from 1.34.
func (v Version) tokenGateDefault() bool { return v.Minor >= 34 }

// configDirectory: from 1.34 the config path may be a directory of files.
func (v Version) configDirectory() bool { return v.Minor >= 34 }

// needsExecBit: from 1.30 the kubelet finds the plugin with exec.LookPath,
// which requires an executable regular file; before, os.Stat was enough.
func (v Version) needsExecBit() bool { return v.Minor >= 30 }

// callsInConfigOrder: from 1.33 providers are called in config order;
// before, they lived in a map and were called sorted by name.
func (v Version) callsInConfigOrder() bool { return v.Minor >= 33 }

// validatesDuplicates: from 1.33 config validation rejects a duplicate
// provider name; before, the kubelet exited when registering the second.
func (v Version) validatesDuplicates() bool { return v.Minor >= 33 }

// apiVersions are the versions the kubelet knows, both of the config file
// (kubelet.config.k8s.io) and of the plugin protocol
// (credentialprovider.kubelet.k8s.io): v1alpha1 from 1.20, v1beta1 from
// 1.24, v1 from 1.26. The loader's scheme and its apiVersions map grew
// together in each of those minors.
func (v Version) apiVersions() []string {
	switch {
	case v.Minor < 24:
		return []string{"v1alpha1"}
	case v.Minor < 26:
		return []string{"v1alpha1", "v1beta1"}
	}
	return []string{"v1alpha1", "v1beta1", "v1"}
}

// providersGateDefault is the default of the kubelet feature gate
// KubeletCredentialProviders before 1.26, when it went GA: alpha (off) in
// 1.20 to 1.23, beta (on) in 1.24 and 1.25. With it off the kubelet warns
// and ignores the provider flags.
func (v Version) providersGateDefault() bool { return v.Minor >= 24 }

// hasProvidersGate: before 1.26 the providers could be switched off.
func (v Version) hasProvidersGate() bool { return v.Minor < 26 }
