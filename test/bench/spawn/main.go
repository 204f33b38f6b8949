//go:build unix

// Command spawn starts the processes the benchmark measures and reports
// what each cost. It exists because Linux carries the forking process's
// resident-set high-water mark into the child at exec, so a child's rusage
// Maxrss can never read less than its parent's: the harness, which holds
// the AWS emulator, would add its own 10 MiB to every figure. This process
// stays at a couple of MiB and reports that floor with every answer.
//
// It speaks spawnproto on stdin and stdout.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kubecred/ecr-credential-provider/test/bench/internal/spawnproto"
)

func main() {
	// Collect often: the fewer pages this process ever touches, the lower
	// the floor under its children's figures.
	debug.SetGCPercent(10)
	dec := json.NewDecoder(os.Stdin)
	enc := json.NewEncoder(os.Stdout)
	for {
		var calls []spawnproto.Call
		if err := dec.Decode(&calls); err != nil {
			if errors.Is(err, io.EOF) {
				return
			}
			os.Stderr.WriteString("spawn: " + err.Error() + "\n")
			os.Exit(1)
		}
		r := spawnproto.Reply{Outcomes: make([]spawnproto.Outcome, len(calls))}
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, c := range calls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				r.Outcomes[i] = run(c)
			}()
		}
		close(start)
		wg.Wait()
		r.SelfMaxRSSKiB = highWaterKiB()
		if err := enc.Encode(r); err != nil {
			os.Exit(1)
		}
	}
}

// highWaterKiB is this process's own peak RSS, the floor of its children's
// Maxrss. Not getrusage(RUSAGE_SELF): that too carries the harness's peak,
// which this process inherited at its own exec.
func highWaterKiB() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

func run(c spawnproto.Call) spawnproto.Outcome {
	cmd := exec.Command(c.Path)
	cmd.Env = c.Env
	cmd.Stdin = strings.NewReader(c.Stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	o := spawnproto.Outcome{WallNs: int64(time.Since(start)), Stdout: stdout.String(), Stderr: stderr.String()}
	if ee := (*exec.ExitError)(nil); err != nil && !errors.As(err, &ee) {
		o.Err = err.Error()
		return o
	}
	ps := cmd.ProcessState
	o.Code = ps.ExitCode()
	o.UserNs, o.SysNs = int64(ps.UserTime()), int64(ps.SystemTime())
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		o.MaxRSSKiB = ru.Maxrss // KiB on Linux
	}
	return o
}
