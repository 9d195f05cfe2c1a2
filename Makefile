# Nestbox. `make run` and `make test` set up what they need on a fresh Debian
# machine (as root) and must never rely on anything installed by hand.

GO        ?= go
BIN       := $(CURDIR)/bin
GOFLAGS   := -buildvcs=false
export GOFLAGS

PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_CONNECT_VERSION := v1.21.1
E2B_TEST_DIR               := test/e2b
# gVisor is built from source at a pinned version: Debian's runsc is too old
# (no systrap). It must be static: its gofer re-executes itself after
# pivot_root, where no dynamic loader exists.
RUNSC_VERSION              := v0.0.0-20260905035102-160fafc42237
RUNSC                      := $(BIN)/runsc-$(RUNSC_VERSION)

.PHONY: all build envd nestbox runsc run test test-go test-deps bench lint proto clean

all: build

build: envd nestbox runsc

# nestbox needs no cgo (SQLite is pure Go). It is built with the flags of
# envd and runsc so that the three share the standard library and common
# packages in the Go build cache: with cgo on, a fresh machine compiled
# them twice.
nestbox:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(BIN)/nestbox ./cmd/nestbox

runsc: $(RUNSC)

$(RUNSC):
	@mkdir -p $(BIN)/.runsc-build
	@echo "building gVisor runsc $(RUNSC_VERSION) (static, about 2 minutes on 2 cores)"
	CGO_ENABLED=0 GOBIN=$(BIN)/.runsc-build $(GO) install -trimpath -ldflags='-s -w' gvisor.dev/gvisor/runsc@$(RUNSC_VERSION)
	@if ldd $(BIN)/.runsc-build/runsc >/dev/null 2>&1; then echo "runsc is dynamically linked" >&2; exit 1; fi
	mv $(BIN)/.runsc-build/runsc $@
	ln -sf $(notdir $@) $(BIN)/runsc

# envd runs inside sandboxes whose rootfs may have no dynamic loader: it must
# be static, and the build fails if it is not.
envd:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(BIN)/envd ./cmd/envd
	@if ldd $(BIN)/envd >/dev/null 2>&1; then echo "bin/envd is dynamically linked" >&2; exit 1; fi
	@echo "built bin/envd (static, $$(du -h $(BIN)/envd | cut -f1))"

# `make run` installs what the platform needs, builds it (runsc in parallel
# with envd and nestbox), links /usr/local/bin/nestbox to bin/nestbox and
# starts the whole platform on this machine: `nestbox up` (API on
# 127.0.0.1:8080, state in /var/lib/nestbox; set NESTBOX_LISTEN /
# NESTBOX_DATA_DIR to change). It prints a line per phase; the build output
# is in bin/logs/. The first start builds the minimal template before
# serving and base in the background.
run:
	@BIN=$(BIN) RUNSC=$(RUNSC) MAKE="$(MAKE) --no-print-directory" scripts/run.sh

# What `nestbox up` needs on a fresh Debian machine.
.PHONY: run-deps
run-deps:
	@scripts/ensure-packages.sh

# Prerequisites of the test suite: Debian packages, the PostgreSQL and Redis
# servers the tests use (private instances, started here), the pinned E2B SDK
# and a local `user` account (E2B's default sandbox user).
test-deps: test-user
	@scripts/ensure-packages.sh test
	@scripts/test-services.sh
	@if [ ! -d $(E2B_TEST_DIR)/node_modules ] || [ $(E2B_TEST_DIR)/package-lock.json -nt $(E2B_TEST_DIR)/node_modules ]; then \
		echo "installing the pinned E2B SDK for compatibility tests"; \
		npm ci --prefix $(E2B_TEST_DIR) --no-audit --no-fund --loglevel=error; \
	fi

.PHONY: test-user
test-user:
	@id user >/dev/null 2>&1 || { echo "creating local account 'user'"; useradd -m -s /bin/bash user; }

test: test-deps lint envd nestbox runsc test-go

# The servers scripts/test-services.sh starts; a developer may point the
# tests at others with the same variables.
NESTBOX_TEST_POSTGRES_URL ?= postgres://postgres@127.0.0.1:55432/postgres?sslmode=disable
NESTBOX_TEST_REDIS_URL    ?= redis://127.0.0.1:56379/0
export NESTBOX_TEST_POSTGRES_URL NESTBOX_TEST_REDIS_URL

# scripts/clean-home.sh: root's login shells in tests read Debian's default
# startup files, not the machine's (see the script).
test-go:
	scripts/clean-home.sh $(GO) test -race -count=1 -timeout 30m ./...

# The long no-data-loss run of issue 11: SOAK_CYCLES pause/resume cycles of
# one capsule that writes files, holds a memory pattern and runs a counter,
# every one checked (about 15 minutes for 1000 on 2 cores). make test runs
# 200 of them.
SOAK_CYCLES ?= 1000
.PHONY: soak
soak: test-deps envd nestbox runsc
	NESTBOX_SOAK_CYCLES=$(SOAK_CYCLES) scripts/clean-home.sh $(GO) test -count=1 -timeout 120m -run '^TestPauseSoak$$' -v ./internal/agent/

bench: test-deps envd nestbox runsc
	@scripts/clean-home.sh scripts/bench.sh

# The density run of issue 15: N idle base capsules created in steps of
# STEP, a row per step (create p50/p99 and rate, idle CPU, MemAvailable,
# RSS/PSS per capsule by process), then all destroyed and the host checked.
# About 18 MiB of host memory per capsule; not part of make bench or CI
# (make bench runs it with N=20). docs/benchmarks.md records the runs. An
# idle capsule is ~22.5 host threads and the agent caps its sandboxes at
# three quarters of min(pid_max, threads-max): with Debian's pid_max of
# 32768 about 1000 fit, so the run raises kernel.pid_max to 4194304 first,
# as docs/fleet.md asks of a host meant for many capsules.
N ?= 1000
STEP ?= 50
.PHONY: bench-density
bench-density: test-deps envd nestbox runsc
	@[ "$$(cat /proc/sys/kernel/pid_max)" -ge 4194304 ] || sysctl -q -w kernel.pid_max=4194304
	NESTBOX_DENSITY_N=$(N) NESTBOX_DENSITY_STEP=$(STEP) scripts/clean-home.sh $(GO) test -run '^$$' -bench '^BenchmarkDensity$$' -benchtime 1x -count 1 -timeout 180m ./internal/agent/

lint:
	@out=$$(gofmt -l *.go cmd internal); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Regenerates internal/proto from proto/. The output is committed.
proto:
	@command -v protoc >/dev/null || { apt-get update -qq && apt-get install -y -qq protobuf-compiler; }
	@mkdir -p $(BIN)
	GOBIN=$(BIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	GOBIN=$(BIN) $(GO) install connectrpc.com/connect/cmd/protoc-gen-connect-go@$(PROTOC_GEN_CONNECT_VERSION)
	PATH=$(BIN):$$PATH protoc -I proto \
		--go_out=. --go_opt=module=nestbox.dev \
		--connect-go_out=. --connect-go_opt=module=nestbox.dev \
		$$(find proto -name '*.proto' | sort)

clean:
	rm -rf $(BIN)
