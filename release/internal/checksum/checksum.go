// Package checksum writes and checks the SHA-256 files a release carries,
// in the format sha256sum -c reads.
package checksum

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// File returns the hex SHA-256 of the file at path.
func File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Line is one line of sha256sum's output for the file named name.
func Line(sum, name string) string { return sum + "  " + name + "\n" }

// WriteSidecar writes path.sha256, naming the file by its base name so
// that sha256sum -c works in the directory both were downloaded to.
func WriteSidecar(path string) (sum string, err error) {
	if sum, err = File(path); err != nil {
		return "", err
	}
	return sum, os.WriteFile(path+".sha256", []byte(Line(sum, filepath.Base(path))), 0o644)
}

// WriteSums writes one SHA256SUMS file at path for files, sorted by name.
func WriteSums(path string, files []string) error {
	var lines []string
	for _, f := range files {
		sum, err := File(f)
		if err != nil {
			return err
		}
		lines = append(lines, Line(sum, filepath.Base(f)))
	}
	sort.Slice(lines, func(i, j int) bool { return lines[i][66:] < lines[j][66:] })
	return os.WriteFile(path, []byte(strings.Join(lines, "")), 0o644)
}

// Parse reads sha256sum output into a map from file name to hex sum.
func Parse(data string) (map[string]string, error) {
	sums := map[string]string{}
	for i, line := range strings.Split(strings.TrimSuffix(data, "\n"), "\n") {
		sum, name, ok := strings.Cut(line, "  ")
		if b, err := hex.DecodeString(sum); !ok || err != nil || len(b) != sha256.Size || name == "" {
			return nil, fmt.Errorf("line %d: %q is not 'SHA256  NAME'", i+1, line)
		}
		if _, dup := sums[name]; dup {
			return nil, fmt.Errorf("line %d: %s listed twice", i+1, name)
		}
		sums[name] = sum
	}
	return sums, nil
}
