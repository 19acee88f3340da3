# Sluice: `make run` and `make test` are the two commands; the rest are their parts.
SHELL := /bin/bash
.DEFAULT_GOAL := help

FILTERS      := token-count prompt-template moderation key-injection model-router
FILTER_PKGS  := $(addprefix -p ,$(FILTERS))
# Not a product filter: the floor rows of `make bench` (tests/floor-filter).
BENCH_PKGS   := -p floor-filter
WASM_TARGET  := wasm32-wasip1
WASM_DIR     := target/$(WASM_TARGET)/release
VENV         := .venv
TOOLS        := .tools
PYTHON       ?= python3
# wasm-bindgen-cli must match the wasm-bindgen in Cargo.lock.
WASM_BINDGEN_VERSION := $(shell sed -n '/^name = "wasm-bindgen"$$/{n;s/^version = "\(.*\)"/\1/p}' Cargo.lock)
WBG_RUNNER   := $(TOOLS)/bin/wasm-bindgen-test-runner

.PHONY: .rust-targets help setup build wasm test lint unit-test wasm-unit-test integration-test run bench clean key-digest

help:
	@echo "make run    build everything, start Envoy with the whole chain in front of the mock provider"
	@echo "make test   fmt, clippy, unit tests (host and wasm32), wasm builds, real-Envoy integration tests"
	@echo "make bench  bare Envoy vs the chain, same run; writes bench/out/report.md"
	@echo "make setup  wasm targets, .venv (pinned Envoy + SDKs), wasm-bindgen-cli; idempotent"

# ---- setup (idempotent; a second run takes seconds) ----
setup: .rust-targets $(VENV)/.installed $(WBG_RUNNER).$(WASM_BINDGEN_VERSION)

.rust-targets:
	@rustup target list --installed | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)
	@rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

$(VENV)/.installed: tests/requirements.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	touch $@

# Not --locked: the registry mirror here lacks some of the CLI's locked dependency versions.
$(WBG_RUNNER).$(WASM_BINDGEN_VERSION):
	cargo install --quiet wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION) --root $(TOOLS)
	touch $@

# ---- build ----
wasm: .rust-targets
	cargo build --release --target $(WASM_TARGET) $(FILTER_PKGS) $(BENCH_PKGS)

build: wasm
	cargo build -p mock-provider -p sluice-harness --bins

# ---- test ----
test: setup lint unit-test wasm-unit-test build integration-test
	@echo "make test: all green"

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy --target $(WASM_TARGET) $(FILTER_PKGS) $(BENCH_PKGS) -p sluice-core -p sluice-host -- -D warnings

unit-test:
	cargo test --workspace --exclude sluice-harness
	cargo test -p sluice-harness --lib

# The shared library's tests again, compiled to wasm32 and run under Node.
wasm-unit-test: setup
	CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=$(abspath $(WBG_RUNNER)) \
	  cargo test -p sluice-core --target wasm32-unknown-unknown

integration-test: build
	cargo test -p sluice-harness --tests

# ---- the two user commands' other half ----
run: setup build
	@exec target/debug/sluice-dev run

bench: setup wasm
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	cargo build --release -p mock-provider -p sluice-harness --bins
	SLUICE_MOCK_BIN=target/release/mock-provider target/release/sluice-dev bench

clean:
	cargo clean
	rm -rf bench/out

# The SHA-256 a consumer's key_sha256 holds: make key-digest KEY=sk-...
key-digest:
	@test -n "$(KEY)" || (echo "usage: make key-digest KEY=<caller key>" >&2; exit 2)
	@printf %s "$(KEY)" | sha256sum | cut -d' ' -f1
