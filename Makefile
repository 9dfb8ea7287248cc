# Orchestrix developer targets. `make test` is what CI runs (after lint).
GO ?= go
# staticcheck's version is pinned; `make lint` installs it with go install.
STATICCHECK_VERSION ?= v0.8.2
GOBIN ?= $(shell $(GO) env GOPATH)/bin

.PHONY: test lint bench demo

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
