package fastpath_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubecred/ecr-credential-provider/internal/fastpath"
)

// openStdin is a pipe holding data whose writer stays open, as a caller
// that never closes stdin leaves it.
func openStdin(t *testing.T, data string) *os.File {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	if _, err := w.WriteString(data); err != nil {
		t.Fatal(err)
	}
	return r
}

// A complete request is answered without waiting for an EOF that never
// comes.
func TestCompleteRequestOnOpenStdinIsAnswered(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	plantToken(t, dir, time.Hour)
	env := map[string]string{"ECR_CREDENTIAL_PROVIDER_CACHE_DIR": dir}
	var out, errb strings.Builder
	code, done, _ := fastpath.Answer([]string{"--timeout=30s"}, func(k string) string { return env[k] }, openStdin(t, request), &out, &errb)
	if !done || code != 0 || !strings.Contains(out.String(), "cached-pw") {
		t.Fatalf("done %v code %d stdout %q stderr %q", done, code, out.String(), errb.String())
	}
}

// A stdin that stays open without a complete request ends the call within
// --timeout with one line, and nothing on stdout.
func TestStdinThatNeverEndsIsBounded(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	env := map[string]string{"ECR_CREDENTIAL_PROVIDER_CACHE_DIR": dir}
	var out, errb strings.Builder
	code, done, _ := fastpath.Answer([]string{"--timeout=1s"}, func(k string) string { return env[k] }, openStdin(t, `{"kind":"CredentialProv`), &out, &errb)
	if !done || code == 0 || out.Len() != 0 {
		t.Fatalf("done %v code %d stdout %q", done, code, out.String())
	}
	if msg := strings.TrimSpace(errb.String()); strings.Count(msg, "\n") != 0 || !strings.Contains(msg, "stdin") {
		t.Fatalf("stderr %q: want one line about stdin", errb.String())
	}
}
