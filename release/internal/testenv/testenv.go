// Package testenv lets the release tests say loudly which scenario could not
// run on this machine (a failure in CI, where make installs every tool, and
// a skip that names what did not run elsewhere), and read what the go
// command says a binary links.
package testenv

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Need returns the path of command, or ends the test: fatally under CI=true
// and as a skip otherwise, naming the Debian package that provides it and
// what the test would have checked.
func Need(t testing.TB, command, debianPackage, what string) string {
	t.Helper()
	path, err := exec.LookPath(command)
	if err == nil {
		return path
	}
	msg := command + " is not installed (apt-get install " + debianPackage + "; make e2e-deps does it): NOT checked: " + what
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// GoVersionModules returns the modules go version -m lists as linked into
// binary, path to version, naming a replacement's path and version; a
// replacement by a directory (./x, ../x) is this checkout's own code, so
// its module is named with release, the release's version.
func GoVersionModules(t testing.TB, binary, release string) (main string, deps map[string]string) {
	t.Helper()
	out, err := exec.Command("go", "version", "-m", binary).CombinedOutput()
	if err != nil {
		t.Fatalf("go version -m: %v\n%s", err, out)
	}
	deps = map[string]string{}
	var last string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 2 && f[0] == "mod":
			main = f[1]
		case len(f) >= 3 && f[0] == "dep":
			deps[f[1]], last = f[2], f[1]
		case len(f) >= 2 && f[0] == "=>" && strings.HasPrefix(f[1], "."):
			deps[last] = release
		case len(f) >= 3 && f[0] == "=>":
			delete(deps, last)
			deps[f[1]] = f[2]
		}
	}
	return main, deps
}
