##@ Chart end to end (needs root)

.PHONY: test-chart-e2e
test-chart-e2e: build localcluster helm ## Install the Helm chart into a local cluster (restricted Pod Security) and bring a triad up through it.
	$(GO) test ./test/chart/... -count=1 -v -timeout 15m
