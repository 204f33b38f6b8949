package sbom_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"

	"github.com/kubecred/ecr-credential-provider/release/internal/sbom"
	"github.com/kubecred/ecr-credential-provider/release/internal/testenv"
)

func decode(t *testing.T, data []byte) *cdx.BOM {
	t.Helper()
	var bom cdx.BOM
	if err := cdx.NewBOMDecoder(strings.NewReader(string(data)), cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
		t.Fatal(err)
	}
	return &bom
}

// The plugin links the AWS SDK's modules: its BOM must list exactly the
// modules go version -m shows.
func TestListsWhatGoVersionShows(t *testing.T) {
	self := t.TempDir() + "/plugin"
	build := exec.Command("go", "build", "-o", self, "./cmd/ecr-credential-provider")
	build.Dir = "../../.." // the main module
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	at := time.Unix(1764500000, 0)
	data, err := sbom.FromBinary(self, sbom.Options{Version: "v1.2.3", Time: at})
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(data) {
		t.Fatal("not JSON")
	}
	bom := decode(t, data)
	mainPath, want := testenv.GoVersionModules(t, self, "v1.2.3")
	if len(want) < 10 {
		t.Fatalf("go version -m shows only %d modules; the comparison would prove little", len(want))
	}
	got := map[string]string{}
	for _, c := range *bom.Components {
		if _, dup := got[c.Name]; dup {
			t.Errorf("%s listed twice", c.Name)
		}
		got[c.Name] = c.Version
		if c.PackageURL != "pkg:golang/"+c.Name+"@"+c.Version {
			t.Errorf("%s: purl %q", c.Name, c.PackageURL)
		}
	}
	for p, v := range want {
		if got[p] != v {
			t.Errorf("go version -m shows %s %s, the BOM %q", p, v, got[p])
		}
	}
	for p, v := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("the BOM lists %s %s, which go version -m does not show", p, v)
		}
	}
	m := bom.Metadata.Component
	if m.Name != mainPath || m.Version != "v1.2.3" || bom.Metadata.Timestamp != "2025-11-30T10:53:20Z" {
		t.Errorf("described %s %s at %s, want %s v1.2.3 at the given time", m.Name, m.Version, bom.Metadata.Timestamp, mainPath)
	}
	if bom.SpecVersion != cdx.SpecVersion1_6 || !strings.HasPrefix(bom.SerialNumber, "urn:uuid:") {
		t.Errorf("spec %v serial %q", bom.SpecVersion, bom.SerialNumber)
	}
	again, err := sbom.FromBinary(self, sbom.Options{Version: "v1.2.3", Time: at})
	if err != nil || string(again) != string(data) {
		t.Fatal("two BOMs of one binary differ")
	}
}

func TestRefusesANonGoFile(t *testing.T) {
	f := t.TempDir() + "/script"
	os.WriteFile(f, []byte("#!/bin/sh\n"), 0o755)
	if _, err := sbom.FromBinary(f, sbom.Options{}); err == nil || !strings.Contains(err.Error(), "no Go build info") {
		t.Fatalf("err %v", err)
	}
}
