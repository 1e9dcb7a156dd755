##@ Chart end to end (needs root)

.PHONY: test-chart-e2e
test-chart-e2e: build helm $(if $(filter real,$(NODES)),image realcluster,localcluster) ## Install the Helm chart into a local cluster (restricted Pod Security) and bring a triad up through it (NODES=real: on real nodes).
	$(if $(filter real,$(NODES)),@LICENSEHA_CACHE=$(LICENSEHA_CACHE) K8S_VERSION=$(K8S_VERSION) hack/envtest-assets.sh kubelet kube-proxy >/dev/null)
	$(if $(filter real,$(NODES)),E2E_NODES=real) $(GO) test ./test/chart/... -count=1 -v -timeout 15m
