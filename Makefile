# Sandcat — make targets. `make run` starts everything in one process on the
# embedded default; `make test` runs the whole test suite (PostgreSQL and Redis
# on 127.0.0.1 are needed: `.ci/run` starts them when they are not running).
GO       ?= go
BIN      ?= bin/sandcat
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
FUZZTIME ?= 20s

.PHONY: build run test test-short fuzz bench lint fmt migrate clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/sandcat

run: build
	./$(BIN) -p config.yml

# The whole suite: unit, conformance (SQLite and PostgreSQL), HTTP and
# end-to-end tests, then a bounded fuzzing run of the frame decoder.
test:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...
	$(GO) test -count=1 -run '^$$' -fuzz '^FuzzDecodeMsg$$' -fuzztime $(FUZZTIME) ./im/wire/

test-short:
	$(GO) test -short ./...

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeMsg$$' -fuzztime 5m ./im/wire/

# Benchmarks are never part of `make test`.
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

migrate: build
	./$(BIN) -p config.yml migrate

clean:
	rm -rf bin
