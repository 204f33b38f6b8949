package providerconfig

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestKubeletVerdicts replays configs whose fate was recorded by running
// the kubelet's own code of several versions (see testdata/kubelet_verdicts.json):
// Validate must report an error exactly when that kubelet refused to start.
func TestKubeletVerdicts(t *testing.T) {
	testKubeletVerdicts(t, "testdata/kubelet_verdicts.json", 100)
}

// TestOldKubeletVerdicts replays configs for kubelets v1.20 to v1.25,
// whose verdicts come from those kubelets' own loader (see the file's about).
func TestOldKubeletVerdicts(t *testing.T) {
	testKubeletVerdicts(t, "testdata/kubelet_verdicts_old.json", 25)
}

func testKubeletVerdicts(t *testing.T, file string, minCases int) {
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		Cases []struct {
			Name    string
			Dir     bool
			Files   map[string]*string
			Kubelet map[string]string
		}
	}
	if err := json.Unmarshal(raw, &rec); err != nil {
		t.Fatal(err)
	}
	if len(rec.Cases) < minCases {
		t.Fatalf("only %d recorded cases", len(rec.Cases))
	}
	bin := t.TempDir()
	for name, mode := range map[string]os.FileMode{"test": 0o755, "ecr-credential-provider": 0o755, "a": 0o755, "b": 0o755, "noexec": 0o644} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(bin, "adir"), 0o755); err != nil {
		t.Fatal(err)
	}
	on := true
	kubelets := map[string]Options{
		"v1.31":      {KubeletVersion: Version{31}, BinDir: bin},
		"v1.33":      {KubeletVersion: Version{33}, BinDir: bin},
		"v1.33+gate": {KubeletVersion: Version{33}, BinDir: bin, ServiceAccountTokenGate: &on},
		"v1.37":      {KubeletVersion: Version{37}, BinDir: bin},
		"v1.20+gate": {KubeletVersion: Version{20}, BinDir: bin, CredentialProvidersGate: &on},
		"v1.22":      {KubeletVersion: Version{22}, BinDir: bin},
		"v1.24":      {KubeletVersion: Version{24}, BinDir: bin},
		"v1.25":      {KubeletVersion: Version{25}, BinDir: bin},
	}
	for _, c := range rec.Cases {
		dir := filepath.Join(t.TempDir(), c.Name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		path := dir
		for name, content := range c.Files {
			p := filepath.Join(dir, strings.TrimRight(name, "/@"))
			switch {
			case strings.HasSuffix(name, "/"):
				err = os.Mkdir(p, 0o755)
			case strings.HasSuffix(name, "@"):
				err = os.Symlink(t.TempDir(), p)
			default:
				err = os.WriteFile(p, []byte(*content), 0o644)
				if !c.Dir {
					path = p
				}
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		cfg, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		for version, verdict := range c.Kubelet {
			opts, ok := kubelets[version]
			if !ok {
				t.Fatalf("case %s: unknown kubelet %s", c.Name, version)
			}
			fs := Validate(cfg, opts)
			if refuses := strings.HasPrefix(verdict, "refuses"); HasErrors(fs) != refuses {
				t.Errorf("case %s, kubelet %s %s; Validate found %+v", c.Name, version, verdict, fs)
			}
		}
	}
}
