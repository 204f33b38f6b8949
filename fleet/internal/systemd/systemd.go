// Package systemd asks the node's systemd to reload units and restart the
// kubelet's service over its D-Bus API, on the private socket below the
// host root the installer has mounted: no shell, no nsenter, no host PID
// namespace, and the same calls systemctl makes.
package systemd

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	sd "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// PrivateSocket is systemd's own D-Bus socket, for root, on every systemd
// host (systemctl uses it too).
const PrivateSocket = "/run/systemd/private"

// Manager runs systemctl's daemon-reload and restart through the socket
// at Socket.
type Manager struct {
	Socket string
}

// ForRoot is the manager of the systemd whose host root is mounted at root.
func ForRoot(root string) Manager {
	return Manager{Socket: filepath.Join(root, PrivateSocket)}
}

// Reachable connects to systemd and hangs up: a node whose systemd does not
// answer (Talos and Bottlerocket have none) is found out before anything
// on it changes.
func (m Manager) Reachable(ctx context.Context) error {
	conn, err := m.connect(ctx)
	if err != nil {
		return err
	}
	conn.Close()
	return nil
}

// Run does one command: "daemon-reload", or "restart UNIT", and waits
// until systemd says the job is done.
func (m Manager) Run(ctx context.Context, args ...string) error {
	if len(args) == 0 || (args[0] == "restart") != (len(args) == 2) || (args[0] != "restart" && args[0] != "daemon-reload") {
		return fmt.Errorf("systemd: unsupported command %q (want daemon-reload, or restart UNIT)", args)
	}
	conn, err := m.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if args[0] == "daemon-reload" {
		return conn.ReloadContext(ctx)
	}
	return restart(ctx, conn, args[1])
}

// connect opens a connection to systemd on the socket, authenticated as
// systemctl does.
func (m Manager) connect(ctx context.Context) (*sd.Conn, error) {
	conn, err := sd.NewConnection(func() (*dbus.Conn, error) {
		c, err := dbus.Dial("unix:path="+m.Socket, dbus.WithContext(ctx))
		if err != nil {
			return nil, err
		}
		// EXTERNAL with the numeric uid, as go-systemd does: no user lookup.
		if err := c.Auth([]dbus.Auth{dbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	})
	if err != nil {
		return nil, fmt.Errorf("connecting to systemd at %s (is the host's /run mounted, and the installer root?): %w", m.Socket, err)
	}
	return conn, nil
}

// restart restarts unit and waits until systemd says the job is done.
func restart(ctx context.Context, conn *sd.Conn, unit string) error {
	done := make(chan string, 1)
	if _, err := conn.RestartUnitContext(ctx, unit, "replace", done); err != nil {
		return fmt.Errorf("restart %s: %w", unit, err)
	}
	select {
	case res := <-done:
		if res != "done" {
			return fmt.Errorf("restart %s: job ended %q (see journalctl -u %s on the node)", unit, res, unit)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("restart %s: %w", unit, ctx.Err())
	}
}
