// Package e2e proves the plugin on real Kubernetes code: node scenarios run
// a kubelet built from k8s.io/kubernetes against containerd, runc and a
// private registry that only a token fetched by our plugin (from the AWS
// emulator, through the real SDK) opens; a library-level test runs the
// binary through the kubelet's credential provider package; and a
// differential test checks our matchImages matcher against the kubelet's.
//
// It is a module of its own so k8s.io/kubernetes never enters the main
// module. Run it with test/e2e/run.sh or `go test ./...` in this directory
// as root; see run.sh for the knobs.
package e2e
