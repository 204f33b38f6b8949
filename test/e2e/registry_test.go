package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// registry is a local distribution registry (Debian's docker-registry)
// that only lets in user AWS with one password: the password the emulator
// puts in every ECR token. A pull through it therefore proves the kubelet
// got a token from our plugin.
type registry struct {
	addr     string // 127.0.0.1:PORT
	proc     *proc
	htpasswd string
}

func startRegistry(t *testing.T, dir, password string) *registry {
	t.Helper()
	r := &registry{htpasswd: filepath.Join(dir, "htpasswd")}
	r.setPassword(t, password)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: %s
http:
  addr: %s
  secret: e2e-not-a-secret
auth:
  htpasswd:
    realm: e2e
    path: %s
`, filepath.Join(dir, "storage"), addr, r.htpasswd)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	r.addr = addr
	r.proc = startProc(t, "registry", filepath.Join(dir, "registry.log"), nil, "docker-registry", "serve", cfgPath)
	ok := waitFor(15*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusUnauthorized
	})
	if !ok {
		t.Fatalf("registry did not come up on %s:\n%s", addr, r.proc.logTail(30))
	}
	return r
}

// setPassword makes password the only one the registry accepts for user
// AWS. The registry rereads its htpasswd file when the file's modification
// time changes, so a running registry follows at its next request; the new
// file is renamed into place so no request sees half of it.
func (r *registry) setPassword(t *testing.T, password string) {
	t.Helper()
	next := r.htpasswd + ".next"
	cmd := exec.Command("htpasswd", "-iBc", next, "AWS") // -i: password on stdin, not in argv
	cmd.Stdin = strings.NewReader(password)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("htpasswd: %v\n%s", err, out)
	}
	if err := os.Rename(next, r.htpasswd); err != nil {
		t.Fatal(err)
	}
}
