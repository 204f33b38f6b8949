package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// proc is a process the harness started in a process group of its own, so
// stopping it reaches its children too and never anything else.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string // combined stdout and stderr
	done chan struct{}
	err  error
}

// startProc starts argv with env (nil: a minimal one), output to logPath.
// The process gets SIGKILL if the test process dies first.
func startProc(t *testing.T, name, logPath string, env []string, argv ...string) *proc {
	t.Helper()
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	defer f.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	if env == nil {
		env = baseEnv()
	}
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.stop() })
	return p
}

// baseEnv is the environment of every process the harness starts: nothing
// of the caller's (no AWS_* that could reach the plugin), only a PATH.
func baseEnv() []string {
	return []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/nonexistent"}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process group, then SIGKILL after a grace
// period, and waits for the leader.
func (p *proc) stop() {
	if p.exited() {
		return
	}
	syscall.Kill(-p.pid(), syscall.SIGTERM) //nolint:errcheck // the group may be gone already
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-p.pid(), syscall.SIGKILL) //nolint:errcheck
		<-p.done
	}
	// Members that ignored SIGTERM outlive the leader: make sure they go.
	syscall.Kill(-p.pid(), syscall.SIGKILL) //nolint:errcheck
}

// logTail returns the last n lines of the process's log.
func (p *proc) logTail(n int) string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return tail(string(b), n)
}

func (p *proc) logText() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitFor polls cond until it returns true or timeout passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// shortTempDir is a temporary directory with a short path: containerd's
// sockets live under it and unix socket paths are limited to 108 bytes,
// which t.TempDir's long names overrun.
func shortTempDir(t *testing.T, prefix string) string {
	t.Helper()
	d, err := ownedTempDir(prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(d); err != nil {
			t.Errorf("removing %s: %v", d, err)
		}
	})
	return d
}

// ownerFile in each of the harness's temporary directories holds the PID
// of the test process that made it, so a later run can tell the
// leftovers of a killed run from the directories of a live one.
const ownerFile = ".e2e-owner"

// ownedTempDir makes a temporary directory (under os.TempDir) marked as
// this process's.
func ownedTempDir(prefix string) (string, error) {
	d, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", err
	}
	return d, os.WriteFile(filepath.Join(d, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644)
}

// sweepStale removes what a killed earlier run left: its temporary
// directories and the empty cgroups of its containers (their IDs are the
// task directories in the node's containerd state). Processes and mounts
// need no sweeping: they died with the node's namespaces.
func sweepStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "e2e-*-*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, ownerFile))
		if err != nil {
			continue // not ours, or still being set up
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); err == nil || err == syscall.EPERM {
			continue // its run is still going
		}
		ids := map[string]bool{}
		tasks, _ := os.ReadDir(filepath.Join(d, "state", "io.containerd.runtime.v2.task", "k8s.io"))
		for _, task := range tasks {
			ids[task.Name()] = true
		}
		if strings.HasPrefix(filepath.Base(d), "e2e-node-") {
			removeNewCgroups(map[string]bool{}, 3, ids, "k8s.io")
		}
		os.RemoveAll(d)
	}
}

// cgroupDirs lists the directories under /sys/fs/cgroup down to depth
// levels, so the harness can remove exactly the cgroups its containers
// left behind (runc deletes them when a task is deleted, but not when the
// node is killed mid-way).
func cgroupDirs(depth int) map[string]bool {
	out := map[string]bool{}
	var walk func(dir string, d int)
	walk = func(dir string, d int) {
		if d > depth {
			return
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			return
		}
		for _, e := range entries {
			if e.IsDir() {
				p := filepath.Join(dir, e.Name())
				out[p] = true
				walk(p, d+1)
			}
		}
	}
	walk("/sys/fs/cgroup", 0)
	return out
}

// removeNewCgroups removes the cgroups runc made for our containers and
// that are still there (runc deletes them when a task is deleted, but not
// when a node is killed mid-way): directories that were not in before and
// are named after one of ids, then the shared parent if it is new and now
// empty. rmdir only succeeds on empty cgroups, so nothing in use goes.
func removeNewCgroups(before map[string]bool, depth int, ids map[string]bool, parent string) []string {
	var ours, parents []string
	for p := range cgroupDirs(depth) {
		switch {
		case before[p]:
		case ids[filepath.Base(p)]:
			ours = append(ours, p)
		case filepath.Base(p) == parent:
			parents = append(parents, p)
		}
	}
	var failed []string
	for _, p := range ours {
		if err := syscall.Rmdir(p); err != nil && !os.IsNotExist(err) {
			failed = append(failed, fmt.Sprintf("%s: %v", p, err))
		}
	}
	for _, p := range parents {
		syscall.Rmdir(p) //nolint:errcheck // still in use by a concurrent run: theirs to remove
	}
	return failed
}
