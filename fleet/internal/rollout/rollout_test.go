package rollout

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// fakeNode is a node whose files are one string: Apply sets it to next,
// Restore puts the snapshot's back.
type fakeNode struct {
	files, next string
	needsForce  bool
	planErr     error
	applyErr    error
	bootProbs   []string
	restart     [][]string
	applied     int
	restored    int
}

func (n *fakeNode) Plan(context.Context) (Change, error) {
	c := Change{Changed: n.files != n.next, NeedsForce: n.needsForce}
	if c.Changed {
		c.Actions = []string{"update /etc/kubernetes/image-credential-provider-config.yaml"}
	}
	return c, n.planErr
}

func (n *fakeNode) Snapshot(context.Context) (Restorer, error) {
	return restorer{n, n.files}, nil
}

type restorer struct {
	n     *fakeNode
	files string
}

func (r restorer) Restore(context.Context) error { r.n.files = r.files; r.n.restored++; return nil }

func (n *fakeNode) Apply(context.Context) ([][]string, error) {
	if n.applyErr != nil {
		return nil, n.applyErr
	}
	n.files = n.next
	n.applied++
	return n.restart, nil
}

func (n *fakeNode) CheckBoot(context.Context) ([]string, error) {
	if n.files == n.next {
		return n.bootProbs, nil
	}
	return nil, nil
}

// fakeSystemd records the commands and, on a restart, starts the kubelet
// with the node's files as they are then: a "broken" file never comes up.
type fakeSystemd struct {
	down    error // what Reachable says
	n       *fakeNode
	ran     []string
	kubelet string // the files the running kubelet started with
	started time.Time
	now     *time.Time
}

func (s *fakeSystemd) Run(_ context.Context, args ...string) error {
	s.ran = append(s.ran, strings.Join(args, " "))
	if args[0] == "restart" {
		*s.now = s.now.Add(time.Second)
		s.kubelet, s.started = s.n.files, *s.now
	}
	return nil
}

func (s *fakeSystemd) Reachable(context.Context) error { return s.down }

type fakeHealth struct {
	s         *fakeSystemd
	noCheck   bool
	credsFail bool // the plugin fails with the "next" files
}

func (h *fakeHealth) WaitKubelet(_ context.Context, since time.Time) error {
	if h.s.started.Before(since) {
		return errors.New("no restart since")
	}
	if strings.Contains(h.s.kubelet, "kubelet-breaking") {
		return errors.New("node not Ready: Lease not renewed")
	}
	return nil
}

func (h *fakeHealth) CheckCredentials(context.Context) error {
	if h.noCheck {
		return ErrNoCheck
	}
	if h.credsFail && h.s.kubelet == h.s.n.next {
		return errors.New("exit status 1: unknown flag --bogus")
	}
	return nil
}

