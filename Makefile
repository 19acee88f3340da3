# Sluice: `make run` and `make test` are the two commands; the rest are their parts.
SHELL := /bin/bash
.DEFAULT_GOAL := help

FILTERS      := token-count prompt-template moderation key-injection model-router
FILTER_PKGS  := $(addprefix -p ,$(FILTERS))
# Not a product filter: the floor rows of `make bench` (tests/floor-filter).
BENCH_PKGS   := -p floor-filter
WASM_TARGET  := wasm32-wasip1
WASM_DIR     := $(or $(CARGO_TARGET_DIR),target)/$(WASM_TARGET)/release
VENV         := .venv
TOOLS        := .tools
PYTHON       ?= python3
# wasm-bindgen-cli must match the wasm-bindgen in Cargo.lock.
WASM_BINDGEN_VERSION := $(shell sed -n '/^name = "wasm-bindgen"$$/{n;s/^version = "\(.*\)"/\1/p}' Cargo.lock)
WBG_RUNNER   := $(TOOLS)/bin/wasm-bindgen-test-runner
# OCI images of the filters (make oci): one layout per filter; TAG defaults to the workspace
# version; REGISTRY (make oci-push, make istio-manifests) is host/path, e.g.
# registry.example.com/sluice, and the images go to $(REGISTRY)/<filter>:$(TAG).
OCI_DIR      := target/oci
ISTIO_OUT    := target/istio
TAG          := $(shell sed -n '/^\[workspace.package\]/,/^\[/{s/^version = "\(.*\)"/\1/p}' Cargo.toml)
SKOPEO_FLAGS ?=
# Istio's own CRD schemas (npm @kubernetes-models/istio, pinned by its package-lock.json).
ISTIO_SCHEMA := tests/istio-schema

# The hot-swap layout (make run-ecds, make swap): resource files and builds for ECDS.
ECDS_DIR     ?= .sluice/ecds

.PHONY: .rust-targets .oci-tools .redis help setup build wasm test lint configs unit-test wasm-unit-test integration-test run run-ecds swap bench clean key-digest oci oci-push istio-manifests

help:
	@echo "make run    build everything, start Envoy with the whole chain in front of the mock provider"
	@echo "make test   fmt, clippy, unit tests (host and wasm32), wasm builds, real-Envoy integration tests"
	@echo "make bench  bare Envoy vs the chain, same run; writes bench/out/report.md"
	@echo "make run-ecds   make run in the hot-swap layout: every filter through ECDS from $(ECDS_DIR)"
	@echo "make swap FILTER=name [WASM=path] [CONFIG=path]   a new build/config into $(ECDS_DIR), atomically"
	@echo "make setup  wasm targets, .venv (pinned Envoy + SDKs), wasm-bindgen-cli, skopeo and"
	@echo "            docker-registry and redis-server (apt), Istio's schemas (npm ci in $(ISTIO_SCHEMA)); idempotent"
	@echo "make oci    every filter as OCI image layouts in $(OCI_DIR)/<filter> (tags $(TAG), $(TAG)-artifact)"
	@echo "make oci-push REGISTRY=host/path [TAG=...] [SKOPEO_FLAGS=...]   push them, render the Istio manifests"
	@echo "make istio-manifests REGISTRY=host/path [TAG=...]   examples/istio rendered into $(ISTIO_OUT)"
	@echo "make configs   rewrite the configs made from envoy/sluice.yaml (after changing it; a test checks them)"

# ---- setup (idempotent; a second run takes seconds) ----
setup: .rust-targets $(VENV)/.installed $(WBG_RUNNER).$(WASM_BINDGEN_VERSION) .oci-tools .redis $(ISTIO_SCHEMA)/node_modules/.installed

.rust-targets:
	@rustup target list --installed | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)
	@rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

$(VENV)/.installed: tests/requirements.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	touch $@

# skopeo pushes and pulls the images; the OCI test starts Debian's docker-registry on 127.0.0.1.
.oci-tools:
	@command -v skopeo >/dev/null && command -v docker-registry >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq skopeo docker-registry)

# The global-limits test (tests/global_limits.rs) starts Debian's redis-server on 127.0.0.1 for
# tools/sluice-ratelimit's counters, and reads them back with redis-cli.
.redis:
	@command -v redis-server >/dev/null && command -v redis-cli >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server)

$(ISTIO_SCHEMA)/node_modules/.installed: $(ISTIO_SCHEMA)/package-lock.json
	cd $(ISTIO_SCHEMA) && npm ci --silent --no-audit --no-fund
	touch $@

# Not --locked: the registry mirror here lacks some of the CLI's locked dependency versions.
# opt-level 1: measured on 2 cores, 217 s of CPU to build against 327 s at the default 3, and
# the runner then takes the same time over the wasm32 tests (14 s of CPU either way).
$(WBG_RUNNER).$(WASM_BINDGEN_VERSION):
	CARGO_PROFILE_RELEASE_OPT_LEVEL=1 \
	  cargo install --quiet wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION) --root $(TOOLS)
	touch $@

