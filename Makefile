# Orchestrix developer targets. `make test` is what CI runs (after lint).
GO ?= go

.PHONY: test lint bench demo

test: lint
	$(GO) test -race ./...

lint:
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

bench:
	$(GO) run ./bench journal
	$(GO) test -run '^$$' -bench . -benchmem ./...

demo:
	$(GO) run ./examples/ecommerce
