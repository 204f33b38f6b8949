// Package cache keeps ECR tokens on disk so that the many short-lived plugin
// processes on a node share one token per identity and endpoint, and holds
// the per-key file lock that lets only one of them fetch at a time.
//
// Entries are 0600 files in a 0700 directory owned by the running user,
// written with a temp file and rename, opened without following symlinks.
// Anything that fails those checks, or does not parse, or belongs to another
// key, or claims an implausible life, is treated as absent and replaced on
// the next write. Every directory above the cache must be owned by root or
// the running user and not writable by others (unless sticky, as /tmp is),
// as sshd's StrictModes requires of ~/.ssh: otherwise another user could
// swap a parent and plant or read tokens. Writes sweep temp files left by
// killed writers and entries whose tokens expired long ago.
//
// Windows has no disk cache: Open fails there with Unavailable's reason.
package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"
)

// Entry is one cached token and what it is for.
type Entry struct {
	Version   int       `json:"version"`
	Key       string    `json:"key"`
	Registry  string    `json:"registry"`
	Username  string    `json:"username"`
	Password  string    `json:"password"`
	FetchedAt time.Time `json:"fetchedAt"`
	ExpiresAt time.Time `json:"expiresAt"`
	// RetryAt, set after a failed refresh, is when the next refresh may be
	// tried; until then the entry is served as it is.
	RetryAt time.Time `json:"retryAt,omitzero"`
}

const entryVersion = 1

// MaxLife is the longest life a token can have: ECR and ECR Public issue
// 12-hour tokens. An entry claiming longer is corrupt.
const MaxLife = 12 * time.Hour

// futureSlack is how far in the future an entry's fetch time may lie before
// the entry is taken for corrupt (or the clock for stepped back).
const futureSlack = 5 * time.Minute

// Sweep ages: a temp file older than tempMaxAge has no live writer (writes
// take milliseconds), and an entry untouched for staleAge holds a token
// that expired long ago.
const (
	tempMaxAge = time.Minute
	staleAge   = 48 * time.Hour
)

// ErrUnavailable marks a lock that cannot be had for a reason other than
// another process holding it: the lock file cannot be created or opened, or
// is not a regular file. The caller answers without the cache.
var ErrUnavailable = errors.New("the disk cache's lock is unavailable")

// Valid reports whether the token can still be used at now.
func (e Entry) Valid(now time.Time) bool { return now.Before(e.ExpiresAt) }

// RefreshAt is when the entry should be replaced: half-way through its life,
// so a failed refresh still leaves hours of a usable token behind it.
func (e Entry) RefreshAt() time.Time {
	return e.FetchedAt.Add(e.ExpiresAt.Sub(e.FetchedAt) / 2)
}

// BackingOff reports whether the entry is valid but a refresh failed so
// recently that it should be served as it is, without trying AWS again.
func (e Entry) BackingOff(now time.Time) bool { return e.Valid(now) && now.Before(e.RetryAt) }

// Fresh reports whether the entry can be served without trying a refresh.
func (e Entry) Fresh(now time.Time) bool { return e.Valid(now) && now.Before(e.RefreshAt()) }

// Key derives a file-name-safe key from the parts that select an identity
// and an endpoint. The parts are hashed: they may hold a profile name or an
// access key ID, which have no business in a directory listing.
func Key(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:40]
}

// Dir is a cache directory.
type Dir struct {
	path string
}

// Path is the directory's path.
func (d *Dir) Path() string { return d.path }

func (d *Dir) file(key, ext string) (string, error) {
	if key == "" || strings.ContainsAny(key, `/\.`) {
		return "", fmt.Errorf("invalid cache key")
	}
	return path.Join(d.path, key+ext), nil
}

// Get returns the entry for key, or false if there is none usable.
func (d *Dir) Get(key string) (Entry, bool) {
	name, err := d.file(key, ".json")
	if err != nil {
		return Entry{}, false
	}
	f, ok := openEntry(name)
	if !ok {
		return Entry{}, false
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return Entry{}, false
	}
	var e Entry
	if json.Unmarshal(data, &e) != nil || e.Version != entryVersion || e.Key != key ||
		e.Username == "" || e.Password == "" || e.ExpiresAt.IsZero() || !e.FetchedAt.Before(e.ExpiresAt) ||
		e.ExpiresAt.Sub(e.FetchedAt) > MaxLife || e.FetchedAt.After(time.Now().Add(futureSlack)) {
		return Entry{}, false
	}
	return e, true
}

// Put stores e under its key atomically: running readers see the old entry
// or the new one, never a torn write.
func (d *Dir) Put(e Entry) error {
	name, err := d.file(e.Key, ".json")
	if err != nil {
		return err
	}
	e.Version = entryVersion
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(d.path, ".tmp-"+e.Key+"-*")
	if err != nil {
		return fmt.Errorf("writing cache entry: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing cache entry: %w", err)
	}
	// No fsync: it cost 0.75 ms of a 9 ms cold call here, and buys nothing
	// a cache needs. After a crash the entry is the old one, the new one, or
	// empty or torn, which Get rejects, costing one token fetch.
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing cache entry: %w", err)
	}
	// rename replaces a symlink planted at name rather than following it.
	if err := os.Rename(tmp.Name(), name); err != nil {
		return fmt.Errorf("writing cache entry: %w", err)
	}
	d.sweep()
	return nil
}

// sweep removes what no live process needs: temp files of writers killed
// before their rename (each holds a password), and entries and locks not
// touched for staleAge. Removing a lock file races only with a process that
// opens it in the same instant, which then fetches once more; it cannot
// serve a wrong token. Errors are ignored: the sweep is housekeeping.
func (d *Dir) sweep() {
	f, err := os.Open(d.path)
	if err != nil {
		return
	}
	names, _ := f.Readdirnames(-1)
	f.Close()
	now := time.Now()
	for _, n := range names {
		maxAge := staleAge
		switch {
		case strings.HasPrefix(n, ".tmp-"):
			maxAge = tempMaxAge
		case strings.HasSuffix(n, ".json"), strings.HasSuffix(n, ".lock"):
		default:
			continue
		}
		p := path.Join(d.path, n)
		if fi, err := os.Lstat(p); err == nil && now.Sub(fi.ModTime()) > maxAge {
			os.Remove(p)
		}
	}
}
