package credentials

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	testclock "k8s.io/utils/clock/testing"

	"github.com/kubecred/ecr-credential-provider/internal/awsemu"
	"github.com/kubecred/ecr-credential-provider/internal/ecrhost"
	"github.com/kubecred/ecr-credential-provider/internal/token"
)

// TestAWSThroughTheSDK fetches real tokens through aws-sdk-go-v2 and its
// default chain (IMDS credentials here) from the project's AWS emulator, for
// a private registry and ECR Public, then has the emulator deny the call.
func TestAWSThroughTheSDK(t *testing.T) {
	emu, err := awsemu.Start(awsemu.Options{TokenTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	home := t.TempDir()
	env, err := emu.IsolatedEnv(home)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION",
		"AWS_DEFAULT_REGION", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if k != "PATH" {
			t.Setenv(k, v)
		}
	}

	private := mustReg(t, emu.Account()+".dkr.ecr.us-west-2.amazonaws.com")
	public := mustReg(t, "public.ecr.aws")
	clk := testclock.NewFakeClock(time.Now())
	s := New(AWS{Fetcher: token.New(token.Options{})}, []ecrhost.Registry{private, public}, Options{Clock: clk})
	res, _ := s.RefreshDue(context.Background())
	if len(res) != 2 {
		t.Fatalf("results %+v", res)
	}
	want := emu.PasswordFor(emu.InstanceARN())
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("%s: %v", r.Registry, r.Err)
		}
		tok := s.Tokens()[r.Registry]
		if tok.Username != "AWS" || tok.Password != want {
			t.Fatalf("%s: token for %s, want the instance role's password", r.Registry, tok.Username)
		}
		if life := r.ExpiresAt.Sub(clk.Now()); life < 50*time.Minute || life > 70*time.Minute {
			t.Fatalf("%s: expiry %s from now, want the emulator's 1h", r.Registry, life)
		}
	}

	emu.Deny("ecr:GetAuthorizationToken", "")
	clk.Step(31 * time.Minute)
	res, _ = s.RefreshDue(context.Background())
	var denied bool
	for _, r := range res {
		if r.Registry == private.Host {
			denied = r.Err != nil && Reason(r.Err) == "access_denied" && strings.Contains(r.Err.Error(), "ecr:GetAuthorizationToken")
		}
	}
	if !denied {
		t.Fatalf("denial not reported as access_denied: %+v", res)
	}
	if s.Tokens()[private.Host].Password != want {
		t.Fatal("the held token was dropped on denial")
	}
}
