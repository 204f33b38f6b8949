//go:build unix

package main

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestRunRefusesBadInvocations(t *testing.T) {
	tests := []struct {
		args []string
		want int
	}{
		{[]string{"-addr", "0.0.0.0:0"}, 1},
		{[]string{"-addr", "192.168.1.1:8080"}, 1},
		{[]string{"-nope"}, 2},
		{[]string{"-h"}, 0},
		{[]string{"extra"}, 2},
		{[]string{"-static-key", "AKID:secret"}, 2},
	}
	for _, tt := range tests {
		if got := run(tt.args); got != tt.want {
			t.Errorf("run(%q) = %d, want %d", tt.args, got, tt.want)
		}
	}
}

func TestStaticKeyFlag(t *testing.T) {
	k := staticKeys{}
	if err := k.Set("AKIAEXAMPLE:se:cret:arn:aws:iam::123456789012:user/ci"); err == nil {
		t.Fatal("a colon in the secret must not silently shift the ARN")
	}
	if err := k.Set("AKIAEXAMPLE:secret:arn:aws:iam::123456789012:user/ci"); err != nil {
		t.Fatal(err)
	}
	if got := k["AKIAEXAMPLE"]; got.Secret != "secret" || got.ARN != "arn:aws:iam::123456789012:user/ci" {
		t.Errorf("parsed %+v", got)
	}
}

// TestBackgroundEval runs the README's line through a shell: the eval
// returns, the exported endpoints answer, and kill "$AWSEMU_PID" stops the
// emulator.
func TestBackgroundEval(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "awsemu")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The shell's stdout is a pipe: if the detached emulator kept it open,
	// Output would not return.
	out, err := exec.CommandContext(ctx, "sh", "-c", `eval "$("$1" -background -account 111122223333)" && printf '%s\n' "$AWSEMU_PID" "$AWS_ENDPOINT_URL_STS"`, "sh", bin).Output()
	if err != nil {
		t.Fatalf("eval: %v", err)
	}
	lines := strings.Fields(string(out))
	if len(lines) != 2 {
		t.Fatalf("want the pid and the STS endpoint, got %q", out)
	}
	pid, err := strconv.Atoi(lines[0])
	if err != nil {
		t.Fatalf("AWSEMU_PID %q: %v", lines[0], err)
	}
	proc, _ := os.FindProcess(pid)
	defer proc.Kill()
	endpoint := lines[1]
	resp, err := http.Post(endpoint+"/", "application/x-www-form-urlencoded", strings.NewReader("Action=GetCallerIdentity&Version=2011-06-15"))
	if err != nil {
		t.Fatalf("the emulator is not serving after the eval: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK || resp.StatusCode >= 500 {
		t.Errorf("an unsigned STS call answered %d, want the emulator's signature error", resp.StatusCode)
	}
	if out, err := exec.Command("sh", "-c", `kill "$1"`, "sh", lines[0]).CombinedOutput(); err != nil {
		t.Fatalf("kill: %v %s", err, out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(endpoint + "/")
		if err != nil {
			break
		}
		resp.Body.Close()
		if time.Now().After(deadline) {
			t.Fatal("the emulator still serves after kill $AWSEMU_PID")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
