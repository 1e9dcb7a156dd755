##@ Release

# `make release VERSION=v0.2.0` writes every file of a release into DIST
# (hack/release): install.yaml (config/default with the release's image),
# the Helm chart with version and appVersion stamped, the kubectl plugin for
# each platform (tar.gz, zip for Windows) with its krew manifest, and
# checksums.txt. The image itself is pushed by `make image-push`.
DIST := $(CURDIR)/dist
RELEASE_BUILD_DIR := $(BIN)/release

.PHONY: release
release: $(HELM) ## Write the release's files into dist/: install.yaml, chart, plugin archives, krew manifest, checksums (VERSION=v0.2.0).
	$(GO) run ./hack/release -version "$(VERSION)" -out $(DIST) -replace -helm $(HELM) -build-dir $(RELEASE_BUILD_DIR) \
		-go $(GO) -ldflags "-s -w $(VERSION_LDFLAGS)"

.PHONY: release-push-chart
release-push-chart: $(HELM) ## Push the chart of `make release` to an OCI registry (REGISTRY=oci://registry.example.com/charts VERSION=v0.2.0; helm registry login first).
	@test -n "$(REGISTRY)" || { echo "REGISTRY is not set, e.g. make release-push-chart REGISTRY=oci://registry.example.com/charts VERSION=v0.2.0" >&2; exit 1; }
	@case "$(REGISTRY)" in oci://*) ;; *) echo "REGISTRY must start with oci://" >&2; exit 1;; esac
	@chart=$(DIST)/licenseha-$(patsubst v%,%,$(VERSION)).tgz; \
		test -f $$chart || { echo "$$chart does not exist: run make release VERSION=$(VERSION) first" >&2; exit 1; }; \
		(cd $(DIST) && grep " $$(basename $$chart)$$" checksums.txt | sha256sum --check --strict) && \
		echo "$(HELM) push $$chart $(REGISTRY)" && $(HELM) push $$chart $(REGISTRY)
