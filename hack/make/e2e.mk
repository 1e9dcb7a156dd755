##@ End-to-end tests (needs root; see docs/testing.md)

# Extra Ginkgo flags, e.g. E2E_FLAGS='-ginkgo.focus=soak' or '-ginkgo.label-filter=e2e && !soak'.
E2E_FLAGS ?=
E2E_TIMEOUT ?= 40m

.PHONY: test-e2e
test-e2e: image realcluster helm ## End-to-end fault suite on the local cluster (instance 7; root; ≈17 minutes).
	@LICENSEHA_CACHE=$(LICENSEHA_CACHE) K8S_VERSION=$(K8S_VERSION) hack/envtest-assets.sh kubelet kube-proxy >/dev/null
	$(GO) test ./test/e2e/... -timeout $(E2E_TIMEOUT) -count=1 -v -args -ginkgo.label-filter=e2e -ginkgo.v $(E2E_FLAGS)

.PHONY: test-e2e-realnode
test-e2e-realnode: image realcluster helm ## First suite on real nodes: operator and triad from the image, container kill through the Service, clean tear-down (root; ≈3 minutes).
	@LICENSEHA_CACHE=$(LICENSEHA_CACHE) K8S_VERSION=$(K8S_VERSION) hack/envtest-assets.sh kubelet kube-proxy >/dev/null
	$(GO) test ./test/realnode/... -timeout 20m -count=1 -v -args -ginkgo.v $(E2E_FLAGS)
