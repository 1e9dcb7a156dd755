##@ License server

# Duration of each fuzz target and of each benchmark.
FUZZTIME ?= 10s
BENCHTIME ?= 2s

.PHONY: fuzz
fuzz: ## Run every licence, snapshot, role request and client API fuzz target for FUZZTIME each (default 10s).
	$(GO) test -run '^$$' -fuzz '^FuzzVerify$$' -fuzztime $(FUZZTIME) ./pkg/licensing/
	$(GO) test -run '^$$' -fuzz '^FuzzImportSnapshot$$' -fuzztime $(FUZZTIME) ./pkg/server/
	$(GO) test -run '^$$' -fuzz '^FuzzRoleRequests$$' -fuzztime $(FUZZTIME) ./pkg/server/
	$(GO) test -run '^$$' -fuzz '^FuzzClientAPI$$' -fuzztime $(FUZZTIME) ./pkg/server/

.PHONY: bench-server
bench-server: ## Benchmark checkouts+heartbeats over loopback HTTP and snapshot export/import of 10,000 checkouts.
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) ./pkg/server/

.PHONY: test-server
test-server: ## Test the licensing, server and client packages and their commands.
	$(GO) test ./pkg/licensing/... ./pkg/server/... ./pkg/boottime/... ./pkg/client/... ./cmd/license-server/... ./cmd/kubectl-licenseha/...
