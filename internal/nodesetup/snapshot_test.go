package nodesetup

import (
	"context"
	"strings"
	"testing"

	"github.com/kubecred/ecr-credential-provider/internal/providerconfig"
)

// TestSnapshotRestore is the fleet installer's rollback: a snapshot taken
// before a change, restored after it, gives back the tree as it was, for a
// first install, an upgrade (new binary and env) and an uninstall.
func TestSnapshotRestore(t *testing.T) {
	ctx := context.Background()
	for _, fixture := range []string{"kubeadm-debian", "k3s", "systemd"} {
		t.Run(fixture, func(t *testing.T) {
			root := nodeRoot(t, fixture)
			v1 := Options{Root: root, Binary: writeBinary(t, fakeBinary)}
			v2 := v1
			v2.Binary = writeBinary(t, strings.Replace(fakeBinary, "v1", "v2", 1))
			v2.Provider.Env = []providerconfig.ExecEnvVar{{Name: "HTTPS_PROXY", Value: "http://proxy:3128"}}

			steps := []struct {
				name      string
				o         Options
				uninstall bool
			}{{"first install", v1, false}, {"upgrade", v2, false}, {"uninstall", v1, true}}
			for _, st := range steps {
				if st.uninstall {
					// Take the upgrade's place: uninstall from v1's install.
					if _, err := Install(ctx, v1); err != nil {
						t.Fatal(err)
					}
				}
				before := snapshot(t, root)
				snap, err := TakeSnapshot(ctx, st.o, st.uninstall)
				if err != nil {
					t.Fatalf("%s: snapshot: %v", st.name, err)
				}
				run := Install
				if st.uninstall {
					run = Uninstall
				}
				res, err := run(ctx, st.o)
				if err != nil {
					t.Fatalf("%s: %v", st.name, err)
				}
				if !res.Changed {
					t.Fatalf("%s changed nothing; the test needs a change to undo", st.name)
				}
				if len(treeDiff(before, snapshot(t, root))) == 0 {
					t.Fatalf("%s: tree unchanged", st.name)
				}
				if err := snap.Restore(ctx); err != nil {
					t.Fatalf("%s: restore: %v", st.name, err)
				}
				assertTree(t, st.name+" restored", withLock(before), snapshot(t, root))
				// The node works as before: the run is repeatable.
				if _, err := run(ctx, st.o); err != nil {
					t.Fatalf("%s again after the restore: %v", st.name, err)
				}
			}
		})
	}
}

// TestCheckBoot is the check the fleet installer makes before restarting
// the kubelet: after an install the node boots with the rules of the
// version the node reports, and a config that kubelet would refuse is
// named.
func TestCheckBoot(t *testing.T) {
	ctx := context.Background()
	root := nodeRoot(t, "kubeadm-debian")
	if _, err := Install(ctx, Options{Root: root, Binary: writeBinary(t, fakeBinary)}); err != nil {
		t.Fatal(err)
	}
	probs, w, err := CheckBoot(root, "", providerconfig.Version{Minor: 37})
	if err != nil || len(probs) > 0 {
		t.Fatalf("CheckBoot after install: %v %v", probs, err)
	}
	if w.Config.Value != DefaultConfig || w.BinDir.Value != DefaultBinDir {
		t.Errorf("wiring read: config %q bin dir %q", w.Config.Value, w.BinDir.Value)
	}
	// v1 configs need kubelet 1.26: the same files would not boot a 1.25.
	probs, _, err = CheckBoot(root, Kubeadm, providerconfig.Version{Minor: 25})
	if err != nil || len(probs) == 0 {
		t.Fatalf("CheckBoot for kubelet v1.25 found nothing (err %v)", err)
	}
	if !strings.Contains(strings.Join(probs, "\n"), "v1.25") {
		t.Errorf("problems do not name the version: %v", probs)
	}
}
