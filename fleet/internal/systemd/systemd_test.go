package systemd

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubecred/ecr-credential-provider/fleet/systemdtest"
)

// TestManagerAgainstSystemdAPI drives go-systemd's real client against a
// socket serving systemd's D-Bus calls: a reload and a restart arrive as
// those calls, a failed job is an error naming the unit, and a missing
// socket says what to mount.
func TestManagerAgainstSystemdAPI(t *testing.T) {
	root := t.TempDir()
	sock := filepath.Join(root, "run/systemd/private")
	if err := mkdirAll(filepath.Dir(sock)); err != nil {
		t.Fatal(err)
	}
	restarted := make(chan string, 4)
	srv, err := systemdtest.Start(sock, func(method, unit string) error {
		if unit == "k3s.service" {
			return errors.New("start failed")
		}
		if method == "RestartUnit" {
			restarted <- unit
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m := ForRoot(root)
	if err := m.Reachable(ctx); err != nil {
		t.Fatalf("Reachable: %v", err)
	}
	if err := m.Run(ctx, "daemon-reload"); err != nil {
		t.Fatalf("daemon-reload: %v", err)
	}
	if err := m.Run(ctx, "restart", "kubelet.service"); err != nil {
		t.Fatalf("restart: %v", err)
	}
	if got := <-restarted; got != "kubelet.service" {
		t.Errorf("restarted %q", got)
	}
	if got := strings.Join(srv.Calls(), ","); got != "Reload,RestartUnit kubelet.service" {
		t.Errorf("systemd saw %q", got)
	}
	if err := m.Run(ctx, "restart", "k3s.service"); err == nil || !strings.Contains(err.Error(), `"failed"`) || !strings.Contains(err.Error(), "journalctl -u k3s.service") {
		t.Errorf("a failed job: %v", err)
	}
	if err := m.Run(ctx, "stop", "kubelet.service"); err == nil {
		t.Error("an unsupported command was sent")
	}
	err = ForRoot(t.TempDir()).Run(ctx, "daemon-reload")
	if err == nil || !strings.Contains(err.Error(), "/run/systemd/private") {
		t.Errorf("no socket: %v", err)
	}
	if err := ForRoot(t.TempDir()).Reachable(ctx); err == nil || !strings.Contains(err.Error(), "/run/systemd/private") {
		t.Errorf("Reachable without a socket: %v", err)
	}
}

func mkdirAll(p string) error { return os.MkdirAll(p, 0o755) }
