##@ Helm chart and deployment

CHART := charts/licenseha
# Helm is built from the Go module proxy (hack/tools/helm pins it, apart from
# the main module) into bin/helm-<version>; the build is skipped when that
# file exists. Keep HELM_VERSION equal to the version in hack/tools/helm/go.mod.
HELM_VERSION := v4.3.1
HELM := $(BIN)/helm-$(HELM_VERSION)
# Namespace the chart is rendered into by the checks below.
CHART_NAMESPACE ?= licenseha-system

.PHONY: helm
helm: $(HELM) ## Build Helm (pinned in hack/tools/helm) into bin/ unless already there.

$(HELM):
	@mkdir -p $(BIN)
	cd hack/tools/helm && CGO_ENABLED=0 $(GO) build -trimpath \
		-ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$(HELM_VERSION) -X helm.sh/helm/v4/internal/version.gitTreeState=clean" \
		-o $(HELM).tmp helm.sh/helm/v4/cmd/helm
	mv $(HELM).tmp $(HELM)
	ln -sf $(notdir $(HELM)) $(BIN)/helm
