//go:build unix

package cache_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kubecred/ecr-credential-provider/internal/cache"
)

func entry(key string) cache.Entry {
	now := time.Now().Truncate(time.Second)
	return cache.Entry{Key: key, Registry: "r", Username: "AWS", Password: "pw", FetchedAt: now, ExpiresAt: now.Add(12 * time.Hour)}
}

func TestOpenCreatesPrivateDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "cache")
	if _, err := cache.Open(dir); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("mode %v err %v", fi.Mode(), err)
	}
}

func TestOpenRefusesUnsafeDirs(t *testing.T) {
	base := t.TempDir()
	real := filepath.Join(base, "real")
	os.Mkdir(real, 0o700)
	link := filepath.Join(base, "link")
	os.Symlink(real, link)
	open := filepath.Join(base, "open")
	os.Mkdir(open, 0o755)
	os.Chmod(open, 0o755)
	file := filepath.Join(base, "file")
	os.WriteFile(file, nil, 0o600)
	for name, dir := range map[string]string{"symlink": link, "group/world readable": open, "a file": file} {
		if _, err := cache.Open(dir); err == nil {
			t.Errorf("%s: Open(%s) accepted it", name, dir)
		}
	}
}

func openTemp(t *testing.T) *cache.Dir {
	t.Helper()
	d, err := cache.Open(filepath.Join(t.TempDir(), "cache"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestPutGetRoundTrip(t *testing.T) {
	d := openTemp(t)
	e := entry("k1")
	if err := d.Put(e); err != nil {
		t.Fatal(err)
	}
	got, ok := d.Get("k1")
	if !ok || got.Password != "pw" || !got.ExpiresAt.Equal(e.ExpiresAt) {
		t.Fatalf("got %+v %v", got, ok)
	}
	fi, _ := os.Stat(filepath.Join(d.Path(), "k1.json"))
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("entry mode %v", fi.Mode())
	}
	left, _ := filepath.Glob(filepath.Join(d.Path(), ".tmp-*"))
	if len(left) != 0 {
		t.Fatalf("temp files left behind: %v", left)
	}
}

// Anything suspicious reads as absent, and the next Put replaces it.
func TestGetIgnoresBadEntries(t *testing.T) {
	tests := []struct {
		name  string
		plant func(t *testing.T, dir, path string)
	}{
		{"corrupt json", func(t *testing.T, dir, path string) { os.WriteFile(path, []byte("{not json"), 0o600) }},
		{"truncated", func(t *testing.T, dir, path string) { os.WriteFile(path, []byte(`{"version":1,"key":"k"`), 0o600) }},
		{"foreign key", func(t *testing.T, dir, path string) {
			d, _ := cache.Open(dir)
			e := entry("other")
			d.Put(e)
			os.Rename(filepath.Join(dir, "other.json"), path)
		}},
		{"world readable", func(t *testing.T, dir, path string) {
			d, _ := cache.Open(dir)
			d.Put(entry("k"))
			os.Chmod(path, 0o644)
		}},
		{"symlink to a valid entry", func(t *testing.T, dir, path string) {
			d, _ := cache.Open(dir)
			e := entry("k")
			d.Put(e)
			os.Rename(path, filepath.Join(dir, "elsewhere"))
			os.Symlink(filepath.Join(dir, "elsewhere"), path)
		}},
		{"fifo", func(t *testing.T, dir, path string) {
			if err := mkfifo(path); err != nil {
				t.Skip(err)
			}
		}},
		{"expiry before fetch", func(t *testing.T, dir, path string) {
			d, _ := cache.Open(dir)
			e := entry("k")
			e.ExpiresAt = e.FetchedAt.Add(-time.Hour)
			d.Put(e)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			os.Chmod(dir, 0o700)
			path := filepath.Join(dir, "k.json")
			tt.plant(t, dir, path)
			d, err := cache.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			if e, ok := d.Get("k"); ok {
				t.Fatalf("bad entry accepted: %+v", e)
			}
			if err := d.Put(entry("k")); err != nil {
				t.Fatal(err)
			}
			if _, ok := d.Get("k"); !ok {
				t.Fatal("entry not replaced")
			}
			if fi, err := os.Lstat(path); err != nil || !fi.Mode().IsRegular() {
				t.Fatalf("entry is not a regular file after Put: %v", err)
			}
		})
	}
}

func TestFreshAndValid(t *testing.T) {
	e := entry("k")
	tests := []struct {
		at           time.Duration
		fresh, valid bool
	}{
		{0, true, true},
		{5 * time.Hour, true, true},
		{6*time.Hour + time.Second, false, true},
		{11 * time.Hour, false, true},
		{12 * time.Hour, false, false},
	}
	for _, tt := range tests {
		now := e.FetchedAt.Add(tt.at)
		if e.Fresh(now) != tt.fresh || e.Valid(now) != tt.valid {
			t.Errorf("at +%v: fresh=%v valid=%v, want %v %v", tt.at, e.Fresh(now), e.Valid(now), tt.fresh, tt.valid)
		}
	}
}

func TestLockExcludesAndWaitsForContext(t *testing.T) {
	d := openTemp(t)
	l, err := d.Lock(context.Background(), "k")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := d.Lock(ctx, "k"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second lock: %v, want deadline exceeded", err)
	}
	other, err := d.Lock(context.Background(), "other-key")
	if err != nil {
		t.Fatalf("locks are not per key: %v", err)
	}
	other.Unlock()
	l.Unlock()
	l2, err := d.Lock(context.Background(), "k")
	if err != nil {
		t.Fatalf("lock not released: %v", err)
	}
	l2.Unlock()
}

func TestKeyIsStableAndHidesParts(t *testing.T) {
	a := cache.Key("profile=prod", "us-east-1")
	if a != cache.Key("profile=prod", "us-east-1") {
		t.Fatal("unstable")
	}
	if a == cache.Key("profile=pro", "dus-east-1") {
		t.Fatal("parts are not separated")
	}
	if len(a) != 40 {
		t.Fatalf("key %q", a)
	}
}
