package source_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/kubecred/ecr-credential-provider/release/internal/source"
)

func git(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t",
		"GIT_COMMITTER_EMAIL=t@example.com", "GIT_COMMITTER_DATE=2025-11-30T10:53:20Z", "GIT_AUTHOR_DATE=2020-01-01T00:00:00Z")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

func TestDescribe(t *testing.T) {
	dir := t.TempDir()
	git(t, dir, "init", "-q")
	os.WriteFile(filepath.Join(dir, "f"), []byte("1"), 0o644)
	git(t, dir, "add", "f")
	git(t, dir, "commit", "-qm", "one")
	want := time.Date(2025, 11, 30, 10, 53, 20, 0, time.UTC)

	check := func(wantVersion *regexp.Regexp) {
		t.Helper()
		v, at, err := source.Describe(context.Background(), dir)
		if err != nil {
			t.Fatal(err)
		}
		if !wantVersion.MatchString(v) || !at.Equal(want) {
			t.Errorf("version %q at %s, want %s at the commit time %s", v, at, wantVersion, want)
		}
	}
	check(regexp.MustCompile(`^[0-9a-f]{7,}$`)) // no tag yet
	git(t, dir, "tag", "v1.2.3")
	check(regexp.MustCompile(`^v1\.2\.3$`))
	os.WriteFile(filepath.Join(dir, "f"), []byte("2"), 0o644)
	check(regexp.MustCompile(`^v1\.2\.3-dirty$`))
	git(t, dir, "commit", "-qam", "two")
	check(regexp.MustCompile(`^v1\.2\.3-1-g[0-9a-f]{7,}$`))
}

func TestDescribeOutsideGit(t *testing.T) {
	if _, _, err := source.Describe(context.Background(), t.TempDir()); err == nil {
		t.Fatal("described a directory that is no checkout")
	}
}

func TestParseEpoch(t *testing.T) {
	if at, err := source.ParseEpoch("1764500000\n"); err != nil || at.Unix() != 1764500000 || at.Location() != time.UTC {
		t.Errorf("got %v %v", at, err)
	}
	for _, bad := range []string{"", "-1", "yesterday", "1.5"} {
		if _, err := source.ParseEpoch(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}
