##@ Local cluster (needs root; see docs/local-cluster.md)

LOCALCLUSTER := $(BIN)/localcluster
# The checkout's .local/ holds the kubeconfig, certificates, logs and pod files.
LOCAL_STATE := $(CURDIR)/.local
# Extra flags for "localcluster up", e.g. LOCALCLUSTER_FLAGS="--nodes 1 --restart-backoff 1s".
LOCALCLUSTER_FLAGS ?=

.PHONY: localcluster
localcluster: ## Build bin/localcluster, the local cluster tool.
	CGO_ENABLED=0 $(GO) build -trimpath -o $(LOCALCLUSTER) ./hack/localcluster

.PHONY: local-up
local-up: build localcluster ## Start the local cluster in the background; kubeconfig in .local/kubeconfig.
	@assets=$$(LICENSEHA_CACHE=$(LICENSEHA_CACHE) K8S_VERSION=$(K8S_VERSION) hack/envtest-assets.sh | tail -n1); \
	LOCALCLUSTER_STATE_DIR=$(LOCAL_STATE) $(LOCALCLUSTER) up --detach --k8s-bin-dir "$$assets" $(LOCALCLUSTER_FLAGS)

.PHONY: local-down
local-down: localcluster ## Stop the local cluster and remove its processes, namespaces, links and rules.
	LOCALCLUSTER_STATE_DIR=$(LOCAL_STATE) $(LOCALCLUSTER) down

.PHONY: local-status
local-status: localcluster ## Show the local cluster's nodes, pods and network faults.
	@LOCALCLUSTER_STATE_DIR=$(LOCAL_STATE) $(LOCALCLUSTER) status

.PHONY: test-localcluster
test-localcluster: ## Test the local cluster end to end (root; about 2 minutes).
	$(GO) test -count=1 -timeout 10m -v ./test/localcluster/...
