//! Placeholder: the wasmtime proxy-wasm host lands here.
