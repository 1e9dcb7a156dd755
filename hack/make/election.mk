##@ Election (active-role protocol, pkg/election)

# Seeds for the deterministic simulation; the default test run uses 10000.
ELECTION_SEEDS ?= 10000
# Seeds per takeover figure in bench-election.
ELECTION_FIGURE_SEEDS ?= 2000

.PHONY: test-election
test-election: ## Election unit tests, loopback runners and the seeded simulation (ELECTION_SEEDS).
	$(GO) test -count=1 ./pkg/election
	$(GO) test -count=1 ./pkg/election/sim -args -seeds=$(ELECTION_SEEDS)

.PHONY: bench-election
bench-election: ## Print takeover figures (crash, switchover, shutdown) from the simulation.
	$(GO) test -count=1 -run 'Test(Pair)?TakeoverFigures$$' -v ./pkg/election/sim -args -figures=$(ELECTION_FIGURE_SEEDS)
