package checksum_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubecred/ecr-credential-provider/release/internal/checksum"
)

func TestSumsReadBySha256sum(t *testing.T) {
	dir := t.TempDir()
	var files []string
	for name, content := range map[string]string{"b.bin": "bee", "a.bin": "", "c.tar": "sea\n"} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	if _, err := checksum.WriteSidecar(files[0]); err != nil {
		t.Fatal(err)
	}
	if err := checksum.WriteSums(filepath.Join(dir, "SHA256SUMS"), files); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "SHA256SUMS"))
	sums, err := checksum.Parse(string(data))
	if err != nil {
		t.Fatal(err)
	}
	// sha256 of the empty string, known to everyone.
	if sums["a.bin"] != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" || len(sums) != 3 {
		t.Fatalf("sums %v", sums)
	}
	if lines := strings.Split(string(data), "\n"); !strings.HasSuffix(lines[0], "  a.bin") || !strings.HasSuffix(lines[2], "  c.tar") {
		t.Errorf("not sorted by name:\n%s", data)
	}
	for _, f := range []string{"SHA256SUMS", filepath.Base(files[0]) + ".sha256"} {
		cmd := exec.Command("sha256sum", "--strict", "-c", f)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("sha256sum -c %s: %v\n%s", f, err, out)
		}
	}
	// A changed file fails the check, as an operator would see it.
	os.WriteFile(filepath.Join(dir, "b.bin"), []byte("tampered"), 0o644)
	cmd := exec.Command("sha256sum", "-c", "SHA256SUMS")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "b.bin: FAILED") {
		t.Errorf("sha256sum accepted a changed file: %s", out)
	}
}

func TestParseRejects(t *testing.T) {
	const sum = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	for name, data := range map[string]string{
		"one space":    sum + " a\n",
		"short sum":    sum[:10] + "  a\n",
		"no name":      sum + "  \n",
		"not hex":      strings.Repeat("z", 64) + "  a\n",
		"listed twice": sum + "  a\n" + sum + "  a\n",
	} {
		if _, err := checksum.Parse(data); err == nil {
			t.Errorf("%s: accepted %q", name, data)
		}
	}
}
