##@ End-to-end tests (needs root; see docs/testing.md)

# Extra Ginkgo flags, e.g. E2E_FLAGS='-ginkgo.focus=soak' or '-ginkgo.label-filter=e2e && !soak'.
E2E_FLAGS ?=
E2E_TIMEOUT ?= 40m

# The fault suite's stand-in vendor server (test/vendorstandin) in an image of
# its own, which the suite imports into the nodes: no part of the licenseha
# image.
.PHONY: e2e-vendor-image
e2e-vendor-image:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o $(BIN)/e2e/vendorstandin ./test/vendorstandin
	$(GO) run ./hack/image -bin-dir $(BIN)/e2e -commands vendorstandin -tag localhost/licenseha/e2e-vendor:dev \
		-out $(BIN)/e2e-vendor-image.tar

.PHONY: test-e2e
test-e2e: image realcluster helm e2e-vendor-image ## End-to-end fault suite on the local cluster (instance 7; root; ≈17 minutes).
	@LICENSEHA_CACHE=$(LICENSEHA_CACHE) K8S_VERSION=$(K8S_VERSION) hack/envtest-assets.sh kubelet kube-proxy >/dev/null
	$(GO) test ./test/e2e/... -timeout $(E2E_TIMEOUT) -count=1 -v -args -ginkgo.label-filter=e2e -ginkgo.v $(E2E_FLAGS)

.PHONY: test-e2e-realnode
test-e2e-realnode: image realcluster helm ## First suite on real nodes: operator and triad from the image, container kill through the Service, clean tear-down (root; ≈3 minutes).
	@LICENSEHA_CACHE=$(LICENSEHA_CACHE) K8S_VERSION=$(K8S_VERSION) hack/envtest-assets.sh kubelet kube-proxy >/dev/null
	$(GO) test ./test/realnode/... -timeout 20m -count=1 -v -args -ginkgo.v $(E2E_FLAGS)
