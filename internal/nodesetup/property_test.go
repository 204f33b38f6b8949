package nodesetup

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kubecred/ecr-credential-provider/internal/kubeletwiring"
	"github.com/kubecred/ecr-credential-provider/internal/providerconfig"
)

var rounds = flag.Int("rounds", 4, "random sequences per fixture node in TestRandomSequences")

// operatorEdit is one change someone else made to a file install touches,
// and the text that must still be in that file after the final uninstall.
type operatorEdit struct {
	path, marker string
}

// seqState is one random sequence's node and what the test knows of it.
type seqState struct {
	t        *testing.T
	rng      *rand.Rand
	root     string
	fixture  string
	distro   Distro
	original map[string]entry
	// baseline are the boot problems the fixture node has of its own.
	baseline []problem
	edits    []operatorEdit
	// edited are paths the operator changed or created.
	edited map[string]bool
	log    []string
	n      int
}

func (s *seqState) fail(format string, a ...any) {
	s.t.Helper()
	s.t.Fatalf("%s (fixture %s, steps:\n  %s)", fmt.Sprintf(format, a...), s.fixture, strings.Join(s.log, "\n  "))
}

// TestRandomSequences runs random sequences of install (with varied
// flags), operator edits to each file install touches, re-install,
// uninstall, and runs killed at a random point, over every fixture node.
// After every step the kubelet can start (every path its flags name
// exists, the provider config passes validation); after the final
// uninstall every operator edit is still there and nothing of install's is.
func TestRandomSequences(t *testing.T) {
	entries, err := os.ReadDir(filepath.Join("testdata", "fixtures"))
	if err != nil {
		t.Fatal(err)
	}
	bins := []string{writeBinary(t, fakeBinary), writeBinary(t, fakeBinary+"v2\n")}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		for round := range *rounds {
			t.Run(fmt.Sprintf("%s/%d", e.Name(), round), func(t *testing.T) {
				s := newSeq(t, e.Name(), uint64(round))
				steps := 4 + s.rng.IntN(8)
				for range steps {
					s.step(bins)
				}
				s.finalUninstall()
			})
		}
	}
}

func newSeq(t *testing.T, fixture string, seed uint64) *seqState {
	root := nodeRoot(t, fixture)
	if fixture != "k3s" && fixture != "k3s-manual" && fixture != "rke2" && fixture != "eks-al2023" {
		// containerd reads hosts.toml there: --pull-through-cache can run.
		writeFile(t, root, containerdConfig, containerdV2)
	}
	s := &seqState{t: t, rng: rand.New(rand.NewPCG(seed, uint64(len(fixture)))), root: root, fixture: fixture, edited: map[string]bool{}}
	s.original = snapshot(t, root)
	n, err := openNodeFS(root)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if s.distro, _, err = detect(n); err != nil {
		t.Fatal(err)
	}
	if s.baseline, _, err = bootProblems(n, s.distro); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *seqState) options(bins []string) Options {
	o := Options{Root: s.root, Binary: bins[s.rng.IntN(len(bins))], Public: s.rng.IntN(2) == 0}
	if s.distro == EKS {
		o.Force = true
		return o
	}
	switch s.rng.IntN(4) {
	case 0:
		o.BinDir, o.Config = "/opt/ecr/bin", "/opt/ecr/config.yaml"
	case 1:
		o.Config = "/etc/ecr/provider.yaml"
	}
	switch s.rng.IntN(4) {
	case 0:
		o.PullThroughCache = rules(s.t, ptcRule)
	case 1:
		o.PullThroughCache = rules(s.t, ptcRule, ptcGHCR)
	}
	// k3s and rke2 fixtures have no disable-default-registry-endpoint:
	// without the fallback, install refuses there.
	o.PullThroughCacheFallback = len(o.PullThroughCache) > 0 && s.rng.IntN(2) == 0
	return o
}

