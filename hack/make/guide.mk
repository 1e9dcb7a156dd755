##@ The getting-started guide, run (needs root)

.PHONY: test-guide
test-guide: build image realcluster helm ## Run every sh block of docs/getting-started.md on a fresh local cluster (instance 4; root; ≈4 minutes).
	@LICENSEHA_CACHE=$(LICENSEHA_CACHE) K8S_VERSION=$(K8S_VERSION) hack/envtest-assets.sh kubelet kube-proxy >/dev/null
	$(GO) test ./test/guide/... -count=1 -v -timeout 30m
