//go:build unix

package plugin

import (
	"errors"
	"io"
	"os"
	"syscall"
	"time"
)

// fileReader returns a reader of f that waits with select(2).
func fileReader(f *os.File, deadline time.Time, timedOut error) io.Reader {
	return waitingReader{f: f, deadline: deadline, timedOut: timedOut}
}

// waitingReader reads f only once select(2) says a read will not block,
// and fails with timedOut once the deadline passes first.
type waitingReader struct {
	f        *os.File
	deadline time.Time
	timedOut error
}

func (w waitingReader) Read(p []byte) (int, error) {
	fd := int(w.f.Fd())
	for fd < syscall.FD_SETSIZE {
		left := time.Until(w.deadline)
		if left <= 0 {
			return 0, w.timedOut
		}
		var set syscall.FdSet
		set.Bits[fd/64] |= 1 << (uint(fd) % 64)
		tv := syscall.NsecToTimeval(left.Nanoseconds())
		n, err := syscall.Select(fd+1, &set, nil, nil, &tv)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			break // not selectable: read and let the file say
		}
		if n == 0 {
			return 0, w.timedOut
		}
		break
	}
	return w.f.Read(p)
}
