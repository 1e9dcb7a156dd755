##@ Local cluster: real nodes (needs root; see docs/local-cluster.md and docs/design/real-nodes.md)

.PHONY: local-up local-down local-status
local-up: realnode-up ## Start the local cluster in the background; kubeconfig in .local-real/kubeconfig.
local-down: realnode-down ## Stop the local cluster and remove what it created.
local-status: realnode-status ## Show the local cluster's nodes, pods and faults.

REALCLUSTER := $(BIN)/realcluster
REAL_STATE := $(CURDIR)/.local-real

.PHONY: realcluster
realcluster: ## Build bin/realcluster, the real-node cluster tool.
	CGO_ENABLED=0 $(GO) build -trimpath -o $(REALCLUSTER) ./hack/realcluster

.PHONY: node-assets
node-assets: ## Build kubelet and kube-proxy (beside the control plane) when missing; print their directory.
	@LICENSEHA_CACHE=$(LICENSEHA_CACHE) K8S_VERSION=$(K8S_VERSION) hack/envtest-assets.sh kubelet kube-proxy

.PHONY: realnode-up
realnode-up: deps image realcluster node-assets envtest-assets ## Start three real nodes and the control plane in the background; kubeconfig in .local-real/kubeconfig.
	@REALCLUSTER_STATE_DIR=$(REAL_STATE) $(REALCLUSTER) up --detach --k8s-bin-dir "$$(LICENSEHA_CACHE=$(LICENSEHA_CACHE) K8S_VERSION=$(K8S_VERSION) hack/envtest-assets.sh | tail -n1)"

.PHONY: realnode-down
realnode-down: realcluster ## Stop the real-node cluster and remove its processes, containers, mounts, links, rules and cgroups.
	REALCLUSTER_STATE_DIR=$(REAL_STATE) $(REALCLUSTER) down

.PHONY: realnode-status
realnode-status: realcluster ## Show the real-node cluster's nodes, pods and faults.
	@REALCLUSTER_STATE_DIR=$(REAL_STATE) $(REALCLUSTER) status

.PHONY: bench-load
bench-load: image realcluster helm ## A triad under a CPU hog (stress-ng on every core) for DURATION (30m): failovers nobody asked for, then a crash under load (root; PEER_TIMEOUT=seconds).
	hack/install-deps.sh stress-ng
	@LICENSEHA_CACHE=$(LICENSEHA_CACHE) K8S_VERSION=$(K8S_VERSION) hack/envtest-assets.sh kubelet kube-proxy >/dev/null
	$(GO) run ./hack/bench-load -duration $(or $(DURATION),30m) $(if $(PEER_TIMEOUT),-peer-timeout $(PEER_TIMEOUT))
