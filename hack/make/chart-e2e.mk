##@ Chart end to end (needs root)

.PHONY: test-chart-e2e
test-chart-e2e: image realcluster helm ## Install the Helm chart into the local cluster (restricted Pod Security), bring a triad up through it, upgrade from the previous chart (root).
	@LICENSEHA_CACHE=$(LICENSEHA_CACHE) K8S_VERSION=$(K8S_VERSION) hack/envtest-assets.sh kubelet kube-proxy >/dev/null
	$(GO) test ./test/chart/... -count=1 -v -timeout 15m
