//! Every integration test of palisade-tests in one binary: the wasmtime host tests (`host_*`),
//! the end-to-end tests on real Envoy (`e2e_*`, `demo`), and the Envoy and Istio config checks.
//!
//! One binary, not one per file: each test binary links wasmtime and cranelift, so 23 of them
//! cost 23 links and gigabytes of disk; one shares the link and the compiled-module cache.
//! Run one file's tests with a filter: `cargo test -p palisade-tests --test integration host_authz::`.

mod common {
    pub mod security_headers_cases;
}

mod demo;
mod e2e_authz;
mod e2e_authz_reroute;
mod e2e_field_encryption;
mod e2e_gateway;
mod e2e_jwt_authn;
mod e2e_mtls;
mod e2e_rate_limit;
mod e2e_request_validation;
mod e2e_runner;
mod e2e_security_headers;
mod envoy_configs;
mod host_abi;
mod host_authz;
mod host_field_encryption;
mod host_fuel;
mod host_gateway;
mod host_jwt_authn;
mod host_rate_limit;
mod host_request_validation;
mod host_request_validation_cost;
mod host_security_headers;
mod istio;
