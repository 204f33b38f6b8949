// Package testenv lets the release tests say loudly which scenario could not
// run on this machine: a failure in CI, where make installs every tool, and
// a skip that names what did not run elsewhere.
package testenv

import (
	"os"
	"os/exec"
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
