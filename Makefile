# Orchestrix developer targets. `make test` is what CI runs (after lint).
GO ?= go
# Kill/restart cycles of each SIGKILL crash test in `make soak`.
SOAK_CYCLES ?= 1000
# staticcheck's version is pinned; `make lint` installs it with go install.
STATICCHECK_VERSION ?= v0.8.2
GOBIN ?= $(shell $(GO) env GOPATH)/bin

.PHONY: test lint bench demo soak

test: lint
	$(GO) test -race ./...

lint:
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	GOBIN=$(GOBIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	$(GOBIN)/staticcheck ./...

bench:
	$(GO) run ./bench journal
	$(GO) test -run '^$$' -bench . -benchmem ./...

demo:
	$(GO) run ./examples/ecommerce

# Release check: the journal's and the runtime's SIGKILL crash tests for
# SOAK_CYCLES kill/restart cycles each (CI runs 20 and 10). Each prints
# its seed and its totals (cycles, acknowledged, all stored exactly once).
soak:
	$(GO) test -count=1 -timeout 0 -run '^TestJournal_Crash_AcknowledgedEventsSurviveKill$$' -v ./journal/bolt -crash.cycles=$(SOAK_CYCLES)
	$(GO) test -count=1 -timeout 0 -run '^TestRuntime_Crash_AcknowledgedCommandsSurviveKill$$' -v ./actor -runtimecrash.cycles=$(SOAK_CYCLES)
