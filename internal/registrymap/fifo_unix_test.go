//go:build unix

package registrymap

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestReadFileRefusesFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// A FIFO with no writer would block a plain open forever.
	if _, err := ReadFile(fifo); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("ReadFile(fifo) = %v; want 'not a regular file'", err)
	}
}
