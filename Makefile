# peerdex: the two commands a newcomer needs are `make run` and `make test`.

CARGO ?= cargo
PEERDEX_DEBUG := target/debug/peerdex
PEERDEX_RELEASE := target/release/peerdex

.PHONY: all build release test lint unit bench bench-smoke clean

all: build

build:
	$(CARGO) build

release:
	$(CARGO) build --release

## make test: formatting, lints, unit, property and process tests, benchmark smoke run.
test: lint unit bench-smoke

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

unit:
	$(CARGO) test --all-targets

bench-smoke: build
	$(PEERDEX_DEBUG) bench --smoke

## make bench: the full benchmark (release build), medians and ratios against baselines.
bench: release
	$(PEERDEX_RELEASE) bench

clean:
	$(CARGO) clean
