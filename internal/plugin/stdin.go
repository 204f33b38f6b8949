package plugin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/kubecred/ecr-credential-provider/internal/protocol"
)

// ErrStdinTimeout marks a stdin that gave no complete request in time.
var ErrStdinTimeout = errors.New("no complete request on stdin within --timeout")

// ReadStdin reads a request's bytes from r within timeout. It stops at EOF,
// or as soon as what it read is one complete JSON value, so a stdin that
// stays open after a whole request does not hold the call; a stdin that
// stays open without one ends the call at timeout.
//
// A file (stdin itself) is waited on with select(2) on the calling thread:
// a reading goroutine would cost every call thread handoffs and context
// switches, which on a busy node showed as a third more CPU per cache hit.
// Any other reader, and stdin on Windows, which has no select(2) for it,
// is read by a goroutine that is abandoned on a timeout; the caller exits
// soon after anyway.
func ReadStdin(r io.Reader, timeout time.Duration) ([]byte, error) {
	deadline := time.Now().Add(timeout)
	timedOut := fmt.Errorf("%w %v: the kubelet writes one and closes stdin", ErrStdinTimeout, timeout)
	if f, ok := r.(*os.File); ok {
		if wr := fileReader(f, deadline, timedOut); wr != nil {
			return readRequest(wr)
		}
	}
	type result struct {
		data []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		data, err := readRequest(r)
		done <- result{data, err}
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case res := <-done:
		return res.data, res.err
	case <-timer.C:
		return nil, timedOut
	}
}

func readRequest(r io.Reader) ([]byte, error) {
	var data []byte
	buf := make([]byte, 4<<10)
	for {
		n, err := r.Read(buf)
		data = append(data, buf[:n]...)
		if len(data) > protocol.MaxRequestBytes {
			return data, fmt.Errorf("request on stdin is larger than %d bytes", protocol.MaxRequestBytes)
		}
		if err == io.EOF {
			return data, nil
		}
		if errors.Is(err, ErrStdinTimeout) {
			return data, err
		}
		if err != nil {
			return data, fmt.Errorf("reading the request from stdin: %w", err)
		}
		// Only a read ending in '}' can complete an object: checking just
		// those keeps a large request from being scanned once per read.
		if trimmed := bytes.TrimRight(data, " \t\r\n"); n > 0 && len(trimmed) > 0 && trimmed[len(trimmed)-1] == '}' && json.Valid(data) {
			return data, nil
		}
	}
}