// step takes one random step and checks the invariant after it.
func (s *seqState) step(bins []string) {
	s.t.Helper()
	ctx := context.Background()
	s.n++
	switch k := s.rng.IntN(10); {
	case k < 3:
		o := s.options(bins)
		s.log = append(s.log, fmt.Sprintf("install %+v", short(o)))
		if _, err := Install(ctx, o); err != nil {
			s.log = append(s.log, "  refused: "+err.Error())
		}
	case k < 6:
		s.edit()
	case k < 8:
		s.log = append(s.log, "uninstall")
		res, err := Uninstall(ctx, Options{Root: s.root})
		switch {
		case err != nil:
			s.log = append(s.log, "  failed: "+err.Error())
		case res.Incomplete:
			s.log = append(s.log, fmt.Sprintf("  incomplete: %q", res.Notes))
		}
	default:
		s.crash(bins)
	}
	s.checkBootable("after step " + s.log[len(s.log)-1])
}

func short(o Options) string {
	return fmt.Sprintf("bin=%s config=%s public=%v binary=%s cache=%v fallback=%v", o.BinDir, o.Config, o.Public, filepath.Base(filepath.Dir(o.Binary)), o.PullThroughCache, o.PullThroughCacheFallback)
}

// crash runs install or uninstall and kills it (a panic the test
// recovers, which skips every rollback and clean-up, as kill -9 would)
// at a random one of the points where the node is between two states.
func (s *seqState) crash(bins []string) {
	s.t.Helper()
	at, n := s.rng.IntN(30), 0
	crashAt = func(string) bool { n++; return n == at }
	defer func() { crashAt = nil }()
	run := func() {
		defer func() {
			if r := recover(); r != nil {
				c, ok := r.(errCrash)
				if !ok {
					panic(r)
				}
				s.log = append(s.log, "  killed at "+c.at)
			}
		}()
		if s.rng.IntN(2) == 0 {
			o := s.options(bins)
			s.log = append(s.log, fmt.Sprintf("install (to be killed at point %d) %s", at, short(o)))
			Install(context.Background(), o)
		} else {
			s.log = append(s.log, fmt.Sprintf("uninstall (to be killed at point %d)", at))
			Uninstall(context.Background(), Options{Root: s.root})
		}
	}
	run()
}

// edit makes an operator's change to one of the files install touches.
func (s *seqState) edit() {
	s.t.Helper()
	m := s.manifest()
	if m == nil {
		s.log = append(s.log, "edit: nothing installed")
		return
	}
	f := m.Files[s.rng.IntN(len(m.Files))]
	full := filepath.Join(s.root, f.Path)
	data, err := os.ReadFile(full)
	if err != nil {
		s.log = append(s.log, "edit: "+f.Path+" is gone")
		return
	}
	marker := fmt.Sprintf("operator-edit-%d", s.n)
	switch {
	case f.Role == roleBinary:
		s.log = append(s.log, "edit: leave binary "+f.Path)
		return
	case f.Role == roleMirror && len(f.Keys) == 0:
		// An edited hosts.toml is the operator's to remove (uninstall
		// keeps it and says so; TestPullThroughCacheKeepsOperatorFiles).
		s.log = append(s.log, "edit: leave hosts.toml "+f.Path)
		return
	case f.Role == roleConfig:
		// Another provider, with its binary: it must outlive ours.
		pf, err := decodeStrict(f.Path, data)
		if err != nil {
			s.fail("installed config %s does not decode: %v", f.Path, err)
		}
		name := marker + "-provider"
		ps := append(pf.Config.Providers, providerconfig.CredentialProvider{Name: name, MatchImages: []string{"*.gcr.io"}, APIVersion: "credentialprovider.kubelet.k8s.io/v1", DefaultCacheDuration: pf.Config.Providers[0].DefaultCacheDuration})
		out, err := encodeConfig(pf, ps)
		if err != nil {
			s.t.Fatal(err)
		}
		bin := path.Join(m.BinDir, name)
		must(0, os.WriteFile(filepath.Join(s.root, bin), []byte("another provider\n"), 0o755))
		s.edited[bin] = true
		data = out
		s.edits = append(s.edits, operatorEdit{f.Path, name}, operatorEdit{bin, "another provider"})
	case f.Var != "" && s.rng.IntN(2) == 0:
		// A flag of theirs in the same variable as ours.
		flag := "--node-labels=" + marker
		if f.Path == ourDropIn {
			start, end, v, ok, err := dropInValue(data)
			if err != nil || !ok {
				s.fail("our drop-in %s: %v %v", f.Path, ok, err)
			}
			data = append(append(append([]byte{}, data[:start]...), dropInLine(v+" "+flag)...), data[end:]...)
		} else {
			as, err := kubeletwiring.ParseEnvFile(f.Path, data)
			if err != nil {
				s.fail("%v", err)
			}
			a, _ := kubeletwiring.LookupEnv(as, f.Var)
			data = setEnvVar(data, as, f.Var, strings.TrimSpace(a.Value+" "+flag))
		}
		s.edits = append(s.edits, operatorEdit{f.Path, flag})
	default:
		// A line of their own.
		line := "# " + marker + "\n"
		if f.Var != "" && f.Path != ourDropIn {
			line = "HTTPS_PROXY=http://" + marker + ":3128\n"
		}
		data = append(data, line...)
		s.edits = append(s.edits, operatorEdit{f.Path, strings.TrimSpace(line)})
	}
	s.log = append(s.log, "edit "+f.Path+": "+marker)
	s.edited[f.Path] = true
	must(0, os.WriteFile(full, data, 0o644))
}

