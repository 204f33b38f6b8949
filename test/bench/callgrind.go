package main

import (
	"bufio"
	"bytes"
	"cmp"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// valgrindGodebug keeps the Go runtime from preempting goroutines with
// signals, which valgrind cannot run through. It costs the instructions of
// internal/godebug's init parsing it, which is why the hello-world floor is
// measured under it too and why that init is reported on its own.
const valgrindGodebug = "GODEBUG=asyncpreemptoff=1"

type callgrindReport struct {
	Godebug string `json:"godebug"`
	// Instructions of whole processes (valgrind's "Collected"), shipped flags.
	Hello   int64 `json:"helloWorld"`
	SDKInit int64 `json:"sdkLinkedOnly"`
	Warm    int64 `json:"cacheHit"`
	Cold    int64 `json:"cold"`
	// A cache hit of the same code built with symbols, split at the entry
	// of every package init function and of main.main. A hit is answered
	// in package fastpath's init, so "answer" runs from there to exit.
	Split        int64     `json:"cacheHitSymbolBuild"`
	StartUp      int64     `json:"cacheHitRuntimeStartUp"`
	Init         int64     `json:"cacheHitPackageInit"`
	InitRegexp   int64     `json:"cacheHitPackageInitRegexp"`
	Answer       int64     `json:"cacheHitAnswer"`
	InitByModule []pkgCost `json:"initByModule"`
	TopInits     []pkgCost `json:"topPackageInits"`
	// Self costs from the answer's start to exit, by package and of our
	// functions.
	AnswerByPackage []cost `json:"answerByPackage"`
	OurFuncs        []cost `json:"ourFunctionsInAnswer"`
}

// pkgCost is the init cost of a package or module; Regexp is the part spent
// from entering regexp.Compile or MustCompile to the next init function.
type pkgCost struct {
	Name   string `json:"name"`
	Ir     int64  `json:"instructions"`
	Regexp int64  `json:"regexpInstructions"`
}

type cost struct {
	Name string `json:"name"`
	Ir   int64  `json:"instructions"`
}

func (b *bench) callgrind() (*callgrindReport, error) {
	if _, err := exec.LookPath("valgrind"); err != nil {
		return nil, fmt.Errorf("-callgrind needs valgrind and callgrind_annotate (apt-get install valgrind)")
	}
	progress("callgrind: building hello world, an SDK-only program, and the plugin with symbols")
	hello, err := b.build("./test/bench/hello", "hello", shippedFlags...)
	if err != nil {
		return nil, err
	}
	sdk, err := b.build("./test/bench/sdkinit", "sdkinit", shippedFlags...)
	if err != nil {
		return nil, err
	}
	// The shipped code, with symbols so callgrind can name functions.
	sym, err := b.build("./cmd/ecr-credential-provider", "ecr-credential-provider.sym", "-trimpath")
	if err != nil {
		return nil, err
	}

	n, err := b.newNode(nil)
	if err != nil {
		return nil, err
	}
	defer n.emu.Close()
	_, warmEnv := n.cacheDir()
	if s, err := b.call(warmEnv); err != nil || !gotToken(s) {
		return nil, fmt.Errorf("priming the cache failed: %v %s", err, firstLine(s.stderr))
	}
	_, coldEnv := n.cacheDir()

	cg := &callgrindReport{Godebug: valgrindGodebug}
	runs := []struct {
		what   string
		bin    string
		env    []string
		plugin bool
		dst    *int64
	}{
		{"hello world", hello, n.env, false, &cg.Hello},
		{"SDK linked, nothing run", sdk, n.env, false, &cg.SDKInit},
		{"plugin cache hit", b.bin, warmEnv, true, &cg.Warm},
		{"plugin cold call", b.bin, coldEnv, true, &cg.Cold},
	}
	for i, r := range runs {
		progress("callgrind: %s", r.what)
		out := filepath.Join(b.tmp, fmt.Sprintf("callgrind.out.%d", i))
		if err := b.underCallgrind(r.bin, r.env, out, r.plugin); err != nil {
			return nil, fmt.Errorf("%s: %w", r.what, err)
		}
		if *r.dst, err = totalInstructions(out); err != nil {
			return nil, err
		}
	}

	progress("callgrind: plugin cache hit with symbols, split at each package init")
	dir := filepath.Join(b.tmp, "callgrind-split")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	out := filepath.Join(dir, "callgrind.out")
	if err := b.underCallgrind(sym, warmEnv, out, true, splitTriggers...); err != nil {
		return nil, fmt.Errorf("split cache hit: %w", err)
	}
	if err := cg.split(out); err != nil {
		return nil, err
	}

	return cg, nil
}

// underCallgrind runs bin once under callgrind, writing out. Plugin runs
// must answer with a token, or the count would be of a failure.
func (b *bench) underCallgrind(bin string, env []string, out string, plugin bool, extra ...string) error {
	var last error
	for range 3 { // valgrind occasionally dies on a Go runtime; retry
		args := append([]string{"--tool=callgrind", "--callgrind-out-file=" + out}, extra...)
		cmd := exec.Command("valgrind", append(args, bin)...)
		cmd.Env = append(slices.Clip(env), valgrindGodebug)
		cmd.Stdin = strings.NewReader(request)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if err == nil && plugin && !gotToken(sample{stdout: stdout.String()}) {
			err = fmt.Errorf("no token in the answer %q", stdout.String())
		}
		if err == nil {
			return nil
		}
		last = fmt.Errorf("%w: %s", err, lastLines(stderr.String(), 5))
	}
	return last
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func totalInstructions(file string) (int64, error) {
	total, _, err := readDump(file)
	return total, err
}

// readDump returns a callgrind output file's total and the function whose
// entry triggered the dump ("" at program termination).
func readDump(file string) (total int64, trigger string, err error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	found := false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "desc: Trigger: --dump-before="); ok {
			trigger = v
		}
		if v, ok := strings.CutPrefix(line, "totals: "); ok {
			total, err = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			found = err == nil
		}
	}
	if !found {
		return 0, "", fmt.Errorf("%s: no totals line", file)
	}
	return total, trigger, sc.Err()
}

