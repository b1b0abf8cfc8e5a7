//! Remote JWKS callouts from the root context: at most one fetch per provider per proxy.
//!
//! Every VM runs this on start and on each tick. `RemoteJwks::due` says whether a fetch is
//! due; the VM then takes the lease in shared data (a CAS write, confirmed by reading it back)
//! and calls the cluster. The answer, checked to parse as a key set, becomes the new record;
//! a failure keeps the previous document (stale-if-error).

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use palisade_core::jwt::keys::{Algorithm, KeyOrigin, KeySet};
use palisade_core::jwt::remote::{
    keys_version_key, kid_miss_key, lease_key, record_key, FetchReason, JwksRecord, Lease, RemoteJwks,
};
use palisade_glue::log;
use proxy_wasm::hostcalls;
use proxy_wasm::types::LogLevel;

struct Source {
    name: String,
    remote: RemoteJwks,
    algorithms: Vec<Algorithm>,
    jitter: u64,
}

/// The fetch state of one VM.
pub struct Fetcher {
    holder: u64,
    sources: Vec<Source>,
    in_flight: HashMap<u32, (usize, FetchReason, u64)>,
}

/// A random number from the VM's WASI `random_get` (through std's hasher keys).
fn random() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u8(0);
    hasher.finish()
}

impl Fetcher {
    /// A fetcher for these remote providers.
    pub fn new(remotes: Vec<(String, RemoteJwks, Vec<Algorithm>)>) -> Self {
        let sources = remotes
            .into_iter()
            .map(|(name, remote, algorithms)| {
                let jitter = random() % remote.jitter_ms.saturating_add(1);
                Source { name, remote, algorithms, jitter }
            })
            .collect();
        Self { holder: random() | 1, sources, in_flight: HashMap::new() }
    }

    /// Starts every fetch that is due and whose lease this VM wins.
    pub fn run(&mut self, now: u64) {
        for index in 0..self.sources.len() {
            if self.in_flight.values().any(|(i, _, _)| *i == index) {
                // Renew the lease while the callout is in flight: a VM that stops ticking (Envoy's
                // configuration canary, dropped right after on_configure with its callout) lets
                // its lease lapse within LEASE_RENEW_MS instead of blocking every fetch until
                // the callout's timeout.
                if let Some(source) = self.sources.get(index) {
                    self.renew_lease(&source.name, &source.remote, now);
                }
                continue;
            }
            let Some(source) = self.sources.get(index) else { continue };
            let record = shared(&record_key(&source.name)).0.and_then(|bytes| JwksRecord::decode(&bytes));
            let kid_miss = shared(&kid_miss_key(&source.name))
                .0
                .and_then(|bytes| bytes.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes));
            let Some(reason) = source.remote.due(now, record.as_ref(), kid_miss, source.jitter) else { continue };
            if !self.take_lease(&source.name, &source.remote, now) {
                continue;
            }
            let remote = &source.remote;
            let headers = vec![
                (":method", "GET"),
                (":path", remote.path.as_str()),
                (":authority", remote.authority.as_str()),
                ("accept", "application/json"),
            ];
            match hostcalls::dispatch_http_call(
                &remote.cluster,
                headers,
                None,
                vec![],
                Duration::from_millis(remote.timeout_ms),
            ) {
                Ok(token) => {
                    self.in_flight.insert(token, (index, reason, now));
                }
                Err(status) => {
                    log(
                        LogLevel::Warn,
                        &format!("palisade jwt-authn: JWKS callout to cluster {} refused: {status:?}", remote.cluster),
                    );
                    let updated = record.unwrap_or_default().complete(reason, now, now, None);
                    let _ = hostcalls::set_shared_data(&record_key(&source.name), Some(&updated.encode()), None);
                    release(&source.name);
                }
            }
            if let Some(source) = self.sources.get_mut(index) {
                source.jitter = random() % source.remote.jitter_ms.saturating_add(1);
            }
        }
    }

    fn take_lease(&self, provider: &str, remote: &RemoteJwks, now: u64) -> bool {
        let key = lease_key(provider);
        let (bytes, cas) = shared(&key);
        let current = bytes.and_then(|b| Lease::decode(&b));
        if !Lease::may_take(current.as_ref(), self.holder, now) {
            return false;
        }
        let lease = short_lease(remote, now, self.holder);
        if hostcalls::set_shared_data(&key, Some(&lease.encode()), cas).is_err() {
            return false;
        }
        // Envoy creates a missing key whatever the CAS (notes §2.9), so the first-ever write
        // cannot be conditional: read back to learn who won. Two VMs that both saw the key
        // missing can still both win (each reads its own write back before the other's lands):
        // at most one extra fetch, only at the first start of a proxy. Every later take is a
        // true CAS.
        shared(&key).0.and_then(|b| Lease::decode(&b)).is_some_and(|l| l.holder == self.holder)
    }

    fn renew_lease(&self, provider: &str, remote: &RemoteJwks, now: u64) {
        let key = lease_key(provider);
        let (bytes, cas) = shared(&key);
        if bytes.and_then(|b| Lease::decode(&b)).is_some_and(|l| l.holder == self.holder) {
            let _ = hostcalls::set_shared_data(&key, Some(&short_lease(remote, now, self.holder).encode()), cas);
        }
    }

    /// Ends a callout: `Some(true)` when the JWKS was stored, `Some(false)` on failure, `None`
    /// when the token is not ours.
    pub fn complete(&mut self, token: u32, status: Option<&str>, body: Option<&[u8]>, now: u64) -> Option<bool> {
        let (index, reason, started) = self.in_flight.remove(&token)?;
        let source = self.sources.get(index)?;
        let document = match (status, body) {
            (Some("200"), Some(body)) => match KeySet::parse(body, &source.algorithms, KeyOrigin::Public) {
                Ok(_) => String::from_utf8(body.to_vec()).ok(),
                Err(err) => {
                    log(LogLevel::Warn, &format!("palisade jwt-authn: JWKS of {} rejected: {err}", source.name));
                    None
                }
            },
            _ => {
                log(
                    LogLevel::Warn,
                    &format!("palisade jwt-authn: JWKS fetch of {} failed (status {status:?})", source.name),
                );
                None
            }
        };
        let ok = document.is_some();
        let record =
            shared(&record_key(&source.name)).0.and_then(|bytes| JwksRecord::decode(&bytes)).unwrap_or_default();
        let updated = record.complete(reason, started, now, document);
        let _ = hostcalls::set_shared_data(&record_key(&source.name), Some(&updated.encode()), None);
        if ok {
            // After the record: a worker that sees the new version finds the new document.
            let _ = hostcalls::set_shared_data(&keys_version_key(&source.name), Some(&now.to_be_bytes()), None);
        }
        release(&source.name);
        Some(ok)
    }
}

/// How long a lease lasts without renewal: a few ticks (250 ms), bounded by the full lease.
const LEASE_RENEW_MS: u64 = 2_000;

fn short_lease(remote: &RemoteJwks, now: u64, holder: u64) -> Lease {
    let full = remote.lease(now, holder);
    Lease { holder, until_ms: full.until_ms.min(now.saturating_add(LEASE_RENEW_MS)) }
}

fn shared(key: &str) -> (Option<Vec<u8>>, Option<u32>) {
    hostcalls::get_shared_data(key).unwrap_or((None, None))
}

fn release(provider: &str) {
    let _ = hostcalls::set_shared_data(&lease_key(provider), Some(&Lease { holder: 0, until_ms: 0 }.encode()), None);
}
