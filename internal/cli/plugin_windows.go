package cli

import (
	"os"
	"syscall"
)

// openLogFile opens the --log-file with openPathChecked: Windows has no
// O_NOFOLLOW.
func openLogFile(name string) (*os.File, error) { return openPathChecked(name) }

// isTerminal reports whether f is a console: a person typing.
func isTerminal(f *os.File) bool {
	var mode uint32
	return syscall.GetConsoleMode(syscall.Handle(f.Fd()), &mode) == nil
}
