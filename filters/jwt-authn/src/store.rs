//! Key sets and verified tokens kept per VM, backed by shared data (one copy per proxy).
//!
//! Shared-data keys (see `palisade_core::jwt::remote` and `palisade_core::jwt::cache`):
//! `palisade.jwt.jwks.<provider>` the last good JWKS and fetch bookkeeping,
//! `palisade.jwt.jwksver.<provider>` whose CAS moves with each new document,
//! `palisade.jwt.lease.<provider>` who fetches, `palisade.jwt.kidmiss.<provider>` the latest
//! kid-miss request, `palisade.jwt.cache.<slot>` verified tokens.

use std::collections::HashMap;
use std::rc::Rc;

use palisade_core::jwt::cache::{slot_key, CacheEntry, MemoryCache, ReadyEntry, TokenCache, TokenHash};
use palisade_core::jwt::config::CacheConfig;
use palisade_core::jwt::keys::{Algorithm, KeyOrigin, KeySet};
use palisade_core::jwt::remote::{keys_version_key, kid_miss_key, record_key, JwksRecord};
use palisade_core::jwt::KeyStore;
use proxy_wasm::hostcalls;

struct ProviderKeys {
    algorithms: Vec<Algorithm>,
    /// CAS of the keys-version key when `set` was read.
    version: Option<u32>,
    set: Option<KeySet>,
}

/// The parsed key sets of remote providers in this VM, reloaded when shared data changes.
pub struct VmKeys {
    providers: HashMap<String, ProviderKeys>,
}

impl VmKeys {
    /// Keys for these remote providers and their algorithm allow-lists.
    pub fn new(providers: Vec<(String, Vec<Algorithm>)>) -> Self {
        Self {
            providers: providers
                .into_iter()
                .map(|(name, algorithms)| (name, ProviderKeys { algorithms, version: None, set: None }))
                .collect(),
        }
    }
}

impl KeyStore for VmKeys {
    /// One small shared-data read per call; the record is re-read and parsed only when a new
    /// document was stored (or, while this VM has no keys, on each call: a record written
    /// before the version key existed still serves).
    fn key_set(&mut self, provider: &str) -> Option<&KeySet> {
        let entry = self.providers.get_mut(provider)?;
        let version = hostcalls::get_shared_data(&keys_version_key(provider)).ok().and_then(|(_, cas)| cas);
        let stale = match version {
            Some(_) => version != entry.version,
            None => entry.set.is_none(),
        };
        if stale {
            if let Ok((Some(bytes), _)) = hostcalls::get_shared_data(&record_key(provider)) {
                let parsed = JwksRecord::decode(&bytes)
                    .and_then(|record| record.jwks)
                    .and_then(|jwks| KeySet::parse(jwks.as_bytes(), &entry.algorithms, KeyOrigin::Public).ok());
                if let Some(set) = parsed {
                    entry.set = Some(set);
                    entry.version = version;
                }
            }
        }
        entry.set.as_ref()
    }
}

/// Asks the fetching root context for a refetch of `provider`'s JWKS.
pub fn request_kid_miss_refetch(provider: &str, now_ms: u64) {
    let _ = hostcalls::set_shared_data(&kid_miss_key(provider), Some(&now_ms.to_be_bytes()), None);
}

/// The verified-token cache: a per-VM LRU in front of the proxy-wide slots in shared data.
pub struct SharedCache {
    memory: MemoryCache,
    slots: u32,
    max_entry_bytes: usize,
}

impl SharedCache {
    /// A cache sized by the config.
    pub fn new(config: &CacheConfig) -> Self {
        Self {
            memory: MemoryCache::new(config.max_entries, config.max_bytes),
            slots: if config.enabled { config.shared_slots } else { 0 },
            max_entry_bytes: config.max_entry_bytes,
        }
    }
}

impl TokenCache for SharedCache {
    fn lookup(&mut self, token: &str) -> Option<Rc<ReadyEntry>> {
        self.memory.lookup(token)
    }

    fn lookup_stored(&mut self, hash: &TokenHash) -> Option<CacheEntry> {
        if self.slots == 0 {
            return None;
        }
        let (bytes, _) = hostcalls::get_shared_data(&slot_key(hash, self.slots)).ok()?;
        CacheEntry::decode(&bytes?).filter(|entry| &entry.token_hash == hash)
    }

    fn store(&mut self, token: &str, ready: Rc<ReadyEntry>, stored: Option<&CacheEntry>) {
        if let Some(entry) = stored {
            let bytes = entry.encode();
            if bytes.len() > self.max_entry_bytes {
                return;
            }
            if self.slots > 0 {
                let _ = hostcalls::set_shared_data(&slot_key(&entry.token_hash, self.slots), Some(&bytes), None);
            }
        }
        self.memory.insert(token, ready);
    }
}
