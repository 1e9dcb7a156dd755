# licenseha — build, generate, test.
# `make help` lists the targets.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec
.DEFAULT_GOAL := help

IMG ?= ghcr.io/licenseha/licenseha:dev
BIN := $(CURDIR)/bin
GO ?= go
# The version and git commit stamped into every binary (`<binary> --version`)
# and into the image's labels: a release passes VERSION=v<semver>.
VERSION ?= dev
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)
VERSION_LDFLAGS = -X github.com/licenseha/licenseha/internal/version.Version=$(VERSION) \
	-X github.com/licenseha/licenseha/internal/version.Revision=$(REVISION)
# Binaries built by `make build`, one per cmd/ folder.
COMMANDS := $(notdir $(wildcard cmd/*))

# Pinned tools, installed into bin/ by the targets below.
CONTROLLER_GEN_VERSION := v0.21.0
CONTROLLER_GEN := $(BIN)/controller-gen-$(CONTROLLER_GEN_VERSION)

# Real control-plane binaries (etcd, kube-apiserver, ...) are built from the Go
# module proxy into a cache outside the checkout; see hack/envtest-assets.sh.
K8S_VERSION ?= 1.36.3
LICENSEHA_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/licenseha
ENVTEST_ASSETS_DIR := $(LICENSEHA_CACHE)/k8s-$(K8S_VERSION)
KUBECTL ?= $(shell command -v kubectl 2>/dev/null || echo $(ENVTEST_ASSETS_DIR)/kubectl)

# The envtest suites skip the "benchmark" label unless asked (make bench-reconcile).
# Public keys the operator trusts for licences (make run); the default is the
# development key the samples are signed with.
TRUSTED_KEYS ?= config/samples/dev-trusted-keys.pem

GINKGO_FLAGS ?= -ginkgo.label-filter=!benchmark
TEST_TIMEOUT ?= 30m

##@ General

.PHONY: help
help: ## Show the targets and what each does.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} \
		/^[a-zA-Z0-9_-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } \
		/^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Regenerate deepcopy code for the API types.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Regenerate CRDs (config/crd/bases and the chart) and RBAC.
	$(CONTROLLER_GEN) crd rbac:roleName=licenseha-manager paths="./api/...;./controllers/..." \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	hack/sync-chart.sh

.PHONY: verify-generate
verify-generate: generate manifests ## Fail when committed generated files are stale.
	@if [ -n "$$(git status --porcelain -- api config charts)" ]; then \
		echo "Generated files are stale; run 'make generate manifests' and commit:"; \
		git status --porcelain -- api config charts; git --no-pager diff --stat -- api config charts; exit 1; fi

.PHONY: verify-imports
verify-imports: ## Fail when a package under pkg/ imports one under internal/ (pkg/ is for other programs too), or the agent links the CRD package (it reads internal/group's contract).
	@out=$$($(GO) list -f '{{.ImportPath}}: {{join .Imports " "}}' ./pkg/... | grep 'licenseha/internal/' || true); \
		if [ -n "$$out" ]; then echo "pkg/ must not import internal/:"; echo "$$out"; exit 1; fi
	@if $(GO) list -deps ./cmd/agent | grep -qx 'github.com/licenseha/licenseha/api/v1alpha1'; then \
		echo "cmd/agent must not link api/v1alpha1 (use internal/group):"; \
		$(GO) list -f '{{.ImportPath}}: {{join .Imports " "}}' -deps ./cmd/agent | grep 'licenseha/api/v1alpha1' | grep -v '^github.com/licenseha/licenseha/api/'; exit 1; fi

.PHONY: fmt
fmt: ## Format the Go code.
	$(GO) fmt ./...

.PHONY: vet
vet: ## Run go vet.
	$(GO) vet ./...

.PHONY: verify-fmt
verify-fmt: ## Fail when a Go file is not gofmt-formatted.
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "Not formatted:"; echo "$$out"; exit 1; fi

##@ Build

.PHONY: build
build: ## Build every binary into bin/ (VERSION and REVISION stamped: `bin/manager --version`).
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(VERSION_LDFLAGS)" -o $(BIN)/ $(addprefix ./cmd/,$(COMMANDS))

.PHONY: run
run: build ## Run the operator against the current kubeconfig (make install first; TRUSTED_KEYS=licence public keys).
	$(BIN)/manager --leader-elect=false --trusted-keys-file=$(TRUSTED_KEYS)

.PHONY: docker-build
docker-build: ## Build the container image (needs a Docker engine).
	docker build --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) -t $(IMG) .

##@ Cluster

.PHONY: bench-failover
bench-failover: image realcluster helm bench-leaderpair-image ## Measure client-observed failover on the local cluster: crash, graceful, switchover, failback; then crash, freeze, node failure side by side with a Deployment and a client-go leader-election pair (root; TRIALS=20, PEER_TIMEOUT=seconds, KINDS=crash,...|none, SYSTEMS=licenseha,deployment,leaderelection|none, FAULTS=crash,freeze,node, TRIAL_TIMEOUT=120s).
	@LICENSEHA_CACHE=$(LICENSEHA_CACHE) K8S_VERSION=$(K8S_VERSION) hack/envtest-assets.sh kubelet kube-proxy >/dev/null
	$(GO) run ./hack/bench-failover -trials $(or $(TRIALS),20) $(if $(PEER_TIMEOUT),-peer-timeout $(PEER_TIMEOUT)) $(if $(KINDS),-kinds $(KINDS)) \
		$(if $(SYSTEMS),-systems $(SYSTEMS)) $(if $(FAULTS),-faults $(FAULTS)) $(if $(TRIAL_TIMEOUT),-trial-timeout $(TRIAL_TIMEOUT))

# The bench's client-go leader-election sidecar (hack/bench-failover/leaderpair)
# in an image of its own, which the bench imports into the nodes: it is no
# part of the licenseha image.
.PHONY: bench-leaderpair-image
bench-leaderpair-image:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o $(BIN)/bench/leaderpair ./hack/bench-failover/leaderpair
	$(GO) run ./hack/image -bin-dir $(BIN)/bench -commands leaderpair -tag localhost/licenseha/bench-leaderpair:dev \
		-out $(BIN)/bench-leaderpair-image.tar

.PHONY: bench-api
bench-api: image realcluster helm ## Measure the API requests per steady triad and pair per minute (kube-apiserver's apiserver_request_total, baseline subtracted; root; ≈15 min).
	@LICENSEHA_CACHE=$(LICENSEHA_CACHE) K8S_VERSION=$(K8S_VERSION) hack/envtest-assets.sh kubelet kube-proxy >/dev/null
	$(GO) run ./hack/bench-api

.PHONY: deps
deps: ## Install the Debian packages the local cluster needs (iptables, iproute2, util-linux, ...), when missing.
	hack/install-deps.sh

.PHONY: bench-pair
bench-pair: ## After make demo: freeze and resume the sample pair's main while a client holds seats; print the moves (MODE=ActivePassive recreates it in that mode; root).
	$(GO) run ./hack/bench-pair -mode $(or $(MODE),ActiveActive) $(if $(TRIALS),-trials $(TRIALS))


.PHONY: demo
demo: deps build image realcluster helm ## Start the local cluster, install the operator with the chart, apply the samples, crash the active member and show the failover (root).
	$(GO) run ./hack/demo

.PHONY: install
install: ## Install the CRDs into the cluster of the current kubeconfig (the committed ones; `make verify-generate` keeps them current).
	$(KUBECTL) apply --server-side -f config/crd/bases

.PHONY: uninstall
uninstall: ## Remove the CRDs (and with them every triad and pair!) from the cluster.
	$(KUBECTL) delete --ignore-not-found -f config/crd/bases

##@ Test

.PHONY: envtest-assets
envtest-assets: ## Build etcd, kube-apiserver, kube-controller-manager when missing; print their directory.
	@LICENSEHA_CACHE=$(LICENSEHA_CACHE) K8S_VERSION=$(K8S_VERSION) hack/envtest-assets.sh

.PHONY: test
test: verify-generate verify-fmt verify-imports vet verify-chart test-unit test-integration test-manifests test-promql ## Generation checks, vet, and all tests.

.PHONY: test-unit
test-unit: ## Unit tests (no API server).
	$(GO) test -timeout $(TEST_TIMEOUT) $$($(GO) list ./... | grep -v -e /controllers -e /test/) ./test/podnet/...

.PHONY: test-promql
test-promql: ## Parse every query of the alerting rules and the Grafana dashboard; each metric must be exported (own module: test/promql).
	cd test/promql && $(GO) vet ./... && $(GO) test -count=1 ./...

.PHONY: test-integration
test-integration: ## envtest suites against a real kube-apiserver and etcd.
	assets=$$(LICENSEHA_CACHE=$(LICENSEHA_CACHE) K8S_VERSION=$(K8S_VERSION) hack/envtest-assets.sh | tail -n1); \
	KUBEBUILDER_ASSETS=$$assets $(GO) test -timeout $(TEST_TIMEOUT) ./controllers/... $(if $(GINKGO_FLAGS),-args $(GINKGO_FLAGS))

.PHONY: bench-reconcile
bench-reconcile: ## Reconcile 200 triads (TRIADS=n) on envtest; print the time, the operator's memory and its CPU at rest.
	assets=$$(LICENSEHA_CACHE=$(LICENSEHA_CACHE) K8S_VERSION=$(K8S_VERSION) hack/envtest-assets.sh | tail -n1); \
	SCALE_TRIADS=$(TRIADS) KUBEBUILDER_ASSETS=$$assets $(GO) test ./controllers/ -count=1 -v -timeout 40m -args -ginkgo.label-filter=benchmark \
		-ginkgo.focus="many triads" -ginkgo.v | grep --line-buffered -E "triads:|triads at rest|^ *after |Ran |FAIL"

.PHONY: bench-cache
bench-cache: ## Create 10,000 Secrets no group references on envtest and print the operator's heap.
	assets=$$(LICENSEHA_CACHE=$(LICENSEHA_CACHE) K8S_VERSION=$(K8S_VERSION) hack/envtest-assets.sh | tail -n1); \
	KUBEBUILDER_ASSETS=$$assets $(GO) test ./controllers/ -count=1 -v -timeout 20m -args -ginkgo.label-filter=benchmark \
		-ginkgo.focus="unrelated Secrets" | grep -E "Secrets of|Ran |FAIL"

##@ Tools

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN) ## Install the pinned controller-gen into bin/.

$(CONTROLLER_GEN):
	@mkdir -p $(BIN)
	GOBIN=$(BIN) $(GO) install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION)
	mv $(BIN)/controller-gen $(CONTROLLER_GEN)

# Further targets, one file per area (local cluster, e2e, chart, ...).
-include hack/make/*.mk
