// Package buildflags holds how the plugin binary is built wherever it is
// shipped or measured: the release, make build, the benchmark, the demo and
// the tests that run the binary all take its flags from here, so what is
// tested is what nodes run.
package buildflags

// Tags are the plugin's build tags. nethttpomithttp2 leaves net/http's
// bundled HTTP/2 client out: every endpoint the plugin calls (ECR, ECR
// Public, STS, SSO, IMDS, a registry the doctor probes, the API server)
// speaks HTTP/1.1, and the kubelet starts a fresh process per image, so the
// 0.36 MB of code and its init are paid on every call for nothing. The
// refresher and the node installer keep HTTP/2: client-go multiplexes its
// watches over one connection.
const Tags = "nethttpomithttp2"

// Plugin returns the go build flags of the shipped plugin, before the
// release's version and reproducibility flags: no paths of the checkout,
// no symbol table or DWARF.
func Plugin() []string {
	return []string{"-trimpath", "-tags=" + Tags, "-ldflags=-s -w"}
}
