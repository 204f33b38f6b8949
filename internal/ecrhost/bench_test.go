//go:build linux

package ecrhost_test

import (
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/kubecred/ecr-credential-provider/internal/ecrhost"
)

// The plugin parses the kubelet's image on every call, cache hits
// included: these measure that cost for the names the kubelet sends.
var benchImages = []struct{ name, image string }{
	{"private", "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app"},
	{"digest", "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
	{"public", "public.ecr.aws/nginx/nginx"},
	{"dockerhub", "docker.io/library/nginx"},
}

// BenchmarkParse measures HostOf (the host alone) and Parse (the host and
// what it says about the registry).
func BenchmarkParse(b *testing.B) {
	funcs := []struct {
		name string
		f    func(string) error
	}{
		{"HostOf", func(s string) error { _, err := ecrhost.HostOf(s); return err }},
		{"Parse", func(s string) error { _, err := ecrhost.Parse(s); return err }},
	}
	for _, fn := range funcs {
		for _, bi := range benchImages {
			b.Run(fn.name+"/"+bi.name, func(b *testing.B) {
				b.ReportAllocs()
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				start := threadCPU(b)
				for b.Loop() {
					if err := fn.f(bi.image); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(threadCPU(b)-start)/float64(b.N), "cpu-ns/op")
			})
		}
	}
}

// threadCPU is the CPU time this thread has used. On a shared machine
// ns/op counts the time other processes ran too; cpu-ns/op does not.
func threadCPU(b *testing.B) time.Duration {
	const rusageThread = 1 // RUSAGE_THREAD, Linux
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
