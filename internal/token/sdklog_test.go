package token_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kubecred/ecr-credential-provider/internal/token"
)

// TestSDKLogGoesToTheLogger makes the SDK warn (an IMDS that refuses
// IMDSv2 tokens makes it fall back to IMDSv1) and wants the warning in the
// caller's logger, where the plugin's --log-file and the doctor's discard
// apply, rather than raw on stderr.
func TestSDKLogGoesToTheLogger(t *testing.T) {
	isolate(t)
	imds := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		http.NotFound(w, r)
	}))
	defer imds.Close()
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "")
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.URL)
	var logs bytes.Buffer
	f := token.New(token.Options{MaxAttempts: 1, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	cfg, err := f.LoadConfig(context.Background(), "us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.Credentials.Retrieve(context.Background()); err == nil {
		t.Fatal("credentials from an IMDS without a role")
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "aws-sdk: falling back to IMDSv1") {
		t.Errorf("the SDK's warning did not reach the logger: %q", logs.String())
	}
}
