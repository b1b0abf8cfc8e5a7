//! Palisade's core: every security decision, as plain data in and plain data out.
//!
//! Nothing here calls the proxy. A filter crate builds a [`http::RequestView`] from host
//! calls, asks a module here for a [`decision::Verdict`], and applies it. Time, randomness and
//! network results are parameters, so every rule is testable natively and under wasmtime.
#![forbid(unsafe_code)]

pub mod audit;
#[cfg(feature = "bundle")]
pub mod bundle;
#[cfg(any(feature = "encryption", feature = "validation"))]
mod byte_scan;
pub mod config;
pub mod decision;
pub mod http;
pub mod identity;
pub mod route;

#[cfg(feature = "authz")]
pub mod authz;
#[cfg(feature = "encryption")]
pub mod encryption;
#[cfg(feature = "jwt-core")]
pub mod jwt;
#[cfg(feature = "rate-limit")]
pub mod rate_limit;
#[cfg(feature = "security-headers")]
pub mod security_headers;
#[cfg(feature = "validation")]
pub mod validation;
