##@ Helm chart and deployment

CHART := charts/licenseha
# Helm is built from the Go module proxy (hack/tools/helm pins it, apart from
# the main module) into bin/helm-<version>; the build is skipped when that
# file exists. To upgrade: cd hack/tools/helm && go get helm.sh/helm/v4@<version>
# && go mod tidy; the version below is read from that go.mod.
HELM_VERSION := $(shell awk '$$1 == "require" && $$2 == "helm.sh/helm/v4" {print $$3}' hack/tools/helm/go.mod)
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

# Values files the checks render besides the defaults: valid ones in the
# chart's ci/ folder (not packaged), invalid ones the schema must reject.
CHART_CI_VALUES := $(wildcard $(CHART)/ci/*-values.yaml)
CHART_INVALID_VALUES := $(wildcard test/manifests/testdata/invalid-values/*.yaml)

.PHONY: chart-lint
chart-lint: $(HELM) ## helm lint --strict and helm template, with default and with every ci/*-values.yaml.
	$(HELM) lint --strict $(CHART) $(foreach f,$(CHART_CI_VALUES),&& $(HELM) lint --strict $(CHART) -f $(f))
	$(HELM) template licenseha $(CHART) -n $(CHART_NAMESPACE) >/dev/null
	@for f in $(CHART_CI_VALUES); do echo "$(HELM) template licenseha $(CHART) -f $$f"; \
		$(HELM) template licenseha $(CHART) -n $(CHART_NAMESPACE) -f $$f >/dev/null; done

.PHONY: chart-readme
chart-readme: ## Regenerate the values table of charts/licenseha/README.md from values.yaml comments.
	$(GO) run ./hack/chart-docs -chart $(CHART)

.PHONY: verify-chart
verify-chart: chart-lint ## chart-lint, README values table up to date, schema rejects the invalid values files.
	$(GO) run ./hack/chart-docs -chart $(CHART) -check
	@# Each invalid file starts with a comment saying what is wrong; helm
	@# must refuse it with a schema (or template) error, not for another reason.
	@for f in $(CHART_INVALID_VALUES); do \
		if out=$$($(HELM) template licenseha $(CHART) -f $$f 2>&1 >/dev/null); then \
			echo "$$f: accepted, but the chart should reject it"; exit 1; fi; \
		if ! grep -q -e "values don't meet the specifications of the schema" -e 'execution error' <<<"$$out"; then \
			echo "$$f: rejected for an unexpected reason:"; echo "$$out"; exit 1; fi; \
		echo "$$f: rejected ($$(grep -m1 -e '- at ' -e 'execution error' <<<"$$out" | sed 's/^ *//'))"; \
	done

.PHONY: test-manifests
test-manifests: $(HELM) ## Chart vs. kustomize comparison and server-side dry-run of the chart on envtest (<1 min).
	assets=$$(LICENSEHA_CACHE=$(LICENSEHA_CACHE) K8S_VERSION=$(K8S_VERSION) hack/envtest-assets.sh | tail -n1); \
	HELM=$(HELM) KUBEBUILDER_ASSETS=$$assets KUBECTL=$$assets/kubectl \
		$(GO) test -count=1 -timeout 5m ./test/manifests/...

##@ Deployment (kustomize)

.PHONY: deploy
deploy: ## Install the CRDs and the operator into the current kubeconfig's cluster (kustomize, config/default).
	$(KUBECTL) apply --server-side -k config/default

.PHONY: undeploy
undeploy: ## Remove the operator (and its CRDs, with every triad and pair!) deployed by `make deploy`.
	$(KUBECTL) delete --ignore-not-found -k config/default
