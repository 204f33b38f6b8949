package build_test

import (
	"testing"

	"github.com/kubecred/ecr-credential-provider/release/internal/build"
)

func TestFileNamesAsUpstreamNamesThem(t *testing.T) {
	for target, want := range map[build.Target]string{
		{OS: "linux", Arch: "amd64"}:   "ecr-credential-provider-linux-amd64",
		{OS: "linux", Arch: "arm64"}:   "ecr-credential-provider-linux-arm64",
		{OS: "windows", Arch: "amd64"}: "ecr-credential-provider-windows-amd64.exe",
	} {
		if got := target.FileName(); got != want {
			t.Errorf("%s: %q, want %q", target, got, want)
		}
	}
}

func TestProgramFileNames(t *testing.T) {
	linux := build.Target{OS: "linux", Arch: "arm64"}
	if got := build.Refresher.FileName(linux); got != "ecr-pull-secrets-linux-arm64" {
		t.Errorf("refresher: %q", got)
	}
	if build.Plugin.FileName(linux) != linux.FileName() {
		t.Errorf("the plugin's file name has two definitions")
	}
}
