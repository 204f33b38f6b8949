package plugin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/kubecred/ecr-credential-provider/internal/protocol"
)

// ReadStdin reads a request's bytes from r within timeout. It stops at EOF,
// or as soon as what it read is one complete JSON value, so a stdin that
// stays open after a whole request does not hold the call; a stdin that
// stays open without one ends the call at timeout. On a timeout the reading
// goroutine stays blocked; the caller exits soon after anyway.
func ReadStdin(r io.Reader, timeout time.Duration) ([]byte, error) {
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
		return nil, fmt.Errorf("no complete request on stdin within --timeout %v: the kubelet writes one and closes stdin", timeout)
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