// splitTriggers make callgrind write a dump on entering every function
// named like an init, regexp.Compile or MustCompile, and main.main. Each dump
// holds exactly the instructions run since the previous one, whatever the
// call stack: callgrind_annotate --inclusive=yes can't be used for this,
// as it loses track of calls when the Go runtime grows a goroutine stack
// (morestack copies it) and counts deep recursions such as regexp's
// compiler many times over, crediting one package init with nearly the
// whole process.
var splitTriggers = []string{"--dump-before=*.init", "--dump-before=*.init.*",
	"--dump-before=regexp.Compile", "--dump-before=regexp.MustCompile", "--dump-before=main.main"}

// initFunc matches the functions the runtime calls to initialise a package
// (var initialisation, init(), map initialisers), not methods named init
// or closures.
var initFunc = regexp.MustCompile(`^[^(]*\.(?:init(?:\.\d+)?|map\.init\.\d+)$`)

// fastpathInit is where a cache hit is answered, before main.main.
const fastpathInit = "github.com/kubecred/ecr-credential-provider/internal/fastpath.init"

// split reads the dumps written with splitTriggers: out.1 ... out.N in
// order, then out itself (the rest up to exit). Instructions between two
// triggers belong to the package whose init was entered last, or to the
// answer once fastpath's init or main.main was entered.
func (cg *callgrindReport) split(out string) error {
	var files []string
	for i := 1; ; i++ {
		f := fmt.Sprintf("%s.%d", out, i)
		if _, err := os.Stat(f); err != nil {
			break
		}
		files = append(files, f)
	}
	files = append(files, out)
	const startUp, answer = "runtime start-up", "answer"
	owner, inRegexp := startUp, false
	byPkg := map[string]*pkgCost{}
	answerFrom := len(files)
	for i, f := range files {
		total, trigger, err := readDump(f)
		if err != nil {
			return err
		}
		cg.Split += total
		switch owner {
		case startUp:
			cg.StartUp += total
		case answer:
			cg.Answer += total
			answerFrom = min(answerFrom, i)
		default:
			p := byPkg[owner]
			if p == nil {
				p = &pkgCost{Name: owner}
				byPkg[owner] = p
			}
			p.Ir += total
			cg.Init += total
			if inRegexp {
				p.Regexp += total
				cg.InitRegexp += total
			}
		}
		switch {
		case owner == answer:
		case trigger == "main.main" || strings.HasPrefix(trigger, fastpathInit):
			owner, inRegexp = answer, false
		case initFunc.MatchString(trigger):
			owner, inRegexp = packageOf(trigger), false
		case strings.HasPrefix(trigger, "regexp.") && owner != startUp:
			inRegexp = true
		}
	}
	if cg.Init == 0 || cg.Answer == 0 {
		return fmt.Errorf("%s: no package init, or neither fastpath's init nor main.main, in the dumps (symbols missing?)", out)
	}
	byModule := map[string]*pkgCost{}
	var pkgs []pkgCost
	for _, p := range byPkg {
		pkgs = append(pkgs, *p)
		m := moduleGroup(p.Name)
		if byModule[m] == nil {
			byModule[m] = &pkgCost{Name: m}
		}
		byModule[m].Ir += p.Ir
		byModule[m].Regexp += p.Regexp
	}
	var mods []pkgCost
	for _, m := range byModule {
		mods = append(mods, *m)
	}
	cg.InitByModule = sortedPkgs(mods, 0)
	cg.TopInits = sortedPkgs(pkgs, 15)

	// Where the answer's share goes, by self cost (inclusive costs are
	// wrong here too).
	self, err := selfCosts(files, answerFrom)
	if err != nil {
		return err
	}
	pkgSelf, ours := map[string]int64{}, map[string]int64{}
	for fn, ir := range self {
		pkgSelf[packageOf(fn)] += ir
		if strings.HasPrefix(fn, "github.com/kubecred/") {
			ours[fn] += ir
		}
	}
	cg.AnswerByPackage, cg.OurFuncs = sortedCosts(pkgSelf, 12), sortedCosts(ours, 10)
	return nil
}

