//go:build unix

package cli

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

// openLogFile opens the --log-file for appending without following a
// symlink at its path (root would append to whatever it points at) and
// without blocking on a FIFO, and accepts only a regular file.
func openLogFile(name string) (*os.File, error) {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening --log-file (a symlink is refused): %w", err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("--log-file %s is not a regular file", name)
	}
	return f, nil
}

// isTerminal reports whether f is a terminal: a person typing, who wants a
// prompt. /dev/null is a character device too, but not a terminal.
func isTerminal(f *os.File) bool {
	var t syscall.Termios
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), syscall.TCGETS, uintptr(unsafe.Pointer(&t)))
	return errno == 0
}
