package cli

import "runtime/debug"

// version is what 'version' prints: the linked-in Version, else the module
// version go install recorded, else the commit go build recorded, else dev.
func version() string {
	info, _ := debug.ReadBuildInfo()
	return versionFrom(Version, info)
}

func versionFrom(linked string, info *debug.BuildInfo) string {
	if linked != "" {
		return linked
	}
	if info == nil {
		return "dev"
	}
	// go install module@version records the version; a build inside the
	// module's own tree records "(devel)" and, with VCS stamping, the commit.
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev == "" {
		return "dev"
	}
	if modified == "true" {
		return rev + "-dirty"
	}
	return rev
}
