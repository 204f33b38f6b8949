// Package fastpath answers the kubelet from the node's disk cache while the
// process is still starting, before aws-sdk-go-v2's packages initialize.
//
// Go initializes every linked package before main runs, and the SDK's
// service packages build their endpoint regexps and operation schemas then:
// about 4.8 M instructions per process, three quarters of what a cache hit
// used to cost, spent on clients a hit never builds. Since Go 1.21
// the spec fixes the order: packages are sorted by import path and, at each
// step, the first one whose imports are all initialized goes next. This
// package imports nothing of the SDK, and its imports are all initialized
// before the SDK's service packages become ready, so its init runs ahead of
// theirs. That holds only while the cache-hit path (this package, plugin,
// cache, protocol, ecrhost, imageref) keeps to early-initialized imports: regexp and
// path/filepath, for two, come too late. The binary's tests check the order
// on every build.
//
// A hit is answered here and the process exits. Anything else (a subcommand,
// a miss, a per-pod request, a bad request, debug logging) returns, and main
// runs the full plugin with the request bytes this package already read; see
// Stdin.
package fastpath

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/kubecred/ecr-credential-provider/internal/plugin"
	"github.com/kubecred/ecr-credential-provider/internal/protocol"
)

// consumed is what init read of stdin when it could not answer.
var consumed []byte

func init() {
	code, done, data := Answer(os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	if done {
		os.Exit(code)
	}
	consumed = data
}

// Stdin returns the process's stdin as main should read it: the bytes init
// already consumed, then whatever is left.
func Stdin() io.Reader {
	if consumed == nil {
		return os.Stdin
	}
	return io.MultiReader(bytes.NewReader(consumed), os.Stdin)
}

// Answer answers a plugin call from the disk cache alone. It reports done
// with the exit code when it wrote the response; otherwise it returns what
// it read of stdin (nil if nothing) for the full plugin to read again, and
// has written nothing.
func Answer(args []string, getenv func(string) string, stdin *os.File, stdout, stderr io.Writer) (code int, done bool, read []byte) {
	// A command line that is not a plugin call is the full CLI's to report.
	// Debug logging wants the full path's account of the hit.
	flags, err := plugin.ParseFlags(args, getenv, io.Discard)
	if err != nil || flags.Verbosity >= 2 || flags.NoCache || flags.CacheDir == "" || stdin == nil {
		return 0, false, nil
	}
	// A person typing at a terminal wants the full path's prompt first.
	if fi, err := stdin.Stat(); err != nil || fi.Mode()&os.ModeCharDevice != 0 {
		return 0, false, nil
	}
	data, err := plugin.ReadStdin(stdin, flags.Timeout)
	if errors.Is(err, plugin.ErrStdinTimeout) {
		// Stdin never delivered a request within the deadline: nothing was
		// written, and the full path could only wait again.
		fmt.Fprintf(stderr, "ecr-credential-provider: %v\n", err)
		return 1, true, nil
	}
	if data == nil {
		data = []byte{}
	}
	if err != nil {
		return 0, false, data
	}
	req, err := protocol.DecodeRequest(data)
	if err != nil {
		return 0, false, data
	}
	dir, err := flags.OpenCache()
	if err != nil {
		return 0, false, data
	}
	cfg := flags.Config(getenv)
	cfg.Cache = dir
	if cfg.RegistryMap, err = flags.Map(getenv); err != nil {
		return 0, false, data
	}
	resp, ok := plugin.Cached(cfg, req)
	if !ok {
		return 0, false, data
	}
	// Past this point stdout may hold part of a response, so there is no
	// falling back: fail as the full path would.
	if err := resp.Encode(stdout); err != nil {
		fmt.Fprintf(stderr, "ecr-credential-provider: writing the response: %v\n", err)
		return 1, true, nil
	}
	return 0, true, nil
}
