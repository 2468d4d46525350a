# k1s: Kubernetes on one machine, in one binary.
K8S_VERSION := v1.37.2
K1S_VERSION ?= $(K8S_VERSION)+k1s
COMMIT := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
DATE := $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
VERSION_PKGS := k8s.io/component-base/version k8s.io/client-go/pkg/version
LDFLAGS := $(foreach p,$(VERSION_PKGS),-X $(p).gitVersion=$(K1S_VERSION) -X $(p).gitMajor=1 -X $(p).gitMinor=37 -X $(p).gitCommit=$(COMMIT) -X $(p).gitTreeState=clean -X $(p).buildDate=$(DATE))
GO ?= go

.PHONY: build run test test-unit test-e2e fidelity bench clean

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/k1s ./cmd/k1s

# Starts k1s in the foreground (Ctrl-C stops it); kubeconfig in ~/.k1s.
run: build
	./bin/k1s server

# The whole suite: unit tests, end-to-end tests with the real binary and
# kubectl, then the fidelity suite (skipped without root, runc or python3).
test: build test-unit test-e2e fidelity

test-unit:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /test/e2e)

test-e2e: build
	K1S_BINARY=$(CURDIR)/bin/k1s $(GO) test -count=1 -timeout 40m ./test/e2e/... $(E2E_FLAGS)

# Every source-document demo (../shared/fidelity/scenarios) on a real k1s
# server, compared with what a real Kubernetes 1.37 cluster showed
# (../shared/reference/traces); prints the table. Needs root, runc,
# busybox-static, kubectl and python3. K1S_SHARED overrides ../shared;
# FIDELITY_RUN=regexp picks scenarios; FIDELITY_OUT keeps the recordings.
fidelity: build
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o bin/k1s-app ./cmd/k1s-app
	K1S_BINARY=$(CURDIR)/bin/k1s K1S_APP_BINARY=$(CURDIR)/bin/k1s-app $(GO) test -count=1 -timeout 40m -run TestFidelity -v ./test/fidelity $(FIDELITY_FLAGS)

bench: build
	./bench/run.sh

clean:
	rm -rf bin
