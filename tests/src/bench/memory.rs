//! Where a filter's memory goes. The load runs read Envoy's RSS with one worker, which mixes
//! two costs: what each VM of a filter holds, and what loading the module costs once per
//! process. Envoy's V8 runs with Liftoff off (proxy-wasm-cpp-host's `src/v8/v8.cc`), so every
//! function of a module is compiled by TurboFan when it loads; the compiled code stays, and so
//! does much of the compiler's freed memory, kept by Envoy's allocator (tcmalloc).
//!
//! To tell them apart, each case's Envoy is started twice, with one worker and with
//! [`WORKERS`], and sent the case's first request [`REQUESTS`] times (new connections, so the
//! workers share them); then its RSS (`VmRSS`) and live heap (tcmalloc's `allocated`, admin
//! `/memory`) are read. Each further worker holds one more VM of every wasm filter and compiles
//! nothing, so the difference between the two, beyond what the same workers add without a filter,
//! is the memory of one more VM.

use anyhow::{anyhow, bail, Context as _, Result};

use super::cases::Case;
use super::load::{envoy_config, first_request, rss_kib};
use crate::e2e::Envoy;

/// Workers of the second start: four more VMs per filter than the first, so that RSS's noise
/// between two Envoy processes (about a MiB) is shared by four.
pub const WORKERS: u32 = 5;
/// Requests sent before reading.
pub const REQUESTS: usize = 30;

/// Envoy's memory after the requests.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Footprint {
    /// `VmRSS`, KiB.
    pub rss_kib: u64,
    /// Bytes the allocator has handed out and not had back (tcmalloc `allocated`).
    pub live_bytes: u64,
}

/// A case's footprint with one worker and with [`WORKERS`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pair {
    /// `--concurrency 1`.
    pub one: Footprint,
    /// `--concurrency WORKERS`.
    pub many: Footprint,
}

/// Starts `case`'s Envoy with one worker, then with [`WORKERS`], and reads both footprints.
pub fn measure(case: &Case) -> Result<Pair> {
    Ok(Pair { one: footprint(case, 1)?, many: footprint(case, WORKERS)? })
}

fn footprint(case: &Case, workers: u32) -> Result<Footprint> {
    let config = envoy_config(case)?.concurrency(workers);
    let envoy = Envoy::start(&format!("bench-memory-{workers}"), &config)?;
    let request = first_request(&case.request);
    for _ in 0..REQUESTS {
        let response = envoy.send(&request)?;
        if response.status != 200 {
            bail!("`{}`: got {} instead of 200: {}", case.name, response.status, response.text());
        }
    }
    let rss_kib = rss_kib(envoy.pid())?;
    let memory = envoy.admin("/memory")?;
    Ok(Footprint { rss_kib, live_bytes: allocated(&memory.text())? })
}

/// tcmalloc's `allocated` from admin `/memory` (a JSON object of decimal strings).
fn allocated(body: &str) -> Result<u64> {
    let value: serde_json::Value = serde_json::from_str(body).context("admin /memory is not JSON")?;
    value["allocated"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("admin /memory has no `allocated`: {body}"))
}

/// Per further worker VM, MiB: what `WORKERS - 1` more workers added to the case, beyond what
/// they added without a filter, per worker and wasm filter. `field` picks RSS or live heap (KiB).
pub fn per_worker_vm(case: &Pair, baseline: &Pair, filters: usize, field: fn(&Footprint) -> f64) -> f64 {
    let grown = |p: &Pair| field(&p.many) - field(&p.one);
    (grown(case) - grown(baseline)) / f64::from(WORKERS - 1) / filters.max(1) as f64 / 1024.0
}

/// RSS, KiB.
pub fn rss(f: &Footprint) -> f64 {
    f.rss_kib as f64
}

/// Live heap, KiB.
pub fn live(f: &Footprint) -> f64 {
    f.live_bytes as f64 / 1024.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocated_is_read_from_envoys_memory_json() {
        let body = r#"{"allocated": "12680296", "heap_size": "41943040", "pageheap_unmapped": "0"}"#;
        assert_eq!(allocated(body).unwrap(), 12_680_296);
        assert!(allocated(r#"{"heap_size": "1"}"#).is_err());
        assert!(allocated("not json").is_err());
    }

    #[test]
    fn per_worker_vm_subtracts_what_workers_cost_without_a_filter() {
        let kib = |one, many| Pair {
            one: Footprint { rss_kib: one, live_bytes: 0 },
            many: Footprint { rss_kib: many, live_bytes: 0 },
        };
        // With no filter the further workers add 1 MiB in all; with two filters, 1 MiB more per
        // worker and filter: 1 MiB per VM.
        let more = u64::from(WORKERS - 1);
        let value = per_worker_vm(&kib(10_240, 10_240 + 1_024 + 2 * 1_024 * more), &kib(8_192, 9_216), 2, rss);
        assert!((value - 1.0).abs() < 1e-9, "{value}");
    }
}