func sortedPkgs(ps []pkgCost, limit int) []pkgCost {
	slices.SortFunc(ps, func(a, b pkgCost) int { return cmp.Or(cmp.Compare(b.Ir, a.Ir), cmp.Compare(a.Name, b.Name)) })
	if limit > 0 && len(ps) > limit {
		ps = ps[:limit]
	}
	return ps
}

// packageOf is the import path of a Go symbol such as
// "github.com/aws/aws-sdk-go-v2/service/ecr/internal/endpoints.init.0".
func packageOf(sym string) string {
	sym, _, _ = strings.Cut(sym, "[") // type arguments name other packages
	slash := strings.LastIndex(sym, "/")
	if dot := strings.Index(sym[slash+1:], "."); dot >= 0 {
		return sym[:slash+1+dot]
	}
	return sym
}

func moduleGroup(pkg string) string {
	first, _, _ := strings.Cut(pkg, "/")
	switch {
	case strings.HasPrefix(pkg, "github.com/kubecred/"):
		return "ours (github.com/kubecred/...)"
	case strings.HasPrefix(pkg, "github.com/aws/aws-sdk-go-v2"):
		return "github.com/aws/aws-sdk-go-v2/..."
	case strings.HasPrefix(pkg, "github.com/aws/smithy-go"):
		return "github.com/aws/smithy-go/..."
	case !strings.Contains(first, "."):
		return "standard library"
	default:
		return "other modules (" + pkg + ")"
	}
}

