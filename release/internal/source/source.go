// Package source reads what a release takes from its git checkout: the
// version and the commit time that stands in for every timestamp.
package source

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Describe returns the checkout's version as git describe --tags --always
// --dirty spells it (a tag, tag-N-gHASH, or a bare hash without tags) and
// the commit time of HEAD, which reproducible builds use as
// SOURCE_DATE_EPOCH.
func Describe(ctx context.Context, dir string) (version string, commitTime time.Time, err error) {
	version, err = git(ctx, dir, "describe", "--tags", "--always", "--dirty")
	if err != nil {
		return "", time.Time{}, err
	}
	ct, err := git(ctx, dir, "log", "-1", "--format=%ct")
	if err != nil {
		return "", time.Time{}, err
	}
	commitTime, err = ParseEpoch(ct)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("git log %%ct: %v", err)
	}
	return version, commitTime, nil
}

// ParseEpoch reads a SOURCE_DATE_EPOCH value: seconds since 1970, UTC.
func ParseEpoch(s string) (time.Time, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q is not a count of seconds since 1970", s)
	}
	return time.Unix(n, 0).UTC(), nil
}

func git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}
