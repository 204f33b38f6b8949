//go:build unix

package cache_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubecred/ecr-credential-provider/internal/cache"
)

// plantAt puts something that is not a regular file at path.
func plantAt(t *testing.T, kind, path string) {
	t.Helper()
	var err error
	switch kind {
	case "directory":
		err = os.Mkdir(path, 0o700)
	case "symlink":
		err = os.Symlink(filepath.Join(filepath.Dir(path), "elsewhere"), path)
	case "dangling symlink to /etc":
		err = os.Symlink("/etc/ecp-test-never-created", path)
	case "fifo":
		err = syscall.Mkfifo(path, 0o600)
	case "socket":
		var l net.Listener
		l, err = net.Listen("unix", path)
		if err == nil {
			t.Cleanup(func() { l.Close() })
		}
	default:
		t.Fatalf("unknown kind %q", kind)
	}
	if err != nil {
		t.Fatalf("planting a %s at %s: %v", kind, path, err)
	}
}

var notRegular = []string{"directory", "symlink", "dangling symlink to /etc", "fifo", "socket"}

// A lock path that is not a regular file makes the lock unavailable, at
// once and saying so: it is not another process holding it.
func TestLockOnNonRegularFileIsUnavailable(t *testing.T) {
	for _, kind := range notRegular {
		t.Run(kind, func(t *testing.T) {
			d := openTemp(t)
			plantAt(t, kind, filepath.Join(d.Path(), "k.lock"))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			l, err := d.Lock(ctx, "k")
			if err == nil {
				l.Unlock()
				t.Fatal("locked through a non-regular file")
			}
			if !errors.Is(err, cache.ErrUnavailable) {
				t.Fatalf("error %v is not ErrUnavailable", err)
			}
			if errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "another") {
				t.Fatalf("error %q blames another process", err)
			}
			if _, err := os.Stat("/etc/ecp-test-never-created"); err == nil {
				t.Fatal("the lock followed a symlink out of the cache")
			}
		})
	}
}

// A temp file left by a writer killed before its rename holds a password:
// the next write sweeps it. A temp file that may still be being written
// stays.
func TestPutSweepsOldTempFiles(t *testing.T) {
	d := openTemp(t)
	old := filepath.Join(d.Path(), ".tmp-deadbeef-12345")
	young := filepath.Join(d.Path(), ".tmp-deadbeef-67890")
	for _, p := range []string{old, young} {
		if err := os.WriteFile(p, []byte(`{"password":"secret"}`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-time.Hour)
	os.Chtimes(old, past, past)
	if err := d.Put(entry("k1")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(old); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("old temp file still there: %v", err)
	}
	if _, err := os.Lstat(young); err != nil {
		t.Errorf("a temp file a live writer may own was removed: %v", err)
	}
}

// Entries and locks of keys no longer used (a token long expired) do not
// pile up.
func TestPutSweepsLongExpiredEntries(t *testing.T) {
	d := openTemp(t)
	e := entry("stale")
	if err := d.Put(e); err != nil {
		t.Fatal(err)
	}
	l, err := d.Lock(context.Background(), "stale")
	if err != nil {
		t.Fatal(err)
	}
	l.Unlock()
	past := time.Now().Add(-72 * time.Hour)
	for _, ext := range []string{".json", ".lock"} {
		os.Chtimes(filepath.Join(d.Path(), "stale"+ext), past, past)
	}
	if err := d.Put(entry("fresh")); err != nil {
		t.Fatal(err)
	}
	names, _ := os.ReadDir(d.Path())
	var got []string
	for _, n := range names {
		got = append(got, n.Name())
	}
	if strings.Contains(strings.Join(got, " "), "stale") {
		t.Fatalf("long-expired entry kept: %v", got)
	}
}

// Every directory above the cache must be safe from other users, as sshd's
// StrictModes requires of ~/.ssh: owned by root or this user, and not
// writable by group or others unless sticky (as /tmp is).
func TestOpenChecksEveryParent(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test chowns directories to another user and must run as root")
	}
	for name, setup := range map[string]func(parent string) error{
		"world-writable parent":        func(p string) error { return os.Chmod(p, 0o777) },
		"group-writable parent":        func(p string) error { return os.Chmod(p, 0o775) },
		"parent owned by another user": func(p string) error { return os.Chown(p, 12345, 12345) },
	} {
		t.Run(name, func(t *testing.T) {
			parent := filepath.Join(t.TempDir(), "p")
			if err := os.Mkdir(parent, 0o755); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(parent, "sub", "cache")
			if _, err := cache.Open(dir); err != nil {
				t.Fatalf("safe path refused: %v", err)
			}
			if err := setup(parent); err != nil {
				t.Fatal(err)
			}
			_, err := cache.Open(dir)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), parent) {
				t.Fatalf("error %q does not name %s", err, parent)
			}
		})
	}
	// A sticky world-writable parent (like /tmp) is fine.
	sticky := filepath.Join(t.TempDir(), "sticky")
	os.Mkdir(sticky, 0o755)
	os.Chmod(sticky, os.ModeSticky|0o777)
	if _, err := cache.Open(filepath.Join(sticky, "cache")); err != nil {
		t.Fatalf("sticky parent refused: %v", err)
	}
}

// An entry whose expiry is implausibly far from when it was fetched, or
// that was fetched in the future, is corrupt and never served.
func TestGetRejectsImplausibleTimes(t *testing.T) {
	d := openTemp(t)
	now := time.Now()
	for name, e := range map[string]cache.Entry{
		"century-long life": {FetchedAt: now, ExpiresAt: now.Add(100 * 365 * 24 * time.Hour)},
		"18h life":          {FetchedAt: now.Add(-time.Hour), ExpiresAt: now.Add(17 * time.Hour)},
		"fetched in future": {FetchedAt: now.Add(3 * time.Hour), ExpiresAt: now.Add(13 * time.Hour)},
	} {
		e.Key, e.Registry, e.Username, e.Password = "k", "r", "AWS", "pw"
		if err := d.Put(e); err != nil {
			t.Fatal(err)
		}
		if _, ok := d.Get("k"); ok {
			t.Errorf("%s: served", name)
		}
	}
}

// A lock taken recently is kept by the sweep, however old its file.
func TestSweepKeepsLocksInUse(t *testing.T) {
	d := openTemp(t)
	lock := filepath.Join(d.Path(), "busy.lock")
	if err := os.WriteFile(lock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-72 * time.Hour)
	os.Chtimes(lock, past, past)
	l, err := d.Lock(context.Background(), "busy")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	if err := d.Put(entry("busy")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(lock); err != nil {
		t.Fatalf("the sweep removed a lock in use: %v", err)
	}
}
