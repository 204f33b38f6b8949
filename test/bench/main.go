// Command bench measures ecr-credential-provider the way the kubelet runs it:
// a fresh process per call with the request on stdin, against the project's
// AWS emulator on 127.0.0.1, in a clean environment. It builds the binary
// exactly as shipped, runs the scenarios of issue 4, prints wall time, CPU,
// peak RSS and AWS traffic per scenario with PASS or MISS against each
// target, and with -callgrind counts the instructions of a cache hit and of a
// cold call and breaks the cache hit down by package initialisation.
//
// Run it from the repository root:
//
//	go run ./test/bench                 # every scenario, about two minutes
//	go run ./test/bench -only warm,cold -n 500
//	go run ./test/bench -callgrind -json > bench.json
//
// Timings are wall-clock on whatever else the machine is doing; the load
// average is printed with them so a reader can tell.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/kubecred/ecr-credential-provider/internal/buildflags"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type options struct {
	n, hangN  int
	storm     stormOptions
	only      []string
	callgrind bool
	json      bool
	keep      bool
}

// report is everything one run measured; -json prints it as is.
type report struct {
	Date        string  `json:"date"`
	Machine     machine `json:"machine"`
	Command     string  `json:"command"`
	BinaryBytes int64   `json:"binaryBytes"`
	// RSSFloorMiB is the peak RSS of the process that forks the measured
	// ones: no RSS figure can read below it.
	RSSFloorMiB float64          `json:"rssFloorMiB"`
	Scenarios   []*result        `json:"scenarios"`
	Callgrind   *callgrindReport `json:"callgrind,omitempty"`
	Targets     []check          `json:"targets"`
}

type machine struct {
	CPUs       int    `json:"cpus"`
	CPUModel   string `json:"cpuModel"`
	Kernel     string `json:"kernel"`
	Go         string `json:"go"`
	LoadBefore string `json:"loadAvgBefore"`
	LoadAfter  string `json:"loadAvgAfter"`
	GOMAXPROCS int    `json:"gomaxprocs"`
}

// check is one target of the issue and whether this run met it.
type check struct {
	Scenario string `json:"scenario,omitempty"`
	Target   string `json:"target"`
	Got      string `json:"got"`
	Pass     bool   `json:"pass"`
}

func (c check) verdict() string {
	if c.Pass {
		return "PASS"
	}
	return "MISS"
}

func run() error {
	var o options
	var only string
	flag.IntVar(&o.n, "n", 200, "calls for warm and cold; the fault scenarios run n/2 calls, 8-concurrent runs n/10 rounds of 8")
	flag.IntVar(&o.hangN, "hang-n", 2, "calls for hang-cached and hang-nocache, run side by side (each waits out a timeout)")
	flag.StringVar(&only, "only", "", "comma-separated scenarios to run (default all): "+strings.Join(scenarioNames(), ","))
	flag.IntVar(&o.storm.nodes, "storm-nodes", 40, "storm: nodes starting at once")
	flag.IntVar(&o.storm.accounts, "storm-accounts", 5, "storm: accounts (registries) each node pulls from, all in one region")
	flag.Float64Var(&o.storm.rate, "storm-rate", 10, "storm: GetAuthorizationToken token bucket refill, per second")
	flag.IntVar(&o.storm.burst, "storm-burst", 10, "storm: GetAuthorizationToken token bucket size")
	flag.StringVar(&o.storm.upstream, "upstream", "", "storm: path of another ecr-credential-provider binary (upstream's, or an older build) to run the same storm with, side by side")
	flag.BoolVar(&o.callgrind, "callgrind", false, "also count instructions of one warm and one cold call under valgrind --tool=callgrind")
	flag.BoolVar(&o.keep, "keep", false, "keep the temp dir (binaries, callgrind.out.* files) and print its path")
	flag.BoolVar(&o.json, "json", false, "print the report as JSON on stdout (progress still goes to stderr)")
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see -h)", flag.Arg(0))
	}
	if o.n < 2 || o.hangN < 1 {
		return fmt.Errorf("-n must be at least 2 and -hang-n at least 1")
	}
	for _, s := range strings.Split(only, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if !slices.Contains(scenarioNames(), s) {
			return fmt.Errorf("-only: no scenario %q (have %s)", s, strings.Join(scenarioNames(), ", "))
		}
		o.only = append(o.only, s)
	}

	root, err := moduleRoot()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "ecp-bench-")
	if err != nil {
		return err
	}
	if o.keep {
		progress("keeping %s", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}

	rep := &report{
		Date:    time.Now().Format("2006-01-02"),
		Machine: describeMachine(),
		Command: "go run ./test/bench " + strings.Join(os.Args[1:], " "),
	}
	b := &bench{root: root, tmp: tmp}
	progress("building ecr-credential-provider as shipped (CGO_ENABLED=0 go build %s)", strings.Join(shippedFlags, " "))
	b.bin, err = b.build("./cmd/ecr-credential-provider", "ecr-credential-provider", shippedFlags...)
	if err != nil {
		return err
	}
	fi, err := os.Stat(b.bin)
	if err != nil {
		return err
	}
	rep.BinaryBytes = fi.Size()
	if err := b.startSpawner(); err != nil {
		return err
	}
	defer b.stopSpawner()
	progress("binary: %d bytes (%.1f MB)", fi.Size(), float64(fi.Size())/1e6)
	rep.Targets = append(rep.Targets, check{Target: "binary <= 12 MB", Got: fmt.Sprintf("%.1f MB", float64(fi.Size())/1e6), Pass: fi.Size() <= 12e6})

	peakRSS := 0.0
	for _, s := range scenarios {
		if len(o.only) > 0 && !slices.Contains(o.only, s.name) {
			continue
		}
		progress("scenario %s: %s", s.name, s.desc)
		r, err := s.run(b, o)
		if err != nil {
			return fmt.Errorf("scenario %s: %w", s.name, err)
		}
		r.Name, r.Desc = s.name, s.desc
		rep.Scenarios = append(rep.Scenarios, r)
		peakRSS = max(peakRSS, r.PeakRSSMiB)
		for _, c := range r.Checks {
			c.Scenario = s.name
			rep.Targets = append(rep.Targets, c)
		}
	}
	if len(rep.Scenarios) > 0 {
		rep.Targets = append(rep.Targets, check{Target: "peak RSS <= 12 MiB (max over the scenarios run)",
			Got: fmt.Sprintf("%.2f MiB", peakRSS), Pass: peakRSS <= 12})
	}
	if o.callgrind {
		cg, err := b.callgrind()
		if err != nil {
			return fmt.Errorf("callgrind: %w", err)
		}
		rep.Callgrind = cg
		rep.Targets = append(rep.Targets, check{Scenario: "warm", Target: "cache hit <= 2 M instructions",
			Got: fmt.Sprintf("%.2f M", float64(cg.Warm)/1e6), Pass: cg.Warm <= 2e6})
	}
	rep.Machine.LoadAfter = loadAvg()
	rep.RSSFloorMiB = float64(b.rssFloorKiB) / 1024

	if o.json {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printReport(os.Stdout, rep)
	return nil
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "# "+format+"\n", args...)
}

