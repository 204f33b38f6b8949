package cache

import (
	"context"
	"errors"
	"os"
)

// Unavailable says why there is no disk cache here: the cache's single
// flight and its refusal of planted symlinks and foreign files rest on
// flock, O_NOFOLLOW and Unix file owners, not ported to Windows (LockFileEx
// and ACLs would be), so every call fetches a token (the kubelet still
// caches responses in memory for their cacheDuration).
const Unavailable = "no disk cache on Windows: every call fetches a token"

// Open always fails on Windows: see Unavailable.
func Open(string) (*Dir, error) { return nil, errors.New(Unavailable) }

func openEntry(string) (*os.File, bool) { return nil, false }

// Lock is never held on Windows.
type Lock struct{}

// Unlock does nothing.
func (*Lock) Unlock() {}

// Lock fails: there is no Dir to lock on Windows.
func (*Dir) Lock(context.Context, string) (*Lock, error) { return nil, ErrUnavailable }
