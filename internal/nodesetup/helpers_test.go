package nodesetup

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// fakeBinary is what the tests install: it has a NUL, like any executable.
const fakeBinary = "\x7fELF\x02\x01\x01\x00 fake ecr-credential-provider v1\n"

func writeBinary(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ecr-credential-provider")
	if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// nodeRoot copies testdata/fixtures/NAME into a temporary root, the way
// the files sit on a real node: directories 0755, files 0644 (0755 in bin
// directories), plus the symlinks listed in NAME.symlinks ("link target").
func nodeRoot(t *testing.T, fixture string) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "root")
	src := filepath.Join("testdata", "fixtures", fixture)
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		dst := filepath.Join(root, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		mode := fs.FileMode(0o644)
		if strings.Contains(rel, "bin"+string(filepath.Separator)) || strings.Contains(rel, "image-credential-provider/ecr") {
			mode = 0o755
		}
		if err := os.WriteFile(dst, data, mode); err != nil {
			return err
		}
		return os.Chmod(dst, mode)
	})
	if err != nil {
		t.Fatal(err)
	}
	if f, err := os.Open(src + ".symlinks"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			link, target, _ := strings.Cut(sc.Text(), " ")
			if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}

// entry is one path of a tree as a user would compare it: type, mode and
// content (or link target).
type entry struct {
	Mode fs.FileMode
	Data string
}

func snapshot(t *testing.T, root string) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		e := entry{Mode: fi.Mode()}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			e.Data, err = os.Readlink(p)
		case fi.Mode().IsRegular():
			var b []byte
			b, err = os.ReadFile(p)
			e.Data = string(b)
		}
		out["/"+filepath.ToSlash(rel)] = e
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// treeDiff lists how two snapshots differ, one line a path.
func treeDiff(a, b map[string]entry) []string {
	var out []string
	for p, ea := range a {
		eb, ok := b[p]
		switch {
		case !ok:
			out = append(out, "removed "+p)
		case ea.Mode != eb.Mode:
			out = append(out, fmt.Sprintf("mode of %s: %v -> %v", p, ea.Mode, eb.Mode))
		case ea.Data != eb.Data:
			out = append(out, "content of "+p+" changed")
		}
	}
	for p := range b {
		if _, ok := a[p]; !ok {
			out = append(out, "added "+p)
		}
	}
	sort.Strings(out)
	return out
}

func assertTree(t *testing.T, what string, want, got map[string]entry) {
	t.Helper()
	if d := treeDiff(want, got); len(d) > 0 {
		t.Errorf("%s: tree differs:\n  %s", what, strings.Join(d, "\n  "))
	}
}

// changedFiles renders the files that differ between two snapshots, for a
// golden file. The install record's uid/gid depend on who runs the test,
// so they are zeroed.
func changedFiles(before, after map[string]entry) string {
	var paths []string
	for p, e := range after {
		if b, ok := before[p]; !ok || b != e {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	var b strings.Builder
	for _, p := range paths {
		e := after[p]
		switch {
		case e.Mode.IsDir():
			fmt.Fprintf(&b, "=== %s/ (%v)\n", p, e.Mode)
		case strings.ContainsRune(e.Data, 0):
			fmt.Fprintf(&b, "=== %s (%v, binary, %d bytes, sha256 %s)\n", p, e.Mode, len(e.Data), sum([]byte(e.Data))[:16])
		default:
			data := e.Data
			if path.Base(p) == "install-state.json" {
				var m manifest
				if err := json.Unmarshal([]byte(data), &m); err == nil {
					for i := range m.Files {
						m.Files[i].UID, m.Files[i].GID = 0, 0
					}
					data = string(m.encode())
				}
			}
			fmt.Fprintf(&b, "=== %s (%v)\n%s", p, e.Mode, data)
			if !strings.HasSuffix(data, "\n") {
				b.WriteString("\n\\ No newline at end of file\n")
			}
		}
	}
	return b.String()
}

// golden compares got with testdata/golden/NAME, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/nodesetup -update to create it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from the golden file (rerun with -update if the change is intended):\n%s", p, unifiedDiff("golden", "got", want, []byte(got)))
	}
}

// reportText renders a Result the way an operator reads it.
func reportText(r *Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "distro: %s\n", r.Distro)
	for _, a := range r.Actions {
		fmt.Fprintln(&b, a.String(r.DryRun))
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	for _, n := range r.Next {
		fmt.Fprintf(&b, "next: %s\n", n)
	}
	return b.String()
}

// withLock is the tree want plus what any run that took the lock leaves
// for good: the lock file (empty, 0600) and the directories made to hold
// it, which a root without /var/lib lacks.
func withLock(want map[string]entry) map[string]entry {
	out := maps.Clone(want)
	out[LockFile] = entry{Mode: 0o600}
	for d := path.Dir(LockFile); d != "/"; d = path.Dir(d) {
		if _, ok := out[d]; !ok {
			out[d] = entry{Mode: fs.ModeDir | 0o755}
		}
	}
	return out
}
