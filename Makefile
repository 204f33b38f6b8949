# ecr-credential-provider: build, demo, tests and benchmarks.
# Every target works on a fresh Debian machine with Go; `make test` installs
# the Debian packages the kubelet end-to-end test needs when run as root.

GO          ?= go
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -s -w -X github.com/kubecred/ecr-credential-provider/internal/cli.Version=$(VERSION)
BIN         := bin/ecr-credential-provider
# The plugin's build tags, as internal/buildflags.Tags says (a test checks they agree).
PLUGIN_TAGS := nethttpomithttp2
E2E_PACKAGES := containerd runc docker-registry apache2-utils containernetworking-plugins
# The release test runs the arm64 binary under user-mode qemu.
RELEASE_PACKAGES := qemu-user-static
# Kubelet minors the end-to-end test runs against (override: make e2e KUBELET_VERSIONS=v1.35.4).
KUBELET_VERSIONS ?= v1.37.2,v1.34.4
FUZZTIME    ?= 10s
# Seconds apt-get waits for another apt/dpkg (unattended-upgrades on a fresh VM) to let go of its
# lock. apt-get update ignores DPkg::Lock::Timeout for the lists lock (apt 2.6), so it is retried.
APT_LOCK_TIMEOUT ?= 600
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all build demo test unit e2e e2e-deps fuzz bench lint clean release release-test

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -tags "$(PLUGIN_TAGS)" -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/ecr-credential-provider
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/awsemu ./cmd/awsemu
	cd refresher && CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o ../bin/ecr-pull-secrets ./cmd/ecr-pull-secrets
	cd fleet && CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o ../bin/ecr-node-installer ./cmd/ecr-node-installer

# The plugin answering as the kubelet would ask, against the local AWS emulator.
demo:
	$(GO) run ./test/demo

# Everything: static checks, unit and binary tests, fuzz seeds, and the real-kubelet end-to-end test.
test: lint unit refresher-test fleet-test release-test e2e

lint:
	@unformatted="$$(gofmt -l .)"; test -z "$$unformatted" || { echo "$$unformatted"; echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	GOOS=windows GOARCH=amd64 $(GO) vet ./...  # the released windows/amd64 binary must keep building
	$(STATICCHECK) ./...
	cd test/e2e && $(GO) vet ./...
	cd release && $(GO) vet ./...

unit:
	$(GO) test -count=1 ./...

# The refresher (ecr-pull-secrets) is its own Go module, so client-go stays out of the plugin.
.PHONY: refresher-test refresher-manifests
refresher-test:
	cd refresher && $(GO) vet ./... && $(GO) test -count=1 ./...

# Regenerates deploy/manifests/*.yaml from the Helm charts (a test checks they match).
.PHONY: manifests
manifests refresher-manifests:
	cd refresher && $(GO) run ./cmd/render-manifests

# The fleet installer (ecr-node-installer, the DaemonSet's container) is its own module too.
.PHONY: fleet-test
fleet-test:
	cd fleet && $(GO) vet ./... && $(GO) test -count=1 ./...

# -v streams progress: each kubelet build with its time, each scenario with its result.
# Node scenarios that cannot run (not root) fail the run with a list of what did not run.
e2e: e2e-deps
	cd test/e2e && $(GO) test -count=1 -timeout 40m -v . -kubelet-versions=$(KUBELET_VERSIONS)

# Debian's containerd, runc, registry and htpasswd; installed only when missing.
e2e-deps:
	@missing=""; for p in $(E2E_PACKAGES) $(RELEASE_PACKAGES); do \
		[ "$$(dpkg-query -W -f='$${Status}' $$p 2>/dev/null)" = "install ok installed" ] || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then echo "e2e needs:$$missing (run: sudo apt-get install -y$$missing)"; exit 1; fi; \
		echo "installing:$$missing"; \
		waited=0; until out="$$(apt-get -o DPkg::Lock::Timeout=$(APT_LOCK_TIMEOUT) update -qq 2>&1)"; do \
			case "$$out" in *"Could not get lock"*) [ $$waited -lt $(APT_LOCK_TIMEOUT) ] ;; *) false ;; esac || { echo "$$out"; exit 1; }; \
			echo "apt-get update: another apt process holds the lists lock; waiting"; sleep 5; waited=$$((waited + 5)); \
		done; \
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=$(APT_LOCK_TIMEOUT) install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# Short fuzzing runs of every fuzz target (go test runs their seed corpora anyway).
# Targets are listed, not named here, so a new one is never left out.
fuzz:
	@set -e; for mod in . refresher fleet; do \
		for pkg in $$(cd $$mod && $(GO) list ./...); do \
			for f in $$(cd $$mod && $(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
				echo "fuzz: $$pkg $$f"; \
				(cd $$mod && $(GO) test $$pkg -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME)); \
			done; \
		done; \
	done

# Fresh process per call against the emulator; figures are recorded in BENCHMARKS.md.
bench:
	$(GO) run ./test/bench $(BENCHFLAGS)

# dist/: static reproducible binaries, checksums, SBOMs, deb/rpm and the OCI
# image (see release/). Timestamps are the commit's (or SOURCE_DATE_EPOCH).
release:
	cd release && $(GO) run ./cmd/mkrelease -source .. -out ../dist -version "$(VERSION)"

# Makes a release in a temp dir and checks it: static, reproducible,
# checksums, SBOMs, packages (dpkg), image, arm64 under qemu, the
# windows/amd64 PE (checked, not run: no wine here).
release-test:
	cd release && $(GO) test -count=1 -timeout 45m ./...

clean:
	rm -rf bin dist
