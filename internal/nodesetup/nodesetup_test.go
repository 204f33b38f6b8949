package nodesetup

import (
	"context"
	"errors"
	"github.com/kubecred/ecr-credential-provider/internal/kubeletwiring"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kubecred/ecr-credential-provider/internal/providerconfig"
)

// kubeletView is what the kubelet would be started with below a root:
// the values of its image credential provider flags.
type kubeletView struct {
	BinDir, Config string
	Args           []string // every argument, for checking the rest survived
}

// view reads what the kubelet would be started with below root, with the
// wiring model install and doctor share.
func view(t *testing.T, root string, d Distro) kubeletView {
	t.Helper()
	n, err := openNodeFS(root)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	w, err := kubeletwiring.Read(n, kindOf(d))
	if err != nil {
		t.Fatal(err)
	}
	v := kubeletView{BinDir: w.BinDir.Value, Config: w.Config.Value}
	for _, a := range w.Args {
		v.Args = append(v.Args, a.Word)
	}
	return v
}

func TestInstallUninstallPerDistro(t *testing.T) {
	tests := []struct {
		name, fixture string
		opts          Options
		distro        Distro
		binDir        string
		config        string
		keepArgs      []string // arguments the kubelet had before that must survive
		public        bool
	}{
		{name: "kubeadm-debian", fixture: "kubeadm-debian", distro: Kubeadm, binDir: DefaultBinDir, config: DefaultConfig,
			keepArgs: []string{"--node-ip=10.0.0.5", "--max-pods=150", "--config=/var/lib/kubelet/config.yaml", "--pod-infra-container-image=registry.k8s.io/pause:3.10"}},
		{name: "kubeadm-rhel", fixture: "kubeadm-rhel", distro: Kubeadm, binDir: DefaultBinDir, config: DefaultConfig,
			keepArgs: []string{"--cgroup-driver=systemd", "--max-pods=50", "--kubeconfig=/etc/kubernetes/kubelet.conf"}},
		{name: "k3s", fixture: "k3s", distro: K3s, binDir: RancherBinDir, config: RancherConfig},
		{name: "k3s-custom-paths", fixture: "k3s", distro: K3s, public: true,
			opts:   Options{BinDir: "/opt/ecr/bin", Config: "/etc/rancher/k3s/credential-provider.yaml", Public: true},
			binDir: "/opt/ecr/bin", config: "/etc/rancher/k3s/credential-provider.yaml"},
		{name: "k3s-manual", fixture: "k3s-manual", distro: K3s, binDir: RancherBinDir, config: RancherConfig},
		{name: "rke2", fixture: "rke2", distro: RKE2, binDir: RancherBinDir, config: RancherConfig},
		{name: "systemd", fixture: "systemd", distro: Systemd, binDir: DefaultBinDir, config: DefaultConfig,
			keepArgs: []string{"--v=2", "--config=/var/lib/kubelet/kubelet-config.yaml"}},
		{name: "eks-al2023", fixture: "eks-al2023", distro: EKS, opts: Options{Force: true},
			binDir: eksProviderDir, config: eksProviderConfig, keepArgs: []string{"--node-ip=10.0.1.23"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			root := nodeRoot(t, tt.fixture)
			o := tt.opts
			o.Root, o.Binary = root, writeBinary(t, fakeBinary)
			before := snapshot(t, root)

			// Dry run: a diff, and not a byte changed.
			dry := o
			dry.DryRun = true
			dr, err := Install(ctx, dry)
			if err != nil {
				t.Fatalf("dry run: %v", err)
			}
			if !dr.Changed || dr.Diff == "" {
				t.Fatalf("dry run on a fresh node shows no change: %+v", dr)
			}
			assertTree(t, "after dry run", before, snapshot(t, root))

			res, err := Install(ctx, o)
			if err != nil {
				t.Fatalf("install: %v", err)
			}
			if res.Distro != tt.distro || !res.Changed {
				t.Fatalf("install: distro %s changed %v, want %s and a change", res.Distro, res.Changed, tt.distro)
			}
			installed := snapshot(t, root)

			// The kubelet would now find our binary and config.
			view := view(t, root, tt.distro)
			if view.BinDir != tt.binDir || view.Config != tt.config {
				t.Errorf("kubelet would get bin dir %q config %q, want %q and %q", view.BinDir, view.Config, tt.binDir, tt.config)
			}
			for _, a := range tt.keepArgs {
				if !slices.Contains(view.Args, a) {
					t.Errorf("kubelet lost its argument %s: %v", a, view.Args)
				}
			}
			bin := installed[path.Join(tt.binDir, providerconfig.DefaultName)]
			if bin.Data != fakeBinary || bin.Mode != 0o755 {
				t.Errorf("binary in %s: mode %v, content ours %v", tt.binDir, bin.Mode, bin.Data == fakeBinary)
			}
			if tt.distro != EKS {
				cfg := installed[tt.config]
				pcf, err := decodeStrict(tt.config, []byte(cfg.Data))
				pc := pcf.Config
				if err != nil || cfg.Mode != 0o644 || len(pc.Providers) != 1 || pc.Providers[0].Name != providerconfig.DefaultName {
					t.Errorf("config %s: mode %v, %+v, %v", tt.config, cfg.Mode, pc, err)
				}
				if got := slices.Contains(pc.Providers[0].MatchImages, "public.ecr.aws"); got != tt.public {
					t.Errorf("config matches public.ecr.aws: %v, want %v", got, tt.public)
				}
			}
			if st := installed[stateFile]; st.Mode != 0o600 || installed[StateDir].Mode != fs0700dir {
				t.Errorf("install record mode %v, dir %v; want 0600 and 0700", st.Mode, installed[StateDir].Mode)
			}

			// Again: nothing to do, nothing touched.
			again, err := Install(ctx, o)
			if err != nil {
				t.Fatalf("reinstall: %v", err)
			}
			if !again.Unchanged || again.Changed || len(again.Actions) > 0 {
				t.Errorf("reinstall changed something: %+v", again)
			}
			assertTree(t, "after reinstall", installed, snapshot(t, root))

			// Uninstall, dry run first.
			udry, err := Uninstall(ctx, Options{Root: root, DryRun: true})
			if err != nil {
				t.Fatalf("uninstall dry run: %v", err)
			}
			assertTree(t, "after uninstall dry run", installed, snapshot(t, root))
			un, err := Uninstall(ctx, Options{Root: root})
			if err != nil {
				t.Fatalf("uninstall: %v", err)
			}
			if !un.Changed || len(un.Notes) > 0 {
				t.Errorf("uninstall: changed %v, notes %q", un.Changed, un.Notes)
			}
			assertTree(t, "after uninstall (want the original tree)", withLock(before), snapshot(t, root))
			un2, err := Uninstall(ctx, Options{Root: root})
			if err != nil || !un2.Unchanged {
				t.Errorf("second uninstall: %+v, %v", un2, err)
			}
			assertTree(t, "after second uninstall", withLock(before), snapshot(t, root))

			golden(t, tt.name+".txt", "##### install --dry-run\n"+reportText(dr)+dr.Diff+
				"##### install\n"+reportText(res)+changedFiles(before, installed)+
				"##### uninstall --dry-run\n"+reportText(udry)+udry.Diff+
				"##### uninstall\n"+reportText(un))
		})
	}
}

