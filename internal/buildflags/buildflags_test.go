package buildflags

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestMakefileBuildsWithTheTags keeps make build (what an operator building
// from source runs) in step with the release and the tests.
func TestMakefileBuildsWithTheTags(t *testing.T) {
	mk, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^PLUGIN_TAGS\s*:?=\s*(.*)$`).FindSubmatch(mk)
	if m == nil {
		t.Fatal("the Makefile sets no PLUGIN_TAGS")
	}
	if got := strings.TrimSpace(string(m[1])); got != Tags {
		t.Errorf("Makefile: PLUGIN_TAGS = %q, want %q (internal/buildflags.Tags)", got, Tags)
	}
	build := regexp.MustCompile(`(?m)^\t.*\$\(GO\) build .*\./cmd/ecr-credential-provider$`).Find(mk)
	if build == nil || !strings.Contains(string(build), `-tags "$(PLUGIN_TAGS)"`) {
		t.Errorf("the Makefile's plugin build line does not pass -tags \"$(PLUGIN_TAGS)\": %q", build)
	}
}
