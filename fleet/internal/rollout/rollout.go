// Package rollout is what the fleet installer does on one node: change the
// node's files (install, upgrade or uninstall), check them with the rules of
// the node's own kubelet before anything restarts, restart the kubelet only
// when something changed, confirm that it came back and that the installed
// plugin answers a real credential request, and otherwise put every file
// back as it was and restart again. The node, systemd, the kubelet's health
// and the report are small interfaces, so the decisions are tested alone.
package rollout

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Mode is what the installer does on each node.
type Mode string

// The modes.
const (
	Install   Mode = "install"
	Uninstall Mode = "uninstall"
	// DryRun reports what install would change, and changes nothing.
	DryRun Mode = "dry-run"
)

// ParseMode checks a mode given by the operator.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case Install, Uninstall, DryRun:
		return m, nil
	}
	return "", fmt.Errorf("mode %q: want install, uninstall or dry-run", s)
}

// Change is what the mode's action would do to the node.
type Change struct {
	// Changed is true when files would be written.
	Changed bool
	// NeedsForce is true when install found what it would change but may
	// not (an EKS AMI's own binary): the node is reported on, not changed.
	NeedsForce bool
	// Actions say what would change, one line each.
	Actions []string
	// Diff is a unified diff of the files that would change.
	Diff string
}

// Node is the node's files as install and uninstall change them.
type Node interface {
	// Plan says what the action would do, and changes nothing.
	Plan(ctx context.Context) (Change, error)
	// Snapshot records every file the action would change.
	Snapshot(ctx context.Context) (Restorer, error)
	// Apply does the action and returns the systemctl commands that make
	// the kubelet use the result ("daemon-reload", "restart kubelet.service").
	Apply(ctx context.Context) (restart [][]string, err error)
	// CheckBoot lists every reason the node's kubelet, of the version the
	// node reports, could not start with the files as they are now.
	CheckBoot(ctx context.Context) ([]string, error)
}

// Restorer puts the files of a snapshot back.
type Restorer interface {
	Restore(ctx context.Context) error
}

// Systemd runs a systemctl-style command (daemon-reload, restart UNIT)
// and waits until systemd has done it.
type Systemd interface {
	Run(ctx context.Context, args ...string) error
	// Reachable says whether systemd answers at all, asked before anything
	// changes: a change the kubelet cannot be restarted into is not made.
	Reachable(ctx context.Context) error
}

// Health says whether the node works after a restart.
type Health interface {
	// WaitKubelet waits until the kubelet started after since is running:
	// its node Lease renewed after since and the node Ready.
	WaitKubelet(ctx context.Context, since time.Time) error
	// CheckCredentials runs the installed plugin as the kubelet would for
	// a real image and checks that it answers with credentials. It
	// returns ErrNoCheck when there is nothing to check it with.
	CheckCredentials(ctx context.Context) error
}

// ErrNoCheck says the credential check was not made (no image to ask for).
var ErrNoCheck = errors.New("no credential check: no check image is set")

// The results a node can end in, as its annotation shows them.
const (
	ResultInstalled   = "installed"
	ResultUninstalled = "uninstalled"
	ResultUnchanged   = "unchanged"
	ResultDryRun      = "dry-run"
	ResultNeedsForce  = "needs-force"
	ResultRolledBack  = "rolled-back"
	ResultFailed      = "failed"
)

// Outcome is how a node's run ended.
type Outcome struct {
	Mode   Mode
	Result string
	// Message says what happened, or why not, in one line.
	Message string
	// Ready is true when the node passed: the pod may report Ready, and a
	// rolling update may go on to the next node.
	Ready bool
	// Restarted is true when the kubelet was restarted (twice, rolled back).
	Restarted bool
}

// Config is one node's run.
type Config struct {
	Mode    Mode
	Node    Node
	Systemd Systemd
	Health  Health
	// Timeout bounds the wait for the kubelet after each restart.
	Timeout time.Duration
	// Log receives progress lines.
	Log func(format string, args ...any)
	// Now is the clock (nil: time.Now).
	Now func() time.Time

	checkNote string
}