const fs0700dir = os.ModeDir | 0o700

func TestDetect(t *testing.T) {
	for fixture, want := range map[string]Distro{
		"kubeadm-debian": Kubeadm, "kubeadm-rhel": Kubeadm, "k3s": K3s, "k3s-manual": K3s,
		"rke2": RKE2, "systemd": Systemd, "systemd-noexpand": Systemd, "eks-al2023": EKS,
	} {
		got, evidence, err := Detect(nodeRoot(t, fixture))
		if err != nil || got != want || len(evidence) == 0 {
			t.Errorf("%s: Detect = %s %v %v, want %s", fixture, got, evidence, err, want)
		}
	}
	empty := t.TempDir()
	if _, _, err := Detect(empty); err == nil || !strings.Contains(err.Error(), "pass --distro") {
		t.Errorf("empty root: %v, want a 'pass --distro' error", err)
	}
	both := nodeRoot(t, "k3s")
	os.MkdirAll(filepath.Join(both, "etc/rancher/rke2"), 0o755)
	if _, _, err := Detect(both); err == nil || !strings.Contains(err.Error(), "more than one") {
		t.Errorf("k3s and rke2: %v, want an ambiguity error", err)
	}
}

// refuse runs Install expecting an error that mentions every one of want,
// and checks the tree was left exactly as it was, but for the lock file: a
// usage error comes before the lock, so it leaves not even that.
func refuse(t *testing.T, o Options, want ...string) error {
	t.Helper()
	before := snapshot(t, o.Root)
	_, err := Install(context.Background(), o)
	if err == nil {
		t.Fatalf("install succeeded, want an error mentioning %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
	wantTree := withLock(before)
	if ue := (*UsageError)(nil); errors.As(err, &ue) {
		wantTree = before
	}
	assertTree(t, "after refusal", wantTree, snapshot(t, o.Root))
	return err
}

// replaceIn edits a fixture file below root, replacing old by new once.
func replaceIn(t *testing.T, root, rel, old, new string) {
	t.Helper()
	p := filepath.Join(root, rel)
	b, err := os.ReadFile(p)
	if err != nil || !strings.Contains(string(b), old) {
		t.Fatalf("%s: %v, or no %q in it", rel, err, old)
	}
	if err := os.WriteFile(p, []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRefusals(t *testing.T) {
	bin := writeBinary(t, fakeBinary)

	t.Run("unparsable k3s config.yaml", func(t *testing.T) {
		root := nodeRoot(t, "k3s")
		// A tab where YAML wants spaces: the classic hand-edit mistake.
		os.WriteFile(filepath.Join(root, "etc/rancher/k3s/config.yaml"), []byte("node-name: edge-1\nkubelet-arg:\n\t- max-pods=200\n"), 0o644)
		refuse(t, Options{Root: root, Binary: bin}, "/etc/rancher/k3s/config.yaml", "line 3", "not valid YAML")
	})
	t.Run("unparsable env file", func(t *testing.T) {
		root := nodeRoot(t, "kubeadm-debian")
		os.WriteFile(filepath.Join(root, "etc/default/kubelet"), []byte("# ok\nexport KUBELET_EXTRA_ARGS=--v=2\n"), 0o644)
		refuse(t, Options{Root: root, Binary: bin}, "/etc/default/kubelet:2", "not a valid environment variable name")
	})
	t.Run("unknown distro", func(t *testing.T) {
		root := nodeRoot(t, "k3s")
		err := refuse(t, Options{Root: root, Binary: bin, Distro: "openshift"}, "unknown distro", "kubeadm")
		var ue *UsageError
		if !errors.As(err, &ue) {
			t.Errorf("unknown distro is not a UsageError: %T", err)
		}
	})
	t.Run("symlink climbing out of the root", func(t *testing.T) {
		root := nodeRoot(t, "k3s")
		outside := filepath.Join(filepath.Dir(root), "outside")
		os.MkdirAll(outside, 0o755)
		os.WriteFile(filepath.Join(outside, "config.yaml"), []byte("node-name: host\n"), 0o644)
		cfg := filepath.Join(root, "etc/rancher/k3s/config.yaml")
		os.Remove(cfg)
		os.Symlink("../../../../outside/config.yaml", cfg)
		refuse(t, Options{Root: root, Binary: bin, BinDir: "/opt/ecr/bin"}, "/etc/rancher/k3s/config.yaml", "outside the root")
		if b, _ := os.ReadFile(filepath.Join(outside, "config.yaml")); string(b) != "node-name: host\n" {
			t.Errorf("file outside the root changed: %q", b)
		}
	})
	t.Run("kubelet unit that does not expand KUBELET_EXTRA_ARGS", func(t *testing.T) {
		root := nodeRoot(t, "systemd-noexpand")
		refuse(t, Options{Root: root, Binary: bin}, "/etc/systemd/system/kubelet.service:8", "does not expand $KUBELET_EXTRA_ARGS",
			"--image-credential-provider-config="+DefaultConfig)
	})
	t.Run("kubelet unit that passes ${KUBELET_EXTRA_ARGS} as one word", func(t *testing.T) {
		root := nodeRoot(t, "systemd")
		replaceIn(t, root, "etc/systemd/system/kubelet.service", "$KUBELET_EXTRA_ARGS", "${KUBELET_EXTRA_ARGS}")
		refuse(t, Options{Root: root, Binary: bin}, "as one single argument")
	})
	t.Run("a later flag would override ours", func(t *testing.T) {
		root := nodeRoot(t, "systemd")
		replaceIn(t, root, "etc/systemd/system/kubelet.service", "$KUBELET_EXTRA_ARGS", "$KUBELET_EXTRA_ARGS --image-credential-provider-config=/etc/other.yaml")
		refuse(t, Options{Root: root, Binary: bin}, "/etc/systemd/system/kubelet.service:9", "would override ours")
	})
	t.Run("k3s unit passes other paths", func(t *testing.T) {
		root := nodeRoot(t, "k3s")
		replaceIn(t, root, "etc/systemd/system/k3s.service", "    server \\", "    server --image-credential-provider-bin-dir=/usr/local/bin \\")
		refuse(t, Options{Root: root, Binary: bin}, "k3s.service", "--bin-dir /usr/local/bin")
	})
	t.Run("k3s kubelet-arg sets other paths", func(t *testing.T) {
		root := nodeRoot(t, "k3s")
		os.MkdirAll(filepath.Join(root, "etc/rancher/k3s/config.yaml.d"), 0o755)
		os.WriteFile(filepath.Join(root, "etc/rancher/k3s/config.yaml.d/50-ecr.yaml"), []byte("kubelet-arg+:\n  - image-credential-provider-config=/etc/x.yaml\n"), 0o644)
		refuse(t, Options{Root: root, Binary: bin}, "config.yaml.d/50-ecr.yaml", "kubelet-arg+")
	})
	t.Run("config file with other providers", func(t *testing.T) {
		root := nodeRoot(t, "systemd")
		os.MkdirAll(filepath.Join(root, "etc/kubernetes"), 0o755)
		other := "apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nproviders:\n  - name: gcr-credential-provider\n    matchImages: [\"*.gcr.io\"]\n    defaultCacheDuration: 1h\n    apiVersion: credentialprovider.kubelet.k8s.io/v1\n"
		os.WriteFile(filepath.Join(root, DefaultConfig), []byte(other), 0o644)
		// Wiring the kubelet to it would make it look for the other
		// provider's binary, which is not there: it would not start.
		refuse(t, Options{Root: root, Binary: bin}, "could not start", "gcr-credential-provider in "+DefaultConfig+" has no executable")
		// With it there, ours is added and theirs kept.
		os.MkdirAll(filepath.Join(root, DefaultBinDir), 0o755)
		os.WriteFile(filepath.Join(root, DefaultBinDir, "gcr-credential-provider"), []byte("gcr"), 0o755)
		res, err := Install(context.Background(), Options{Root: root, Binary: bin})
		if err != nil {
			t.Fatal(err)
		}
		f, err := decodeStrict(DefaultConfig, []byte(snapshot(t, root)[DefaultConfig].Data))
		if err != nil || len(f.Config.Providers) != 2 || f.Config.Providers[0].Name != "gcr-credential-provider" || f.Config.Providers[1].Name != providerconfig.DefaultName {
			t.Fatalf("config after install: %+v, %v", f.Config, err)
		}
		if !strings.Contains(strings.Join(res.Notes, "\n"), "keeping its other providers (gcr-credential-provider)") {
			t.Errorf("notes %q do not say the other provider was kept", res.Notes)
		}
		if _, err := Uninstall(context.Background(), Options{Root: root}); err != nil {
			t.Fatal(err)
		}
		if got := snapshot(t, root)[DefaultConfig].Data; got != other {
			t.Errorf("after uninstall the config is\n%s\nwant it as it was\n%s", got, other)
		}
	})
	t.Run("bad paths", func(t *testing.T) {
		root := nodeRoot(t, "systemd")
		for _, o := range []Options{
			{BinDir: "relative/bin"}, {Config: "/etc/has space.yaml"}, {BinDir: "/opt/x/"}, {Config: "/etc/../x.yaml"},
			{BinDir: StateDir + "/bin"}, {Restart: true},
		} {
			o.Root, o.Binary = root, bin
			var ue *UsageError
			if _, err := Install(context.Background(), o); !errors.As(err, &ue) {
				t.Errorf("%+v: %v, want a usage error", o, err)
			}
		}
	})
}

func TestAbsoluteSymlinkStaysInsideRoot(t *testing.T) {
	// /var/lib/rancher linked to an absolute path: on the node that path is
	// below its own root, so install must write there and never to the
	// same path on the machine running the test.
	root := nodeRoot(t, "k3s")
	outside := filepath.Join(t.TempDir(), "rancher-data")
	for _, d := range []string{outside, filepath.Join(root, outside), filepath.Join(root, "var/lib")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Symlink(outside, filepath.Join(root, "var/lib/rancher"))
	if _, err := Install(context.Background(), Options{Root: root, Binary: writeBinary(t, fakeBinary)}); err != nil {
		t.Fatal(err)
	}
	if names, _ := os.ReadDir(outside); len(names) > 0 {
		t.Errorf("install wrote outside the root, to %s", outside)
	}
	inside := filepath.Join(root, outside, "credentialprovider/bin", providerconfig.DefaultName)
	if b, err := os.ReadFile(inside); err != nil || string(b) != fakeBinary {
		t.Errorf("binary not at %s below the root: %v", inside, err)
	}
}

func TestEKSWithoutForceChangesNothing(t *testing.T) {
	root := nodeRoot(t, "eks-al2023")
	before := snapshot(t, root)
	res, err := Install(context.Background(), Options{Root: root, Binary: writeBinary(t, fakeBinary), Public: true})
	if err != nil {
		t.Fatal(err)
	}
	assertTree(t, "EKS without --force", withLock(before), snapshot(t, root))
	if !res.NeedsForce || res.Changed || !strings.Contains(res.Diff, eksProviderDir+"/ecr-credential-provider") {
		t.Errorf("want NeedsForce and the would-be change in the diff: %+v", res)
	}
	text := reportText(res)
	for _, w := range []string{"--force", "nodeadm rewrites it at every boot", "--public", "already runs with --image-credential-provider-config=" + eksProviderConfig} {
		if !strings.Contains(text, w) {
			t.Errorf("report does not mention %q:\n%s", w, text)
		}
	}
	if _, err := Install(context.Background(), Options{Root: root, Binary: writeBinary(t, fakeBinary), BinDir: "/opt/x"}); err == nil {
		t.Error("--bin-dir on EKS accepted")
	}
}

func TestRollbackOnFailurePartWay(t *testing.T) {
	root := nodeRoot(t, "kubeadm-debian")
	before := snapshot(t, root)
	// The env file is the last write: by then the record, backup, binary
	// and config are in place and must all be undone.
	failWrite = func(p string) error {
		if p == "/etc/default/kubelet" {
			return errors.New("no space left on device")
		}
		return nil
	}
	defer func() { failWrite = nil }()
	_, err := Install(context.Background(), Options{Root: root, Binary: writeBinary(t, fakeBinary)})
	if err == nil || !strings.Contains(err.Error(), "no space left") || !strings.Contains(err.Error(), "rolled back") {
		t.Fatalf("err = %v, want the write failure, rolled back", err)
	}
	assertTree(t, "after rollback", withLock(before), snapshot(t, root))
}

// The first two findings: an edit made after install survives a
// re-install and the uninstall after it, and uninstall takes out only our
// flags from a file someone else changed too.
func TestEditsSurviveReinstallAndUninstall(t *testing.T) {
	ctx := context.Background()
	root := nodeRoot(t, "kubeadm-debian")
	before := snapshot(t, root)
	o := Options{Root: root, Binary: writeBinary(t, fakeBinary)}
	if _, err := Install(ctx, o); err != nil {
		t.Fatal(err)
	}
	env := filepath.Join(root, "etc/default/kubelet")
	edited, _ := os.ReadFile(env)
	edited = append(edited, "HTTP_PROXY=http://proxy:3128\n"...)
	os.WriteFile(env, edited, 0o644)
	cfg := filepath.Join(root, DefaultConfig)
	c, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, append(c, "    env:\n      - name: AWS_SHARED_CREDENTIALS_FILE\n        value: /root/.aws/credentials\n"...), 0o644)

	// Re-install (an upgrade: new binary) keeps both edits.
	o.Binary = writeBinary(t, fakeBinary+"v2\n")
	if _, err := Install(ctx, o); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(env); string(b) != string(edited) {
		t.Errorf("re-install changed the edited env file:\n%s", b)
	}
	if b, _ := os.ReadFile(cfg); !strings.HasSuffix(string(b), "value: /root/.aws/credentials\n") || !strings.HasPrefix(string(b), string(c)) {
		t.Errorf("re-install rewrote the config although our entry was already as wanted:\n%s", b)
	}
	f, err := decodeStrict(DefaultConfig, must(os.ReadFile(cfg)))
	if err != nil || len(f.Config.Providers) != 1 || len(f.Config.Providers[0].Env) != 1 || f.Config.Providers[0].Env[0].Name != "AWS_SHARED_CREDENTIALS_FILE" {
		t.Errorf("re-install lost the env block: %+v %v", f.Config, err)
	}

	res, err := Uninstall(ctx, Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	if res.Incomplete || len(res.Notes) > 0 {
		t.Errorf("uninstall: incomplete %v, notes %q", res.Incomplete, res.Notes)
	}
	want := before["/etc/default/kubelet"].Data + "HTTP_PROXY=http://proxy:3128\n"
	if b, _ := os.ReadFile(env); string(b) != want {
		t.Errorf("after uninstall /etc/default/kubelet is\n%s\nwant\n%s", b, want)
	}
	after := snapshot(t, root)
	delete(after, "/etc/default/kubelet")
	delete(before, "/etc/default/kubelet")
	assertTree(t, "after uninstall, but for the edited file", withLock(before), after)
}

// An unrelated flag changed after install: the kubelet's flags still name
// our config and binary, so uninstall keeps them, says so, and fails.
func TestUninstallKeepsWhatTheWiringStillNames(t *testing.T) {
	ctx := context.Background()
	root := nodeRoot(t, "k3s")
	o := Options{Root: root, Binary: writeBinary(t, fakeBinary), BinDir: "/opt/ecr/bin", Config: "/opt/ecr/config.yaml"}
	if _, err := Install(ctx, o); err != nil {
		t.Fatal(err)
	}
	// Someone moves our paths to kubelet-arg in a drop-in of their own,
	// which k3s passes whether the files exist or not.
	yml := filepath.Join(root, "etc/rancher/k3s/config.yaml")
	c, _ := os.ReadFile(yml)
	os.WriteFile(yml, []byte(strings.Replace(string(c), "image-credential-provider", "# image-credential-provider", -1)), 0o644)
	os.MkdirAll(yml+".d", 0o755)
	os.WriteFile(yml+".d/10-mine.yaml", []byte("kubelet-arg+:\n  - image-credential-provider-config=/opt/ecr/config.yaml\n  - image-credential-provider-bin-dir=/opt/ecr/bin\n"), 0o644)
	res, err := Uninstall(ctx, Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Incomplete || !strings.Contains(strings.Join(res.Notes, "\n"), "10-mine.yaml") {
		t.Errorf("uninstall: incomplete %v, notes %q; want it to say the drop-in still names our files", res.Incomplete, res.Notes)
	}
	if v := view(t, root, K3s); v.Config != "/opt/ecr/config.yaml" {
		t.Fatalf("kubelet would get %+v", v)
	}
	n, _ := openNodeFS(root)
	defer n.Close()
	if ps, _, err := bootProblems(n, K3s); err != nil || len(ps) > 0 {
		t.Errorf("kubelet could not start after uninstall: %v %v", ps, err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestReinstallWithOtherOptions(t *testing.T) {
	ctx := context.Background()
	root := nodeRoot(t, "k3s")
	before := snapshot(t, root)
	bin := writeBinary(t, fakeBinary)
	if _, err := Install(ctx, Options{Root: root, Binary: bin}); err != nil {
		t.Fatal(err)
	}
	// --public: only the config changes.
	res, err := Install(ctx, Options{Root: root, Binary: bin, Public: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Actions) != 1 || res.Actions[0].Kind != "update" || res.Actions[0].Path != RancherConfig {
		t.Errorf("actions %+v, want one update of %s", res.Actions, RancherConfig)
	}
	// A new binary and other paths: the old files go, config.yaml is edited.
	bin2 := writeBinary(t, fakeBinary+"v2\n")
	res, err = Install(ctx, Options{Root: root, Binary: bin2, BinDir: "/opt/ecr/bin", Config: "/opt/ecr/config.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, RancherBinDir)); !os.IsNotExist(err) {
		t.Errorf("old bin dir left behind (%v): %+v", err, res.Actions)
	}
	if v := view(t, root, K3s); v.BinDir != "/opt/ecr/bin" || v.Config != "/opt/ecr/config.yaml" {
		t.Errorf("k3s would use %+v", v)
	}
	if _, err := Uninstall(ctx, Options{Root: root}); err != nil {
		t.Fatal(err)
	}
	assertTree(t, "after uninstall", withLock(before), snapshot(t, root))
}

func TestRestart(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		fixture string
		want    []string
	}{
		{"k3s", []string{"restart k3s.service"}},
		{"rke2", []string{"restart rke2-server.service"}},
		{"kubeadm-rhel", []string{"restart kubelet.service"}},
		{"systemd", []string{"daemon-reload", "restart kubelet.service"}},
	} {
		root := nodeRoot(t, tt.fixture)
		var ran []string
		fake := func(_ context.Context, args ...string) error {
			ran = append(ran, strings.Join(args, " "))
			return nil
		}
		o := Options{Root: root, Binary: writeBinary(t, fakeBinary), Restart: true, Systemctl: fake}
		if _, err := Install(ctx, o); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ran, tt.want) {
			t.Errorf("%s: ran systemctl %q, want %q", tt.fixture, ran, tt.want)
		}
		ran = nil
		if _, err := Install(ctx, o); err != nil || len(ran) > 0 {
			t.Errorf("%s: reinstall restarted %q (%v); nothing changed, so it must not", tt.fixture, ran, err)
		}
		if _, err := Uninstall(ctx, Options{Root: root, Restart: true, Systemctl: fake}); err != nil || !slices.Equal(ran, tt.want) {
			t.Errorf("%s: uninstall ran %q (%v), want %q", tt.fixture, ran, err, tt.want)
		}
	}
}

// An env file written with CRLF line ends (edited on Windows, or by a
// tool that does) keeps them: no blank line is added, no '\r' gets into a
// value, and uninstall gives back the file byte for byte.
func TestCRLFEnvFile(t *testing.T) {
	ctx := context.Background()
	root := nodeRoot(t, "kubeadm-rhel")
	env := filepath.Join(root, "etc/sysconfig/kubelet")
	orig := "# set by hand\r\nKUBELET_EXTRA_ARGS=--cgroup-driver=systemd --max-pods=50\r\nHTTPS_PROXY=http://proxy:3128\r\n"
	os.WriteFile(env, []byte(orig), 0o644)
	if _, err := Install(ctx, Options{Root: root, Binary: writeBinary(t, fakeBinary)}); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(env)
	if strings.Contains(string(got), "\r\n\r\n") || strings.Count(string(got), "\n") != 3 || strings.Count(string(got), "\r\n") != 3 {
		t.Errorf("install changed the line structure:\n%q", got)
	}
	as, err := kubeletwiring.ParseEnvFile("f", got)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range as {
		if strings.ContainsAny(a.Value, "\r\x00") {
			t.Errorf("%s = %q carries a control character", a.Key, a.Value)
		}
	}
	if v := view(t, root, Kubeadm); v.Config != DefaultConfig || !slices.Contains(v.Args, "--max-pods=50") {
		t.Errorf("kubelet would get %+v", v)
	}
	// Edited since (so no whole-file restore): uninstall edits CRLF too.
	os.WriteFile(env, append(got, "NO_PROXY=10.0.0.0/8\r\n"...), 0o644)
	if _, err := Uninstall(ctx, Options{Root: root}); err != nil {
		t.Fatal(err)
	}
	got, _ = os.ReadFile(env)
	want := "# set by hand\r\nKUBELET_EXTRA_ARGS=\"--cgroup-driver=systemd --max-pods=50\"\r\nHTTPS_PROXY=http://proxy:3128\r\nNO_PROXY=10.0.0.0/8\r\n"
	if string(got) != want {
		t.Errorf("after uninstall:\n%q\nwant\n%q", got, want)
	}
}

// The lock file is opened without following symlinks: one planted at its
// path makes install refuse, and the link's target is left as it was.
func TestLockFileSymlinkRefused(t *testing.T) {
	root := nodeRoot(t, "kubeadm-debian")
	// A link to a file inside the node, as the node would see it.
	if err := os.Symlink("../../etc/default/kubelet", filepath.Join(root, LockFile)); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, root)
	_, err := Install(context.Background(), Options{Root: root, Binary: writeBinary(t, fakeBinary)})
	if err == nil || !strings.Contains(err.Error(), LockFile) {
		t.Fatalf("install with a symlink at the lock file: %v; want an error naming %s", err, LockFile)
	}
	assertTree(t, "after the refusal", before, snapshot(t, root))
}

// A state directory an earlier release left holds its lock file; the
// last uninstall removes that too, leaving only the new lock file.
func TestUninstallRemovesLegacyLockFile(t *testing.T) {
	root := nodeRoot(t, "kubeadm-debian")
	before := snapshot(t, root)
	if _, err := Install(context.Background(), Options{Root: root, Binary: writeBinary(t, fakeBinary)}); err != nil {
		t.Fatal(err)
	}
	legacy := filepath.Join(root, StateDir, "lock")
	if err := os.WriteFile(legacy, []byte(`["/var/lib/ecr-credential-provider"]`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Uninstall(context.Background(), Options{Root: root}); err != nil {
		t.Fatal(err)
	}
	assertTree(t, "after uninstall", withLock(before), snapshot(t, root))
}
