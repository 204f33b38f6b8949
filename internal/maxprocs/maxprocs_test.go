package maxprocs_test

import (
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"

	_ "github.com/kubecred/ecr-credential-provider/internal/maxprocs"
)

// TestChild reports the child's GOMAXPROCS when run by TestGOMAXPROCS.
func TestChild(t *testing.T) {
	if os.Getenv("MAXPROCS_CHILD") == "" {
		t.Skip("run by TestGOMAXPROCS")
	}
	os.Stdout.WriteString("gomaxprocs=" + strconv.Itoa(runtime.GOMAXPROCS(0)) + "\n")
}

func TestGOMAXPROCS(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("one CPU: GOMAXPROCS is 1 either way")
	}
	for _, tt := range []struct {
		name, env, want string
	}{
		{"unset: one P", "", "1"},
		{"the operator's setting wins", "GOMAXPROCS=2", "2"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// -test.cpu would set GOMAXPROCS itself, so run a fresh process
			// with a clean GOMAXPROCS and only this package's init.
			cmd := exec.Command(os.Args[0], "-test.run=^TestChild$", "-test.v")
			var env []string
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, "GOMAXPROCS=") {
					env = append(env, kv)
				}
			}
			cmd.Env = append(env, "MAXPROCS_CHILD=1")
			if tt.env != "" {
				cmd.Env = append(cmd.Env, tt.env)
			}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			if !strings.Contains(string(out), "gomaxprocs="+tt.want+"\n") {
				t.Fatalf("want GOMAXPROCS %s, child said:\n%s", tt.want, out)
			}
		})
	}
}