func (s *seqState) manifest() *manifest {
	n, err := openNodeFS(s.root)
	if err != nil {
		s.t.Fatal(err)
	}
	defer n.Close()
	m, err := loadManifest(n)
	if err != nil {
		s.fail("install record: %v", err)
	}
	return m
}

// checkBootable is the invariant: the kubelet's flags name only paths
// that exist, and it would accept the provider config, unless the
// fixture node was broken that way to begin with.
func (s *seqState) checkBootable(when string) {
	s.t.Helper()
	n, err := openNodeFS(s.root)
	if err != nil {
		s.t.Fatal(err)
	}
	defer n.Close()
	ps, _, err := bootProblems(n, s.distro)
	if err != nil {
		s.fail("%s: cannot read the wiring: %v", when, err)
	}
	if bad := newProblems(s.baseline, ps, nil); len(bad) > 0 {
		s.fail("%s: the kubelet could not start:%s", when, problemList(bad))
	}
}

// finalUninstall recovers from whatever the last step left, then checks
// that every operator edit is there and nothing of install's is.
func (s *seqState) finalUninstall() {
	s.t.Helper()
	s.log = append(s.log, "final uninstall")
	res, err := Uninstall(context.Background(), Options{Root: s.root})
	if err != nil {
		s.fail("final uninstall: %v", err)
	}
	if res.Incomplete {
		s.fail("final uninstall left things in place: %q", res.Notes)
	}
	s.checkBootable("after the final uninstall")
	got := snapshot(s.t, s.root)
	for _, e := range s.edits {
		if !strings.Contains(got[e.path].Data, e.marker) {
			s.fail("operator edit %q of %s is lost; the file is now:\n%s", e.marker, e.path, got[e.path].Data)
		}
	}
	for p, e := range s.original {
		g, ok := got[p]
		switch {
		case !ok:
			s.fail("%s was there before and is gone", p)
		case !s.edited[p] && g != e:
			s.fail("%s, which no operator edited, differs from before:\n%s\nwant\n%s", p, g.Data, e.Data)
		}
	}
	// Of install's, only the lock file (and the directories holding it)
	// may stay; a sequence in which no run took the lock leaves not even it.
	kept := s.original
	if g, ok := got[LockFile]; ok {
		kept = withLock(s.original)
		if g != kept[LockFile] {
			s.fail("lock file %s is %+v, want an empty file, mode 0600", LockFile, g)
		}
	}
	for p, e := range got {
		if _, ok := kept[p]; ok {
			continue
		}
		keep := s.edited[p] || e.Mode.IsDir() && slices.ContainsFunc(keys(s.edited), func(q string) bool { return strings.HasPrefix(q, p+"/") })
		if !keep {
			s.fail("%s is left behind (%v)", p, e.Mode)
		}
	}
	for p, e := range got {
		if strings.Contains(e.Data, fakeBinary) || strings.Contains(path.Base(p), ".tmp-") {
			s.fail("%s of install's is left behind", p)
		}
	}
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
