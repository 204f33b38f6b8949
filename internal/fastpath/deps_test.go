package fastpath_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// allowedDeps is everything the cache-hit path may link, besides the
// standard library's internal packages. Package fastpath's init must run
// before the AWS SDK's service packages initialize, which holds only while
// every package it depends on initializes early; regexp and path/filepath,
// for two, come too late (the init-order test in cmd/ecr-credential-provider
// measures it). Add a package here only after that test passes with it.
var allowedDeps = []string{
	// This module: the cache-hit path and nothing else.
	"github.com/kubecred/ecr-credential-provider/internal/arn",
	"github.com/kubecred/ecr-credential-provider/internal/cache",
	"github.com/kubecred/ecr-credential-provider/internal/ecrhost",
	"github.com/kubecred/ecr-credential-provider/internal/fastpath",
	"github.com/kubecred/ecr-credential-provider/internal/imageref",
	"github.com/kubecred/ecr-credential-provider/internal/plugin",
	"github.com/kubecred/ecr-credential-provider/internal/protocol",
	"github.com/kubecred/ecr-credential-provider/internal/registrymap",
	// The standard library.
	"bytes", "cmp", "context", "crypto", "crypto/cipher", "crypto/fips140", "crypto/sha256", "crypto/subtle",
	"encoding", "encoding/base64", "encoding/hex", "encoding/json", "errors", "flag", "fmt", "hash",
	"io", "io/fs", "iter", "log", "log/slog", "math", "math/bits", "os", "path", "reflect", "runtime",
	"slices", "strconv", "strings", "sync", "sync/atomic", "syscall", "time", "unicode", "unicode/utf16",
	"unicode/utf8", "unsafe",
}

// TestDependenciesAreAllowed holds package fastpath's import rule in one
// place: its dependency list against allowedDeps.
func TestDependenciesAreAllowed(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	var extra []string
	for _, p := range strings.Fields(string(out)) {
		if stdInternal(p) || slices.Contains(allowedDeps, p) {
			continue
		}
		extra = append(extra, p)
	}
	if len(extra) > 0 {
		t.Errorf("the cache-hit path now links %s: each package it links must initialize before the AWS SDK's "+
			"(see package fastpath's doc); keep it off the path, or check the init-order test in cmd/ecr-credential-provider and add it to allowedDeps",
			strings.Join(extra, ", "))
	}
	if !strings.Contains(string(out), "github.com/kubecred/ecr-credential-provider/internal/plugin\n") {
		t.Errorf("go list -deps printed no dependency list:\n%s", out)
	}
}

// stdInternal reports the standard library's own internal and vendored
// packages, which follow the Go release, not this code.
func stdInternal(p string) bool {
	first, _, _ := strings.Cut(p, "/")
	return !strings.Contains(first, ".") && (first == "internal" || first == "vendor" || strings.Contains(p, "/internal/") || strings.HasSuffix(p, "/internal"))
}