// shippedFlags build the binary as release builds do.
var shippedFlags = buildflags.Plugin()

// build compiles a main package of this module into the temp dir.
func (b *bench) build(pkg, name string, flags ...string) (string, error) {
	out := filepath.Join(b.tmp, name)
	args := append(append([]string{"build"}, flags...), "-o", out, pkg)
	cmd := exec.Command("go", args...)
	cmd.Dir = b.root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build %s: %w", pkg, err)
	}
	return out, nil
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("run the benchmark inside the ecr-credential-provider module (go run ./test/bench)")
	}
	return filepath.Dir(mod), nil
}

func describeMachine() machine {
	m := machine{CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), LoadBefore: loadAvg()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if out, err := exec.Command("go", "env", "GOVERSION").Output(); err == nil {
		m.Go = strings.TrimSpace(string(out))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func printReport(w io.Writer, rep *report) {
	m := rep.Machine
	fmt.Fprintf(w, "date %s; %d CPUs (%s); kernel %s; %s; load average %s before, %s after\n",
		rep.Date, m.CPUs, m.CPUModel, m.Kernel, m.Go, m.LoadBefore, m.LoadAfter)
	fmt.Fprintf(w, "command: %s\n", rep.Command)
	fmt.Fprintf(w, "binary: %d bytes (%.1f MB)\n\n", rep.BinaryBytes, float64(rep.BinaryBytes)/1e6)
	if len(rep.Scenarios) > 0 {
		printTable(w, rep.Scenarios)
		fmt.Fprintf(w, "(rss: rusage Maxrss of each process, which Linux never reports below the forking process's own peak, here %.1f MiB)\n", rep.RSSFloorMiB)
		for _, r := range rep.Scenarios {
			for _, n := range r.Notes {
				fmt.Fprintf(w, "%s: %s\n", r.Name, n)
			}
		}
		fmt.Fprintln(w)
	}
	if rep.Callgrind != nil {
		printCallgrind(w, rep.Callgrind)
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "targets:")
	for _, c := range rep.Targets {
		name := c.Target
		if c.Scenario != "" {
			name = c.Scenario + ": " + name
		}
		fmt.Fprintf(w, "  %-4s  %-76s %s\n", c.verdict(), name, c.Got)
	}
}

func printTable(w io.Writer, rs []*result) {
	fmt.Fprintf(w, "%-14s %6s %9s %9s %9s %8s %8s %8s %9s %8s %8s\n",
		"scenario", "calls", "p50 ms", "p90 ms", "p99 ms", "cpu ms", "(sys)", "rss MiB", "http/call", "GetAuth", "ok %")
	for _, r := range rs {
		gat := fmt.Sprint(r.GetAuthorizationToken)
		if len(r.GetAuthPerRound) > 0 {
			gat = fmt.Sprintf("%d-%d/rnd", slices.Min(r.GetAuthPerRound), slices.Max(r.GetAuthPerRound))
		}
		fmt.Fprintf(w, "%-14s %6d %9s %9s %9s %8.2f %8.2f %8.2f %9.2f %8s %8.1f\n",
			r.Name, r.Calls, ms(r.P50ms), ms(r.P90ms), ms(r.P99ms), r.MeanCPUms, r.MeanSysMs, r.PeakRSSMiB, r.HTTPPerCall, gat, r.SuccessPct)
	}
}

// ms prints milliseconds with three significant-ish digits.
func ms(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%.0f", v)
	case v >= 100:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}
