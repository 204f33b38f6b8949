# ecr-credential-provider: build, demo, tests and benchmarks.
# Every target works on a fresh Debian machine with Go; `make test` installs
# the Debian packages the kubelet end-to-end test needs when run as root.

GO          ?= go
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -s -w -X github.com/kubecred/ecr-credential-provider/internal/cli.Version=$(VERSION)
BIN         := bin/ecr-credential-provider
E2E_PACKAGES := containerd runc docker-registry apache2-utils containernetworking-plugins
# Kubelet minors the end-to-end test runs against (override: make e2e KUBELET_VERSIONS=v1.35.4).
KUBELET_VERSIONS ?= v1.37.2,v1.34.4
FUZZTIME    ?= 10s

.PHONY: all build demo test unit e2e e2e-deps fuzz bench lint clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/ecr-credential-provider
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/awsemu ./cmd/awsemu

# The plugin answering as the kubelet would ask, against the local AWS emulator.
demo:
	$(GO) run ./test/demo

# Everything: static checks, unit and binary tests, fuzz seeds, and the real-kubelet end-to-end test.
test: lint unit e2e

lint:
	@unformatted="$$(gofmt -l .)"; test -z "$$unformatted" || { echo "$$unformatted"; echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	cd test/e2e && $(GO) vet ./...

unit:
	$(GO) test -count=1 ./...

e2e: e2e-deps
	cd test/e2e && $(GO) test -count=1 -timeout 40m ./... -kubelet-versions=$(KUBELET_VERSIONS)

# Debian's containerd, runc, registry and htpasswd; installed only when missing.
e2e-deps:
	@missing=""; for p in $(E2E_PACKAGES); do \
		[ "$$(dpkg-query -W -f='$${Status}' $$p 2>/dev/null)" = "install ok installed" ] || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then echo "e2e needs:$$missing (run: sudo apt-get install -y$$missing)"; exit 1; fi; \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# Short fuzzing runs of every fuzz target (go test runs their seed corpora anyway).
fuzz:
	$(GO) test ./internal/protocol -run '^$$' -fuzz FuzzDecodeRequest -fuzztime $(FUZZTIME)
	$(GO) test ./internal/ecrhost -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME)
	$(GO) test ./internal/providerconfig -run '^$$' -fuzz FuzzURLsMatchStr -fuzztime $(FUZZTIME)
	$(GO) test ./internal/awsemu -run '^$$' -fuzz FuzzParsePolicy -fuzztime $(FUZZTIME)
	$(GO) test ./internal/awsemu -run '^$$' -fuzz FuzzWebIdentityToken -fuzztime $(FUZZTIME)

# Fresh process per call against the emulator; figures are recorded in BENCHMARKS.md.
bench:
	$(GO) run ./test/bench $(BENCHFLAGS)

clean:
	rm -rf bin
