package fastpath_test

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubecred/ecr-credential-provider/internal/cache"
	"github.com/kubecred/ecr-credential-provider/internal/ecrhost"
	"github.com/kubecred/ecr-credential-provider/internal/fastpath"
	"github.com/kubecred/ecr-credential-provider/internal/plugin"
	"github.com/kubecred/ecr-credential-provider/internal/protocol"
)

const (
	host    = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
	request = `{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":"` + host + `/app:1"}`
	perPod  = `{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":"` + host + `/app:1",` +
		`"serviceAccountToken":"sa-token","serviceAccountAnnotations":{"eks.amazonaws.com/ecr-role-arn":"arn:aws:iam::123456789012:role/puller"}}`
)

// stdinWith returns a pipe holding data, as the kubelet hands a request over.
func stdinWith(t *testing.T, data string) *os.File {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	// A writer of its own, as the kubelet's: a request larger than the pipe's
	// buffer must not block the test.
	go func() {
		w.WriteString(data)
		w.Close()
	}()
	return r
}

// plantToken puts a token fetched age ago, valid for 12h, in dir's cache.
func plantToken(t *testing.T, dir string, age time.Duration) {
	t.Helper()
	d, err := cache.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := ecrhost.Parse(host + "/app")
	if err != nil {
		t.Fatal(err)
	}
	fetched := time.Now().Add(-age)
	e := cache.Entry{Key: plugin.CacheKey(reg, func(string) string { return "" }), Registry: host,
		Username: "AWS", Password: "cached-pw", FetchedAt: fetched, ExpiresAt: fetched.Add(12 * time.Hour)}
	if err := d.Put(e); err != nil {
		t.Fatal(err)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

func TestAnswer(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		stdin string
		age   time.Duration // of the cached token; 0 caches none
		// want: answered from the cache, or left to the full plugin having
		// read stdin (wantRead) or not touched it.
		answered bool
		wantRead bool
	}{
		{"hit", nil, nil, request, time.Hour, true, true},
		{"hit, get-credentials as the docs' example passes it", []string{"get-credentials"}, nil, request, time.Hour, true, true},
		{"hit, info logging needs nothing logged", []string{"-v=1"}, nil, request, time.Hour, true, true},
		{"miss", nil, nil, request, 0, false, true},
		{"refresh due", nil, nil, request, 7 * time.Hour, false, true},
		{"per-pod role", nil, nil, perPod, time.Hour, false, true},
		{"bad request", nil, nil, `{"kind":`, time.Hour, false, true},
		{"request over the size limit", nil, nil, strings.Replace(request, "/app:1", "/app"+strings.Repeat("a", protocol.MaxRequestBytes)+":1", 1), time.Hour, false, true},
		{"debug logging wants the full path's account", []string{"-v", "2"}, nil, request, time.Hour, false, false},
		{"debug logging from env", nil, map[string]string{plugin.EnvLogLevel: "2"}, request, time.Hour, false, false},
		{"cache off", []string{"--no-cache"}, nil, request, time.Hour, false, false},
		{"subcommand", []string{"doctor", host + "/app"}, nil, request, time.Hour, false, false},
		{"help", []string{"-h"}, nil, request, time.Hour, false, false},
		{"version", []string{"version"}, nil, request, time.Hour, false, false},
		{"--version is the CLI's, not a plugin flag", []string{"--version"}, nil, request, time.Hour, false, false},
		{"-version", []string{"-version"}, nil, request, time.Hour, false, false},
		{"unknown flag", []string{"--bogus"}, nil, request, time.Hour, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "cache")
			if tt.age > 0 {
				plantToken(t, dir, tt.age)
			}
			env := map[string]string{plugin.EnvCacheDir: dir}
			for k, v := range tt.env {
				env[k] = v
			}
			stdin := stdinWith(t, tt.stdin)
			var stdout, stderr strings.Builder
			code, done, read := fastpath.Answer(tt.args, func(k string) string { return env[k] }, stdin, &stdout, &stderr)
			if done != tt.answered {
				t.Fatalf("answered %v, want %v (stderr %q)", done, tt.answered, stderr.String())
			}
			if stderr.Len() != 0 {
				t.Fatalf("stderr %q", stderr.String())
			}
			if !done {
				if stdout.Len() != 0 {
					t.Fatalf("wrote %q and then left the call to the full plugin", stdout.String())
				}
				// Whatever was read must reach the full plugin intact.
				rest, _ := io.ReadAll(stdin)
				if got := string(read) + string(rest); got != tt.stdin {
					t.Fatalf("the full plugin would read %q, want %q", got, tt.stdin)
				}
				if (read != nil) != tt.wantRead {
					t.Fatalf("read stdin: %v, want %v", read != nil, tt.wantRead)
				}
				return
			}
			if code != 0 {
				t.Fatalf("exit %d", code)
			}
			var resp protocol.Response
			dec := json.NewDecoder(strings.NewReader(stdout.String()))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&resp); err != nil || dec.More() {
				t.Fatalf("stdout is not one response: %v %q", err, stdout.String())
			}
			if resp.Auth[host].Password != "cached-pw" || resp.APIVersion != protocol.V1 || resp.CacheDuration == nil || resp.CacheDuration.Duration <= 0 {
				t.Fatalf("response %+v", resp)
			}
		})
	}
}

func TestAnswerReportsAFailedWrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	plantToken(t, dir, time.Hour)
	var stderr strings.Builder
	getenv := func(k string) string { return map[string]string{plugin.EnvCacheDir: dir}[k] }
	code, done, _ := fastpath.Answer(nil, getenv, stdinWith(t, request), failingWriter{}, &stderr)
	if !done || code != 1 || !strings.Contains(stderr.String(), "writing the response: broken pipe") {
		t.Fatalf("done %v, exit %d, stderr %q; want exit 1 with the reason", done, code, stderr.String())
	}
	if strings.Contains(stderr.String(), "cached-pw") {
		t.Fatal("the token reached stderr")
	}
}
