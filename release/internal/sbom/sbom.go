// Package sbom writes a CycloneDX software bill of materials for a Go
// binary from the build information the Go linker embedded in it, so the
// list is of what was linked, not of what go.mod allows.
package sbom

import (
	"bytes"
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
)

// Options describe the binary beyond what its build info holds.
type Options struct {
	// Version is the release version; the build info of a binary built
	// from a checkout says only "(devel)".
	Version string
	// Time is the BOM's timestamp: the commit time, for reproducibility.
	Time time.Time
}

// FromBinary returns the CycloneDX JSON BOM of the Go binary at path: the
// main module as the described component, every linked module as a
// library, the toolchain and build settings as properties.
func FromBinary(path string, o Options) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	info, err := buildinfo.Read(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s: no Go build info: %v", path, err)
	}
	sum := sha256.Sum256(data)
	version := o.Version
	if version == "" {
		version = info.Main.Version
	}
	main := cdx.Component{
		BOMRef:     PackageURL(info.Main.Path, version),
		Type:       cdx.ComponentTypeApplication,
		Name:       info.Main.Path,
		Version:    version,
		PackageURL: PackageURL(info.Main.Path, version),
		Hashes:     &[]cdx.Hash{{Algorithm: cdx.HashAlgoSHA256, Value: hex.EncodeToString(sum[:])}},
	}
	props := []cdx.Property{{Name: "go:toolchain", Value: info.GoVersion}, {Name: "go:package", Value: info.Path}}
	for _, s := range info.Settings {
		props = append(props, cdx.Property{Name: "go:build:" + s.Key, Value: s.Value})
	}
	var libs []cdx.Component
	var refs []string
	for _, d := range info.Deps {
		m := d
		// A replaced module's code is the replacement's; name what was linked.
		if d.Replace != nil {
			m = d.Replace
		}
		// A directory replacement (the refresher's of the main module) is
		// this release's own source tree: the module at the release's
		// version, not a path relative to a checkout.
		local := d.Replace != nil && localDir(d.Replace.Path)
		if local {
			m = &debug.Module{Path: d.Path, Version: version}
		}
		c := cdx.Component{
			BOMRef:     PackageURL(m.Path, m.Version),
			Type:       cdx.ComponentTypeLibrary,
			Name:       m.Path,
			Version:    m.Version,
			PackageURL: PackageURL(m.Path, m.Version),
		}
		if m.Sum != "" {
			c.Properties = &[]cdx.Property{{Name: "go:module:sum", Value: m.Sum}}
		}
		if d.Replace != nil && !local {
			c.Pedigree = &cdx.Pedigree{Ancestors: &[]cdx.Component{{Type: cdx.ComponentTypeLibrary, Name: d.Path, Version: d.Version, PackageURL: PackageURL(d.Path, d.Version)}}}
		}
		libs = append(libs, c)
		refs = append(refs, c.BOMRef)
	}
	bom := cdx.NewBOM()
	// The serial number must differ between BOMs and be the same for the
	// same binary: derive it from the binary's hash.
	bom.SerialNumber = "urn:uuid:" + uuidFrom(sum)
	bom.Metadata = &cdx.Metadata{
		Timestamp:  o.Time.UTC().Format(time.RFC3339),
		Component:  &main,
		Properties: &props,
	}
	bom.Components = &libs
	bom.Dependencies = &[]cdx.Dependency{{Ref: main.BOMRef, Dependencies: &refs}}
	var out bytes.Buffer
	enc := cdx.NewBOMEncoder(&out, cdx.BOMFileFormatJSON)
	enc.SetPretty(true)
	if err := enc.EncodeVersion(bom, cdx.SpecVersion1_6); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// PackageURL is the purl of a Go module version.
func PackageURL(path, version string) string {
	if version == "" {
		return "pkg:golang/" + path
	}
	return "pkg:golang/" + path + "@" + version
}

// uuidFrom formats the first 16 bytes of a hash as a version 8 (custom) UUID.
func uuidFrom(sum [32]byte) string {
	b := sum[:16]
	b[6] = b[6]&0x0f | 0x80
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// localDir reports whether a replacement module path is a directory, as
// go.mod's replace directives name them: ./x, ../x or an absolute path.
func localDir(path string) bool {
	return strings.HasPrefix(path, "./") || strings.HasPrefix(path, "../") || path == "." || path == ".." || filepath.IsAbs(path)
}
