package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// openPathChecked opens the --log-file for appending and accepts only a
// regular file at its path, never a symlink, without O_NOFOLLOW: the path is
// checked before the open (a new file is made only where nothing is) and
// again after it, and what was opened must be the regular file at the path.
// Windows uses it; it builds everywhere so its tests run on Linux.
func openPathChecked(name string) (*os.File, error) {
	flags := os.O_WRONLY | os.O_APPEND
	if before, err := os.Lstat(name); errors.Is(err, fs.ErrNotExist) {
		flags |= os.O_CREATE | os.O_EXCL
	} else if err != nil || !before.Mode().IsRegular() {
		return nil, fmt.Errorf("--log-file %s is not a regular file (a symlink is refused)", name)
	}
	f, err := os.OpenFile(name, flags, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening --log-file (a symlink is refused): %w", err)
	}
	opened, err1 := f.Stat()
	at, err2 := os.Lstat(name)
	if err1 != nil || err2 != nil || !at.Mode().IsRegular() || !os.SameFile(at, opened) {
		f.Close()
		return nil, fmt.Errorf("--log-file %s is not a regular file (a symlink is refused)", name)
	}
	return f, nil
}
