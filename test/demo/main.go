// Command demo shows the plugin doing its job with no AWS account: it builds
// ecr-credential-provider, starts the project's AWS emulator on 127.0.0.1,
// and calls the plugin exactly as the kubelet does, printing each request
// and response with the password masked.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/kubecred/ecr-credential-provider/internal/awsemu"
	"github.com/kubecred/ecr-credential-provider/internal/buildflags"
	"github.com/kubecred/ecr-credential-provider/internal/protocol"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run() error {
	dir, err := os.MkdirTemp("", "ecr-credential-provider-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "ecr-credential-provider")
	fmt.Println("# building ecr-credential-provider")
	build := exec.Command("go", append(append([]string{"build"}, buildflags.Plugin()...), "-o", bin, "./cmd/ecr-credential-provider")...)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build: %w (run the demo from the repository root)", err)
	}

	emu, err := awsemu.Start(awsemu.Options{})
	if err != nil {
		return err
	}
	defer emu.Close()
	fmt.Printf("# AWS emulator (IMDSv2, ECR, ECR Public, STS) on %s; the node role is %s\n\n", emu.URL(), emu.RoleARN())

	env, err := emu.IsolatedEnv(dir)
	if err != nil {
		return err
	}
	env = append(env, "ECR_CREDENTIAL_PROVIDER_CACHE_DIR="+filepath.Join(dir, "cache"))

	steps := []struct {
		title, request string
		before         func()
	}{
		{"1. First pull of a private ECR image: the plugin gets the node role's credentials from IMDS and calls ecr:GetAuthorizationToken",
			req(protocol.V1, "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app"), nil},
		{"2. The same registry again, as after a kubelet restart: served from the disk cache",
			req(protocol.V1, "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/other"), nil},
		{"3. An older kubelet (v1alpha1 request) pulling from ECR Public: answered in v1alpha1",
			req(protocol.V1Alpha1, "public.ecr.aws/nginx/nginx"), nil},
		{"4. The node role lacks ecr:GetAuthorizationToken: the kubelet gets one clear line on stderr",
			req(protocol.V1, "210987654321.dkr.ecr.eu-west-1.amazonaws.com/app"),
			func() { emu.Deny("ecr:GetAuthorizationToken", "") }},
	}
	for _, s := range steps {
		if s.before != nil {
			s.before()
		}
		before := emu.Stats().Requests
		fmt.Println("## " + s.title)
		fmt.Println("stdin  <- " + s.request)
		cmd := exec.Command(bin)
		cmd.Env = env
		cmd.Stdin = strings.NewReader(s.request)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		start := time.Now()
		runErr := cmd.Run()
		elapsed := time.Since(start)
		if out.Len() > 0 {
			fmt.Println("stdout -> " + mask(out.Bytes()))
		}
		if errb.Len() > 0 {
			fmt.Print("stderr -> " + errb.String())
		}
		code := 0
		if ee, ok := runErr.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if runErr != nil {
			return runErr
		}
		fmt.Printf("exit %d in %v, %d HTTP requests to AWS\n\n", code, elapsed.Round(100*time.Microsecond), emu.Stats().Requests-before)
	}
	return nil
}

func req(version, image string) string {
	return fmt.Sprintf(`{"kind":"CredentialProviderRequest","apiVersion":%q,"image":%q}`, version, image)
}

// mask hides passwords but keeps the response's shape.
func mask(out []byte) string {
	var resp protocol.Response
	if err := json.Unmarshal(out, &resp); err != nil {
		return "<not a response>"
	}
	for host, a := range resp.Auth {
		a.Password = a.Password[:min(4, len(a.Password))] + "…(" + fmt.Sprint(len(a.Password)) + " chars, masked)"
		resp.Auth[host] = a
	}
	b, _ := json.Marshal(resp)
	return string(b)
}
