package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// openPathChecked is the Windows --log-file open; these cases run it here.
func TestOpenPathCheckedRefusesAllButARegularFile(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("keep\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	existing := filepath.Join(dir, "existing.log")
	if err := os.WriteFile(existing, []byte("old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.log")
	dangling := filepath.Join(dir, "dangling.log")
	for from, to := range map[string]string{link: target, dangling: filepath.Join(dir, "made-through-link")} {
		if err := os.Symlink(to, from); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name, path string
		ok         bool
	}{
		{"a new file", filepath.Join(dir, "new.log"), true},
		{"an existing file", existing, true},
		{"a symlink to a file", link, false},
		{"a dangling symlink", dangling, false},
		{"a directory", dir, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := openPathChecked(tc.path)
			if !tc.ok {
				if err == nil {
					f.Close()
					t.Fatalf("opened %s", tc.path)
				}
				if !strings.Contains(err.Error(), "regular file") && !strings.Contains(err.Error(), "symlink") {
					t.Errorf("error %q does not say what is wrong", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteString("line\n"); err != nil {
				t.Fatal(err)
			}
			f.Close()
		})
	}
	if b, _ := os.ReadFile(existing); string(b) != "old\nline\n" {
		t.Errorf("existing log holds %q, want the old line and the appended one", b)
	}
	if b, _ := os.ReadFile(target); string(b) != "keep\n" {
		t.Errorf("the symlink's target was written: %q", b)
	}
	if _, err := os.Lstat(filepath.Join(dir, "made-through-link")); err == nil {
		t.Error("a file was created through the dangling symlink")
	}
	if fi, err := os.Stat(filepath.Join(dir, "new.log")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("new log: %v, mode %v; want 0600", err, fi)
	}
}
