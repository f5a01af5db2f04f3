# peerdex: the two commands a newcomer needs are `make run` and `make test`.

SHELL := /bin/bash
CARGO ?= cargo
PEERDEX_DEBUG := target/debug/peerdex
PEERDEX_RELEASE := target/release/peerdex

.PHONY: all build release test lint unit bench bench-smoke clean help

all: build

## make help: this list of targets.
help:
	@sed -n 's/^## //p' $(MAKEFILE_LIST)

## make build / make release: the debug / release binary (target/*/peerdex).

build:
	$(CARGO) build

release:
	$(CARGO) build --release

## make test: formatting, lints, unit, property and process tests, benchmark smoke run.
test: lint bench-smoke unit

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

# Every test file runs even when one fails (--no-fail-fast); cargo's output is kept
# in TEST_OUTPUT, and the last lines of `make test` list the failed tests and the
# skipped ones. Tests that skip (a tool missing) show as "ok" in cargo's output; they
# note themselves in SKIPPED_FILE.
SKIPPED_FILE := $(CURDIR)/target/skipped-tests.txt
TEST_OUTPUT := $(CURDIR)/target/test-output.txt

unit:
	@mkdir -p target && rm -f $(SKIPPED_FILE)
	@set -o pipefail; PEERDEX_SKIPPED_FILE=$(SKIPPED_FILE) $(CARGO) test --no-fail-fast --lib --bins --tests 2>&1 \
	  | tee $(TEST_OUTPUT); status=$$?; \
	scripts/test-summary.sh $(TEST_OUTPUT) $(SKIPPED_FILE) $$status

## make bench-smoke: a tiny run of every benchmark section: checks it runs, judges no figures.
bench-smoke:
	$(CARGO) test --bench bench -- --smoke

## make bench: the full benchmark (release build), medians and ratios against
##   baselines; the tables also go to docs/PERFORMANCE.md.
bench:
	set -o pipefail; { printf '%s\n\n%s\n\n' '# peerdex performance' \
	  'The tables of the latest `make bench` (how they are measured, and what earlier runs showed: [DESIGN.md](DESIGN.md#performance)).'; \
	  $(CARGO) bench --bench bench; } | tee docs/PERFORMANCE.md.new
	mv docs/PERFORMANCE.md.new docs/PERFORMANCE.md

## make clean: remove the build.
clean:
	$(CARGO) clean

## make run: logger, time service and index server in this terminal; Ctrl+C stops all.
PORT ?= 9090
STATEMENT ?= 2024
TIME_PORT ?= 8000
LOGGER_PORT ?= 9091
HTTP_PORT ?= 8080
PROGRAM ?= 0x20000001
RUN_DIR ?= run
ADVERTISE ?=
## make run FRESH=1: the same, starting with an empty registry (see make reset).
FRESH ?=

.PHONY: run reset
run: release
	@PEERDEX=$(PEERDEX_RELEASE) PORT=$(PORT) TIME_PORT=$(TIME_PORT) LOGGER_PORT=$(LOGGER_PORT) HTTP_PORT=$(HTTP_PORT) \
	  PROGRAM=$(PROGRAM) STATEMENT=$(STATEMENT) RUN_DIR=$(RUN_DIR) ADVERTISE=$(ADVERTISE) FRESH=$(FRESH) scripts/run.sh

## make reset: empty the registry of make run (RUN_DIR's data, spool and audit log);
##   refused while a make run uses RUN_DIR.
reset:
	@mkdir -p $(RUN_DIR) && exec 9>>$(RUN_DIR)/.lock && \
	  if ! flock -n 9; then echo "make reset: RUN_DIR=$(RUN_DIR) is in use by a make run: stop it first" >&2; exit 1; fi && \
	  rm -rf $(RUN_DIR)/data $(RUN_DIR)/spool $(RUN_DIR)/audit.jsonl && \
	  echo "make reset: $(RUN_DIR) emptied: the next make run starts with an empty registry"

## make run-cluster: make run with two index servers sharing one registry in Redis
##   (redis-server, logger, time service, servers on PORT and PORT_B); Ctrl+C stops all.
PORT_B ?= 9092
HTTP_PORT_B ?= 8081
REDIS_PORT ?= 6390
CLUSTER_DIR ?= run-cluster

.PHONY: run-cluster
run-cluster: release
	@PEERDEX=$(PEERDEX_RELEASE) PORT=$(PORT) PORT_B=$(PORT_B) TIME_PORT=$(TIME_PORT) LOGGER_PORT=$(LOGGER_PORT) \
	  HTTP_PORT=$(HTTP_PORT) HTTP_PORT_B=$(HTTP_PORT_B) REDIS_PORT=$(REDIS_PORT) PROGRAM=$(PROGRAM) \
	  STATEMENT=$(STATEMENT) RUN_DIR=$(CLUSTER_DIR) ADVERTISE=$(ADVERTISE) FRESH=$(FRESH) scripts/run-cluster.sh
