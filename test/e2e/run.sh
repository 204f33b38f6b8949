#!/usr/bin/env bash
# Runs the end-to-end tests: the plugin under a real kubelet (built from
# k8s.io/kubernetes and cached outside the checkout), the kubelet's own
# credential provider code, and the matchImages differential test.
#
# Needs root and: apt-get install -y containerd runc docker-registry apache2-utils containernetworking-plugins
# (the tests fail, naming that command, if a program is missing; run as non-root,
# the node scenarios skip and the run fails, listing them).
#
# Knobs (environment):
#   E2E_KUBELET_VERSIONS=v1.37.2,v1.34.4   kubelets to run the node scenarios on (default: both)
#   E2E_CACHE_DIR=DIR                      where built kubelets are kept
#                                          (default ${XDG_CACHE_HOME:-$HOME/.cache}/ecr-credential-provider-e2e)
#   E2E_DISABLE=1                          skip everything that runs the plugin (matcher test still runs)
#   E2E_VERBOSE=1                          go test -v
# Extra arguments go to go test, e.g. ./run.sh -run TestKubeletKeyring
set -euo pipefail
cd "$(dirname "$0")"
args=(-count=1 -timeout 45m)
if [[ "${E2E_VERBOSE:-}" == 1 ]]; then
	args+=(-v)
fi
# -mod=mod: the main module (replaced by ../..) may have gained a dependency
# since go.sum here was last tidied; resolve it instead of failing.
exec env GOWORK=off GOFLAGS=-mod=mod go test "${args[@]}" "$@" ./...