// selfCosts sums the self cost of each function over the dumps of one run
// from files[from] on, reading the format directly (callgrind_annotate
// takes one file). Earlier dumps are read for the names they define:
// callgrind compresses a name to its id after its first use in the run.
func selfCosts(files []string, from int) (map[string]int64, error) {
	self := map[string]int64{}
	names := map[string]string{} // compressed "(id)" -> name
	for i, file := range files {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		fn, skipNext := "", false
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "fn="):
				id, name, _ := strings.Cut(line[len("fn="):], " ")
				if name != "" {
					names[id] = name
				}
				fn = names[id]
			case strings.HasPrefix(line, "cfn="):
				if id, name, _ := strings.Cut(line[len("cfn="):], " "); name != "" {
					names[id] = name
				}
			case strings.HasPrefix(line, "calls="):
				skipNext = true // the next cost line is the call's inclusive cost
			case line != "" && strings.ContainsRune("0123456789+-*", rune(line[0])):
				if skipNext {
					skipNext = false
					continue
				}
				fields := strings.Fields(line)
				ir, err := strconv.ParseInt(fields[len(fields)-1], 10, 64)
				if err == nil && len(fields) > 1 && i >= from {
					self[fn] += ir
				}
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	return self, nil
}

func sortedCosts(m map[string]int64, limit int) []cost {
	var cs []cost
	for k, v := range m {
		cs = append(cs, cost{k, v})
	}
	slices.SortFunc(cs, func(a, b cost) int { return cmp.Or(cmp.Compare(b.Ir, a.Ir), cmp.Compare(a.Name, b.Name)) })
	return cs[:min(len(cs), limit)]
}

func mi(v int64) string { return fmt.Sprintf("%.2f M", float64(v)/1e6) }

func printCallgrind(w io.Writer, cg *callgrindReport) {
	fmt.Fprintf(w, "instructions under valgrind --tool=callgrind, %s, shipped build:\n", cg.Godebug)
	fmt.Fprintf(w, "  hello world (floor)       %8s\n", mi(cg.Hello))
	fmt.Fprintf(w, "  SDK linked, nothing run   %8s  (+%s over hello world)\n", mi(cg.SDKInit), mi(cg.SDKInit-cg.Hello))
	fmt.Fprintf(w, "  plugin cache hit          %8s\n", mi(cg.Warm))
	fmt.Fprintf(w, "  plugin cold call          %8s\n", mi(cg.Cold))
	fmt.Fprintf(w, "cache hit split by phase (build with symbols, %s):\n", mi(cg.Split))
	fmt.Fprintf(w, "  runtime start-up          %8s\n", mi(cg.StartUp))
	fmt.Fprintf(w, "  package init              %8s  (%s of it from a regexp compile to the next init)\n", mi(cg.Init), mi(cg.InitRegexp))
	fmt.Fprintf(w, "  answer to exit            %8s  (from fastpath's init, or main.main on a miss)\n", mi(cg.Answer))
	fmt.Fprintln(w, "package init by module (instructions, of which regexp):")
	for _, c := range cg.InitByModule {
		fmt.Fprintf(w, "  %8s %8s  %s\n", mi(c.Ir), mi(c.Regexp), c.Name)
	}
	fmt.Fprintln(w, "top package inits (instructions, of which regexp):")
	for _, c := range cg.TopInits {
		fmt.Fprintf(w, "  %8s %8s  %s\n", mi(c.Ir), mi(c.Regexp), c.Name)
	}
	fmt.Fprintln(w, "answer to exit by package (self cost):")
	for _, c := range cg.AnswerByPackage {
		fmt.Fprintf(w, "  %8s  %s\n", mi(c.Ir), c.Name)
	}
	fmt.Fprintln(w, "our functions in it (self cost):")
	for _, c := range cg.OurFuncs {
		fmt.Fprintf(w, "  %6.1f k  %s\n", float64(c.Ir)/1e3, c.Name)
	}
}
