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

// Run does one command: "daemon-reload", or "restart UNIT", and waits
// until systemd says the job is done.
func (m Manager) Run(ctx context.Context, args ...string) error {
	if len(args) == 0 || (args[0] == "restart") != (len(args) == 2) || (args[0] != "restart" && args[0] != "daemon-reload") {
		return fmt.Errorf("systemd: unsupported command %q (want daemon-reload, or restart UNIT)", args)
	}
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
		return fmt.Errorf("connecting to systemd at %s (is the host's /run mounted, and the installer root?): %w", m.Socket, err)
	}
	defer conn.Close()
	if args[0] == "daemon-reload" {
		return conn.ReloadContext(ctx)
	}
	done := make(chan string, 1)
	if _, err := conn.RestartUnitContext(ctx, args[1], "replace", done); err != nil {
		return fmt.Errorf("restart %s: %w", args[1], err)
	}
	select {
	case res := <-done:
		if res != "done" {
			return fmt.Errorf("restart %s: job ended %q (see journalctl -u %s on the node)", args[1], res, args[1])
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("restart %s: %w", args[1], ctx.Err())
	}
}