// Run does the mode's action on the node and returns how it ended. It
// never leaves a change in place that the node's kubelet did not pass.
func Run(ctx context.Context, c Config) Outcome {
	if c.Log == nil {
		c.Log = func(string, ...any) {}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	out := func(result string, ready bool, format string, args ...any) Outcome {
		return Outcome{Mode: c.Mode, Result: result, Ready: ready, Message: fmt.Sprintf(format, args...)}
	}
	chg, err := c.Node.Plan(ctx)
	if err != nil {
		return out(ResultFailed, false, "%s: %v", c.Mode, err)
	}
	for _, a := range chg.Actions {
		c.Log("%s: %s", c.Mode, a)
	}
	switch {
	case c.Mode == DryRun:
		if chg.Diff != "" {
			c.Log("dry run: the files would change as follows:\n%s", chg.Diff)
		}
		if !chg.Changed {
			return out(ResultDryRun, true, "install would change nothing")
		}
		return out(ResultDryRun, true, "install would make %d changes: %s", len(chg.Actions), strings.Join(chg.Actions, "; "))
	case chg.NeedsForce:
		return out(ResultNeedsForce, true, "this is an EKS node whose AMI owns the provider binary: nothing changed; set eks.replaceBinary to replace it (install --force)")
	case !chg.Changed:
		if c.Mode == Install {
			if err := c.checkCredentials(ctx); err != nil && !errors.Is(err, ErrNoCheck) {
				return out(ResultFailed, false, "already installed, but the installed plugin does not answer: %v", err)
			}
		}
		return out(ResultUnchanged, true, "nothing to change")
	}

	if err := c.Systemd.Reachable(ctx); err != nil {
		return out(ResultFailed, false, "%s: nothing changed, as the kubelet could not be restarted to use the change: %v; "+
			"this installer restarts it through systemd, so on a node without systemd (Talos, Bottlerocket) set up the kubelet's credential provider through the OS's own configuration", c.Mode, err)
	}
	snap, err := c.Node.Snapshot(ctx)
	if err != nil {
		return out(ResultFailed, false, "%s: nothing changed: recording the files before the change: %v", c.Mode, err)
	}
	restart, err := c.Node.Apply(ctx)
	if err != nil {
		// Install and uninstall roll their own writes back when one fails.
		return out(ResultFailed, false, "%s: %v", c.Mode, err)
	}
	if probs, err := c.Node.CheckBoot(ctx); err != nil || len(probs) > 0 {
		why := strings.Join(probs, "; ")
		if err != nil {
			why = err.Error()
		}
		if rerr := snap.Restore(ctx); rerr != nil {
			return out(ResultFailed, false, "the kubelet could not start with the new files (%s), and putting them back failed: %v; the kubelet was not restarted", why, rerr)
		}
		return out(ResultRolledBack, false, "the kubelet could not start with the new files: %s; they were put back and the kubelet was not restarted", why)
	}

	reason := c.restartAndCheck(ctx, restart)
	if reason == nil {
		res := ResultInstalled
		if c.Mode == Uninstall {
			res = ResultUninstalled
		}
		o := out(res, true, "%sed; the kubelet restarted and is Ready", c.Mode)
		if c.Mode == Install {
			o.Message += c.checkNote
		}
		o.Restarted = true
		return o
	}
	c.Log("%s failed after the restart: %v; putting the files back", c.Mode, reason)
	if err := snap.Restore(ctx); err != nil {
		o := out(ResultFailed, false, "%s failed after the restart (%v), and putting the files back failed: %v", c.Mode, reason, err)
		o.Restarted = true
		return o
	}
	if err := c.restart(ctx, restart); err != nil {
		o := out(ResultFailed, false, "%s failed after the restart (%v); the files were put back, but the kubelet did not come back with them: %v", c.Mode, reason, err)
		o.Restarted = true
		return o
	}
	o := out(ResultRolledBack, false, "%s failed after the restart: %v; the files were put back and the kubelet restarted with them", c.Mode, reason)
	o.Restarted = true
	return o
}

// restartAndCheck restarts the kubelet and says why the node did not
// pass, or nil.
func (c *Config) restartAndCheck(ctx context.Context, restart [][]string) error {
	if err := c.restart(ctx, restart); err != nil {
		return err
	}
	if c.Mode != Install {
		return nil
	}
	return c.checkCredentials(ctx)
}

// restart runs the commands, then waits for the kubelet.
func (c *Config) restart(ctx context.Context, restart [][]string) error {
	since := c.Now()
	for _, cmd := range restart {
		c.Log("systemctl %s", strings.Join(cmd, " "))
		if err := c.Systemd.Run(ctx, cmd...); err != nil {
			return fmt.Errorf("systemctl %s: %w", strings.Join(cmd, " "), err)
		}
	}
	wctx := ctx
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	if err := c.Health.WaitKubelet(wctx, since); err != nil {
		return fmt.Errorf("the kubelet did not come back: %w", err)
	}
	return nil
}

// checkCredentials runs the credential check; a skipped check is noted
// in the install's message, so the operator sees what the proof was.
func (c *Config) checkCredentials(ctx context.Context) error {
	err := c.Health.CheckCredentials(ctx)
	switch {
	case err == nil:
		c.checkNote = ", and the plugin answered a credential request"
	case errors.Is(err, ErrNoCheck):
		c.checkNote = " (no credential check: set checkImage)"
		c.Log("%v", err)
	default:
		return fmt.Errorf("the installed plugin did not answer a credential request: %w", err)
	}
	return nil
}
