# Sandcat — make targets. `make run` starts everything in one process on the
# embedded default; `make test` runs the whole test suite (PostgreSQL and Redis
# on 127.0.0.1 are needed: `.ci/run` starts them when they are not running).
GO       ?= go
BIN      ?= bin/sandcat
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
FUZZTIME ?= 20s
# Real servers for the tests (FerretDB, kfake, MinIO, Consul, Dendrite, Synapse);
# im/testsvc finds them via SANDCAT_TESTBIN, given to the test recipes only: the
# sandcat binary reads every SANDCAT_* variable as a config key and refuses others.
TESTBIN  ?= $(or $(SANDCAT_TESTBIN),$(HOME)/.cache/sandcat-testbin)
TESTENV  := SANDCAT_TESTBIN='$(TESTBIN)'

.PHONY: build run test test-short testservers synapse fuzz bench bench-load lint fmt migrate clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/sandcat

run: build
	./$(BIN) -p config.yml

# Builds the test servers from source once per machine (FerretDB, kfake,
# MinIO, Consul, Dendrite; cold: ~10-12 min on 2 cores, ~7 GB of Go caches);
# a no-op in under a second afterwards.
testservers:
	GO='$(GO)' cmd/testservers/build.sh '$(TESTBIN)'

# Debian sid's matrix-synapse in a chroot for the bridge tests (as root; ~2 min
# and 550 MB cold; a no-op warm).
synapse:
	cmd/testservers/synapse.sh '$(TESTBIN)'

# The whole suite: unit, conformance (SQLite, PostgreSQL, Redis, FerretDB,
# kfake, MinIO, Consul), HTTP, end-to-end (the Matrix bridge on Synapse and
# Dendrite) and multi-process tests, then a
# bounded fuzzing run of the frame decoder.
test: testservers synapse
	$(GO) vet ./...
	$(TESTENV) $(GO) test -count=1 -timeout 20m ./...
	$(GO) test -count=1 -run '^$$' -fuzz '^FuzzDecodeMsg$$' -fuzztime $(FUZZTIME) ./im/wire/

test-short: testservers synapse
	$(TESTENV) $(GO) test -short ./...

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeMsg$$' -fuzztime 5m ./im/wire/

# Benchmarks are never part of `make test`.
bench:
	$(TESTENV) $(GO) test -run '^$$' -bench . -benchmem ./...

# The load tool (BENCHMARKS.md): builds Centrifugo v6.9.1 once into the cache, then runs the suite.
bench-load:
	$(TESTENV) cmd/sandcat-bench/run.sh $(BENCHFLAGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

migrate: build
	./$(BIN) -p config.yml migrate

clean:
	rm -rf bin
