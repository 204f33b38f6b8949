package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/kubecred/ecr-credential-provider/internal/doctor"
)

// These runs stay off the network: a non-ECR image skips every AWS and
// network check, and --proc points at an empty process table.
func TestDoctorCommandLine(t *testing.T) {
	proc := t.TempDir()
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   []string
		stderr   []string
		jsonOut  bool
		wantJSON func(t *testing.T, rep doctor.Report)
	}{
		{name: "no image", args: []string{"--proc", proc}, code: 2, stderr: []string{"no image given", "Run 'ecr-credential-provider doctor --help' for usage."}},
		{name: "two images", args: []string{"--proc", proc, "a.io/x", "b.io/y"}, code: 2, stderr: []string{"one image at a time"}},
		{name: "unknown flag", args: []string{"--nope", "a.io/x"}, code: 2, stderr: []string{"flag provided but not defined"}},
		{name: "malformed image", args: []string{"--proc", proc, "bad image!!"}, code: 1, stdout: []string{`✗ Image  "bad image!!" is not a valid image reference`, "fix: write the image as in the pod spec"}},
		{name: "bad registry endpoint", args: []string{"--proc", proc, "--registry-endpoint", "::x", "123456789012.dkr.ecr.us-east-1.amazonaws.com/app"}, code: 2, stderr: []string{"is not a URL"}},
		{
			name:   "not an ECR image, text",
			args:   []string{"--proc", proc, "ghcr.io/org/app:v1"},
			code:   1,
			stdout: []string{"✗ Image", "not an ECR registry", "fix: ", "FAIL: a pull would fail"},
		},
		{
			name:    "flags after the image, JSON",
			args:    []string{"ghcr.io/org/app:v1", "--proc", proc, "--json"},
			code:    1,
			jsonOut: true,
			wantJSON: func(t *testing.T, rep doctor.Report) {
				if rep.OK || rep.Image != "ghcr.io/org/app:v1" {
					t.Errorf("report: ok=%v image=%q", rep.OK, rep.Image)
				}
				if c, _ := rep.Find(doctor.CheckImage); c.Status != doctor.StatusFail || c.Remedy == "" {
					t.Errorf("image check: %+v", c)
				}
				if c, _ := rep.Find(doctor.CheckAuthToken); c.Status != doctor.StatusSkip {
					t.Errorf("auth-token check ran for a non-ECR image: %+v", c)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			env := &Env{Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }}
			code := runDoctor(context.Background(), env, tt.args)
			if code != tt.code {
				t.Errorf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout.String(), stderr.String())
			}
			for _, s := range tt.stdout {
				if !strings.Contains(stdout.String(), s) {
					t.Errorf("stdout lacks %q:\n%s", s, stdout.String())
				}
			}
			for _, s := range tt.stderr {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr.String())
				}
			}
			if tt.jsonOut {
				var rep doctor.Report
				if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
					t.Fatalf("stdout is not a JSON report: %v\n%s", err, stdout.String())
				}
				tt.wantJSON(t, rep)
			}
		})
	}
}