# ---- build ----
# prompt-template in a cargo invocation of its own: its sluice-core has the `splice` feature
# (serde_json's `raw_value`), and one invocation unifies features across all its packages, so
# built beside it every module would carry raw_value's code (token-count 3 KB: over 2 MiB).
#
# Then each filter's module loses the exports of the SDK callbacks it names as unused
# (`sluice_host::unused_callbacks!`, tools/sluice-trim): Envoy skips a callback a module does
# not export, one Wasm entry fewer per request each. The bench's floor filter keeps the SDK's
# exports; its copy floor_filter_lean.wasm loses the same two as the filters (the rows standing
# for one filter's own calls run it).
wasm: .rust-targets
	cargo build --release --target $(WASM_TARGET) -p prompt-template
	cargo build --release --target $(WASM_TARGET) $(addprefix -p ,$(filter-out prompt-template,$(FILTERS))) $(BENCH_PKGS)
	cp $(WASM_DIR)/floor_filter.wasm $(WASM_DIR)/floor_filter_lean.wasm
	cargo run --quiet -p sluice-trim -- $(patsubst %,$(WASM_DIR)/%.wasm,$(subst -,_,$(FILTERS)) floor_filter_lean)

build: wasm
	cargo build -p mock-provider -p sluice-ratelimit -p sluice-harness --bins

# The configs made from envoy/sluice.yaml: envoy/alone/*.yaml, envoy/sluice-ecds.yaml and
# envoy/sluice-ratelimit.yaml (the chain plus the global limit's parts, kept in
# tests/harness/src/global_limits.rs) below their header comments, and the local_reply_config
# mappers of envoy/bare.yaml, envoy/own-envoy.yaml and examples/istio/sluice-local-replies.yaml
# (tests/harness/src/configs.rs). Run it after changing sluice.yaml or those parts;
# tests/configs.rs fails while one differs from what it writes.
configs:
	@cargo run --quiet -p sluice-harness --bin sluice-dev -- configs

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
	  cargo test -p sluice-core --features splice --target wasm32-unknown-unknown

# cargo-nextest, when installed, runs the tests of every binary side by side (measured: the
# suite's tests add up to about 760 s on 2 threads; `cargo test` runs one binary after the other
# and leaves a thread idle while a binary's last long test runs). Plain `cargo test` otherwise.
integration-test: build
	@if cargo nextest --version >/dev/null 2>&1; then \
	  echo "cargo nextest run -p sluice-harness --tests"; \
	  cargo nextest run -p sluice-harness --tests --no-fail-fast; \
	else \
	  echo "cargo test -p sluice-harness --tests (cargo-nextest not installed)"; \
	  cargo test -p sluice-harness --tests --no-fail-fast; \
	fi

# ---- the two user commands' other half ----
run: setup build
	@exec target/debug/sluice-dev run

# The same in the hot-swap layout (envoy/sluice-ecds.yaml); its directory is filled afresh.
run-ecds: setup build
	@SLUICE_ECDS_DIR=$(ECDS_DIR) exec target/debug/sluice-dev run --ecds

# A filter's new build and/or config into the running layout: FILTER is token-count,
# prompt-template, moderation, model-router, key-injection (the build of both roles), or
# key-injection.authenticate / key-injection.inject (a role's config). Without WASM and CONFIG,
# the filter's current build in $(WASM_DIR) (make wasm) goes in.
swap:
	@test -n "$(FILTER)" || (echo "usage: make swap FILTER=name [WASM=path] [CONFIG=path] [ECDS_DIR=$(ECDS_DIR)]" >&2; exit 2)
	@cargo run --quiet -p sluice-harness --bin sluice-dev -- swap --dir "$(ECDS_DIR)" --filter "$(FILTER)" \
	  $(if $(WASM),--wasm "$(WASM)") $(if $(CONFIG),--config "$(CONFIG)")

bench: setup wasm
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	cargo build --release -p mock-provider -p sluice-harness --bins
	SLUICE_MOCK_BIN=target/release/mock-provider target/release/sluice-dev bench

clean:
	cargo clean
	rm -rf bench/out

# ---- OCI images and the Istio manifests (no Docker; reproducible: same .wasm, same digests) ----
oci: wasm
	cargo run --quiet -p sluice-oci -- build --out $(OCI_DIR) --tag $(TAG)

oci-push: oci .oci-tools
	@test -n "$(REGISTRY)" || (echo "usage: make oci-push REGISTRY=host/path [TAG=...] [SKOPEO_FLAGS=--dest-tls-verify=false]" >&2; exit 2)
	set -e; for f in $(FILTERS); do for t in $(TAG) $(TAG)-artifact; do \
	  skopeo copy --quiet $(SKOPEO_FLAGS) oci:$(OCI_DIR)/$$f:$$t docker://$(REGISTRY)/$$f:$$t; \
	  echo "pushed $(REGISTRY)/$$f:$$t"; done; done
	$(MAKE) --no-print-directory istio-manifests

istio-manifests: oci
	@test -n "$(REGISTRY)" || (echo "usage: make istio-manifests REGISTRY=host/path [TAG=...]" >&2; exit 2)
	cargo run --quiet -p sluice-oci -- render --oci $(OCI_DIR) --registry $(REGISTRY) --tag $(TAG) \
	  --templates examples/istio --out $(ISTIO_OUT)

# The SHA-256 a consumer's key_sha256 holds: make key-digest KEY=sk-...
key-digest:
	@test -n "$(KEY)" || (echo "usage: make key-digest KEY=<caller key>" >&2; exit 2)
	@printf %s "$(KEY)" | sha256sum | cut -d' ' -f1
