//! Rate limiting with exact token buckets in proxy-wasm shared data.
//!
//! ```json
//! {"domain": "api", "hash_seed_env": "PALISADE_RATE_LIMIT_SEED", "trusted_proxies": 1,
//!  "limits": {
//!    "burst":  {"key": ["client_ip"], "rate": {"tokens": 20, "per": "1s"}},
//!    "hourly": {"key": ["subject"], "on_missing_key": {"fallback": ["client_ip"]},
//!               "rate": {"tokens": 100, "per": "1h"},
//!               "tiers": {"authenticated": {"tokens": 1000, "per": "1h"},
//!                         "premium": {"tokens": 10000, "per": "1h"}}}},
//!  "routes": [{"match": {"path": {"prefix": "/api/"}}, "limits": ["burst", "hourly"],
//!              "cost": {"methods": {"POST": 5}}}]}
//! ```
//!
//! Requests under `/api/` spend one token (five for a POST) from two buckets: one per client
//! IP refilling 20 per second, and one per JWT subject (client IP without a token) refilling
//! 100, 1000 or 10000 per hour by tier. When either is short, the request gets 429 with
//! `Retry-After` and `RateLimit` headers, and neither bucket is charged.
//!
//! - [`bucket`]: the integer token-bucket arithmetic, clock as a parameter.
//! - [`table`]: bounded memory, a fixed table of slots in shared data, keyed hashing.
//! - [`store`]: the get / compare-and-swap interface and an in-memory store.
//! - [`limiter`]: several limits, one request, CAS with bounded retries and refunds.
//! - [`keys`]: keys as rate-limit-service descriptors.
//! - [`headers`]: IETF `RateLimit` headers, legacy `X-RateLimit-*`, the 429 reply.
//! - [`config`] and [`policy`]: the configuration and the per-request decision.

pub mod bucket;
pub mod config;
pub mod headers;
pub mod keys;
pub mod limiter;
pub mod policy;
pub mod store;
pub mod table;

pub use config::{compile_json, RateLimitConfig};
pub use policy::{Counted, Decision, Metrics, Policy, FILTER};
pub use store::{create_missing, MemoryStore, SetError, Store, StoreError, Versioned};

#[cfg(test)]
mod tests;
