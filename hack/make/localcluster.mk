##@ Local cluster (needs root; see docs/local-cluster.md)

LOCALCLUSTER := $(BIN)/localcluster
# The checkout's .local/ holds the kubeconfig, certificates, logs and pod files.
LOCAL_STATE := $(CURDIR)/.local
# Extra flags for "localcluster up", e.g. LOCALCLUSTER_FLAGS="--nodes 1 --restart-backoff 1s".
LOCALCLUSTER_FLAGS ?=

.PHONY: localcluster
localcluster: ## Build bin/localcluster, the local cluster tool.
	CGO_ENABLED=0 $(GO) build -trimpath -o $(LOCALCLUSTER) ./hack/localcluster

.PHONY: local-up local-down local-status
local-up: $(if $(filter real,$(NODES)),realnode-up,process-up) ## Start the local cluster (NODES) in the background; kubeconfig in .local-real/kubeconfig (NODES=process: .local/kubeconfig).
local-down: $(if $(filter real,$(NODES)),realnode-down,process-down) ## Stop the local cluster (NODES) and remove what it created.
local-status: $(if $(filter real,$(NODES)),realnode-status,process-status) ## Show the local cluster's nodes, pods and faults.

.PHONY: process-up
process-up: build localcluster ## Start the process-node cluster in the background; kubeconfig in .local/kubeconfig.
	@assets=$$(LICENSEHA_CACHE=$(LICENSEHA_CACHE) K8S_VERSION=$(K8S_VERSION) hack/envtest-assets.sh | tail -n1); \
	LOCALCLUSTER_STATE_DIR=$(LOCAL_STATE) $(LOCALCLUSTER) up --detach --k8s-bin-dir "$$assets" $(LOCALCLUSTER_FLAGS)

.PHONY: process-down
process-down: localcluster ## Stop the process-node cluster and remove its processes, namespaces, links and rules.
	LOCALCLUSTER_STATE_DIR=$(LOCAL_STATE) $(LOCALCLUSTER) down

.PHONY: process-status
process-status: localcluster ## Show the process-node cluster's nodes, pods and network faults.
	@LOCALCLUSTER_STATE_DIR=$(LOCAL_STATE) $(LOCALCLUSTER) status

.PHONY: test-localcluster
test-localcluster: ## Test the local cluster end to end (root; about 2 minutes).
	$(GO) test -count=1 -timeout 10m -v ./test/localcluster/...

##@ Real-node cluster (needs root; see docs/local-cluster.md and docs/design/real-nodes.md)

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