func TestRun(t *testing.T) {
	restart := [][]string{{"daemon-reload"}, {"restart", "kubelet.service"}}
	tests := []struct {
		name        string
		mode        Mode
		node        fakeNode
		noCheck     bool
		credsFail   bool
		noSystemd   bool
		want        string
		ready       bool
		wantFiles   string // what the node holds at the end
		wantRan     []string
		wantMessage string
	}{
		{name: "first install restarts once and passes", mode: Install, node: fakeNode{files: "orig", next: "ours"},
			want: ResultInstalled, ready: true, wantFiles: "ours", wantRan: []string{"daemon-reload", "restart kubelet.service"},
			wantMessage: "plugin answered"},
		{name: "nothing changed: no restart", mode: Install, node: fakeNode{files: "ours", next: "ours"},
			want: ResultUnchanged, ready: true, wantFiles: "ours"},
		{name: "unchanged but the plugin fails: not Ready, nothing touched", mode: Install, node: fakeNode{files: "ours", next: "ours"}, credsFail: true,
			want: ResultFailed, ready: false, wantFiles: "ours", wantMessage: "does not answer"},
		{name: "the kubelet would refuse the config: put back, never restarted", mode: Install,
			node: fakeNode{files: "orig", next: "ours", bootProbs: []string{"kubelet v1.25 would refuse apiVersion v1"}},
			want: ResultRolledBack, ready: false, wantFiles: "orig", wantMessage: "v1.25 would refuse"},
		{name: "the kubelet does not come back: rolled back and restarted again", mode: Install,
			node: fakeNode{files: "orig", next: "kubelet-breaking"},
			want: ResultRolledBack, ready: false, wantFiles: "orig",
			wantRan:     []string{"daemon-reload", "restart kubelet.service", "daemon-reload", "restart kubelet.service"},
			wantMessage: "Lease not renewed"},
		{name: "the plugin does not answer after the restart: rolled back", mode: Install,
			node: fakeNode{files: "v1", next: "v2"}, credsFail: true,
			want: ResultRolledBack, ready: false, wantFiles: "v1",
			wantRan:     []string{"daemon-reload", "restart kubelet.service", "daemon-reload", "restart kubelet.service"},
			wantMessage: "unknown flag"},
		{name: "no check image: installed, and the message says so", mode: Install, node: fakeNode{files: "orig", next: "ours"}, noCheck: true,
			want: ResultInstalled, ready: true, wantFiles: "ours", wantRan: []string{"daemon-reload", "restart kubelet.service"},
			wantMessage: "no credential check"},
		{name: "dry run changes nothing and passes", mode: DryRun, node: fakeNode{files: "orig", next: "ours"},
			want: ResultDryRun, ready: true, wantFiles: "orig", wantMessage: "would make 1 changes"},
		{name: "EKS without force: report only", mode: Install, node: fakeNode{files: "orig", next: "ours", needsForce: true},
			want: ResultNeedsForce, ready: true, wantFiles: "orig"},
		{name: "plan fails: nothing changed", mode: Install, node: fakeNode{files: "orig", next: "ours", planErr: errors.New("ambiguous distro")},
			want: ResultFailed, ready: false, wantFiles: "orig", wantMessage: "ambiguous distro"},
		{name: "apply fails: reported, no restart", mode: Install, node: fakeNode{files: "orig", next: "ours", applyErr: errors.New("read-only file system")},
			want: ResultFailed, ready: false, wantFiles: "orig", wantMessage: "read-only"},
		{name: "no systemd to restart the kubelet: nothing changed", mode: Install, node: fakeNode{files: "orig", next: "ours"}, noSystemd: true,
			want: ResultFailed, ready: false, wantFiles: "orig", wantMessage: "nothing changed, as the kubelet could not be restarted"},
		{name: "no systemd, nothing to change: unchanged", mode: Install, node: fakeNode{files: "ours", next: "ours"}, noSystemd: true,
			want: ResultUnchanged, ready: true, wantFiles: "ours"},
		{name: "no systemd, dry run: reports as usual", mode: DryRun, node: fakeNode{files: "orig", next: "ours"}, noSystemd: true,
			want: ResultDryRun, ready: true, wantFiles: "orig", wantMessage: "would make 1 changes"},
		{name: "uninstall restarts and passes without a credential check", mode: Uninstall, node: fakeNode{files: "ours", next: "orig"}, credsFail: true,
			want: ResultUninstalled, ready: true, wantFiles: "orig", wantRan: []string{"daemon-reload", "restart kubelet.service"}},
		{name: "uninstall whose kubelet does not come back: installed again", mode: Uninstall, node: fakeNode{files: "ours", next: "kubelet-breaking"},
			want: ResultRolledBack, ready: false, wantFiles: "ours",
			wantRan: []string{"daemon-reload", "restart kubelet.service", "daemon-reload", "restart kubelet.service"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := tt.node
			n.restart = restart
			now := time.Unix(1_800_000_000, 0)
			sd := &fakeSystemd{n: &n, kubelet: n.files, now: &now}
			if tt.noSystemd {
				sd.down = errors.New("connecting to systemd at /host/run/systemd/private: dial unix: no such file or directory")
			}
			h := &fakeHealth{s: sd, noCheck: tt.noCheck, credsFail: tt.credsFail}
			got := Run(context.Background(), Config{Mode: tt.mode, Node: &n, Systemd: sd, Health: h, Timeout: time.Minute,
				Now: func() time.Time { return now }})
			if got.Result != tt.want || got.Ready != tt.ready {
				t.Errorf("Run = %s ready=%v (%s); want %s ready=%v", got.Result, got.Ready, got.Message, tt.want, tt.ready)
			}
			if tt.noSystemd && (n.applied != 0 || n.restored != 0) {
				t.Errorf("without systemd the node was applied %d and restored %d times; want neither", n.applied, n.restored)
			}
			if n.files != tt.wantFiles {
				t.Errorf("node holds %q; want %q", n.files, tt.wantFiles)
			}
			if strings.Join(sd.ran, ",") != strings.Join(tt.wantRan, ",") {
				t.Errorf("systemctl ran %q; want %q", sd.ran, tt.wantRan)
			}
			if !strings.Contains(got.Message, tt.wantMessage) {
				t.Errorf("message %q does not say %q", got.Message, tt.wantMessage)
			}
			if tt.wantFiles != "ours" && tt.wantFiles != n.next && sd.kubelet != n.files {
				t.Errorf("the kubelet runs with %q, the node holds %q", sd.kubelet, n.files)
			}
		})
	}
}

func TestParseMode(t *testing.T) {
	for _, s := range []string{"install", "uninstall", "dry-run"} {
		if m, err := ParseMode(s); err != nil || string(m) != s {
			t.Errorf("ParseMode(%q) = %q, %v", s, m, err)
		}
	}
	for _, s := range []string{"", "Install", "remove"} {
		if _, err := ParseMode(s); err == nil || !strings.Contains(err.Error(), "install, uninstall or dry-run") {
			t.Errorf("ParseMode(%q) error %v does not list the modes", s, err)
		}
	}
}
