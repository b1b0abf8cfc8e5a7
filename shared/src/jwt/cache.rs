//! The verified-token cache: a signature is checked once per proxy, not once per request.
//!
//! Entries are keyed by SHA-256 of the token and carry the provider, the version
//! (fingerprint) of the key set that verified them and the instant they stop being valid
//! (`exp`, or a configured TTL for tokens without one). An entry is served only while all
//! three still hold, so a key rotation or an expiry is never papered over by the cache.
//!
//! Two layers, both bounded: a small LRU inside each VM ([`MemoryCache`], entries and bytes),
//! and the proxy-wide table in shared data that every worker reads. Shared data has no delete,
//! so the table is direct-mapped: [`slot_key`] sends each token to one of N fixed keys and a
//! newer entry overwrites an older one, which bounds it to N entries of at most
//! `max_entry_bytes` each. [`CacheEntry::encode`] / [`CacheEntry::decode`] are the stored form.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// SHA-256 of a token.
pub type TokenHash = [u8; 32];

/// The hash that keys a token in both caches.
pub fn token_hash(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

/// A token that verified: who verified it, with which keys, until when, and its claims.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheEntry {
    /// SHA-256 of the token (slots are shared, so the entry says whose it is).
    pub token_hash: TokenHash,
    /// The provider that verified it.
    pub provider: String,
    /// [`crate::jwt::keys::KeySet::version`] of the keys that verified it.
    pub key_set_version: u64,
    /// Unix seconds after which the entry must not be served.
    pub valid_until: u64,
    /// The token's claims.
    pub claims: Map<String, Value>,
}

const MAGIC: &[u8; 4] = b"PJC1";

impl CacheEntry {
    /// Whether the entry may answer for `hash` verified by `provider` with keys `version` at `now`.
    pub fn usable(&self, hash: &TokenHash, provider: &str, version: u64, now: u64) -> bool {
        &self.token_hash == hash
            && self.provider == provider
            && self.key_set_version == version
            && now < self.valid_until
    }

    /// The stored form: magic, hash, version, valid-until, provider, claims JSON.
    pub fn encode(&self) -> Vec<u8> {
        let claims = serde_json::to_vec(&self.claims).unwrap_or_default();
        let provider = self.provider.as_bytes();
        let provider_len = u16::try_from(provider.len()).unwrap_or(u16::MAX);
        let mut out = Vec::with_capacity(4 + 32 + 8 + 8 + 2 + provider.len() + claims.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.token_hash);
        out.extend_from_slice(&self.key_set_version.to_be_bytes());
        out.extend_from_slice(&self.valid_until.to_be_bytes());
        out.extend_from_slice(&provider_len.to_be_bytes());
        out.extend_from_slice(provider.get(..usize::from(provider_len)).unwrap_or_default());
        out.extend_from_slice(&claims);
        out
    }

    /// Reads the stored form; `None` for anything else.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let rest = bytes.strip_prefix(MAGIC)?;
        let (hash, rest) = rest.split_first_chunk::<32>()?;
        let (version, rest) = rest.split_first_chunk::<8>()?;
        let (valid_until, rest) = rest.split_first_chunk::<8>()?;
        let (provider_len, rest) = rest.split_first_chunk::<2>()?;
        let (provider, claims) = rest.split_at_checked(usize::from(u16::from_be_bytes(*provider_len)))?;
        Some(Self {
            token_hash: *hash,
            provider: String::from_utf8(provider.to_vec()).ok()?,
            key_set_version: u64::from_be_bytes(*version),
            valid_until: u64::from_be_bytes(*valid_until),
            claims: serde_json::from_slice(claims).ok()?,
        })
    }
}

/// The shared-data key of the slot that holds `hash`, among `slots` slots.
pub fn slot_key(hash: &TokenHash, slots: u32) -> String {
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash[..8]);
    format!("palisade.jwt.cache.{}", u64::from_be_bytes(first) % u64::from(slots.max(1)))
}

/// Where verified tokens are looked up and stored.
pub trait TokenCache {
    /// The entry stored for `hash`, if any (validity is the caller's check). Shared, not
    /// copied: a hit allocates nothing for the claims.
    fn lookup(&mut self, hash: &TokenHash) -> Option<Rc<CacheEntry>>;
    /// Stores an entry.
    fn store(&mut self, entry: CacheEntry);
}

/// A cache that never holds anything (caching disabled).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCache;

impl TokenCache for NoCache {
    fn lookup(&mut self, _: &TokenHash) -> Option<Rc<CacheEntry>> {
        None
    }
    fn store(&mut self, _: CacheEntry) {}
}

/// A least-recently-used cache bounded by entries and by bytes (of the stored form).
#[derive(Debug, Clone)]
pub struct MemoryCache {
    max_entries: usize,
    max_bytes: usize,
    bytes: usize,
    tick: u64,
    entries: HashMap<TokenHash, (Rc<CacheEntry>, usize, u64)>,
    order: BTreeMap<u64, TokenHash>,
}

impl MemoryCache {
    /// An empty cache holding at most `max_entries` entries and `max_bytes` bytes.
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        Self { max_entries, max_bytes, bytes: 0, tick: 0, entries: HashMap::new(), order: BTreeMap::new() }
    }

    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The bytes it holds.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn remove(&mut self, hash: &TokenHash) {
        if let Some((_, size, tick)) = self.entries.remove(hash) {
            self.bytes -= size;
            self.order.remove(&tick);
        }
    }

    /// Stores an entry whose stored form is `size` bytes.
    pub fn insert(&mut self, entry: Rc<CacheEntry>, size: usize) {
        self.remove(&entry.token_hash);
        if size > self.max_bytes || self.max_entries == 0 {
            return;
        }
        while self.entries.len() >= self.max_entries || self.bytes + size > self.max_bytes {
            let Some((_, oldest)) = self.order.pop_first() else { break };
            if let Some((_, old_size, _)) = self.entries.remove(&oldest) {
                self.bytes -= old_size;
            }
        }
        self.tick += 1;
        self.order.insert(self.tick, entry.token_hash);
        self.bytes += size;
        self.entries.insert(entry.token_hash, (entry, size, self.tick));
    }
}

impl TokenCache for MemoryCache {
    fn lookup(&mut self, hash: &TokenHash) -> Option<Rc<CacheEntry>> {
        self.tick += 1;
        let tick = self.tick;
        let (entry, _, last) = self.entries.get_mut(hash)?;
        self.order.remove(last);
        *last = tick;
        self.order.insert(tick, *hash);
        Some(Rc::clone(entry))
    }

    fn store(&mut self, entry: CacheEntry) {
        let size = entry.encode().len();
        self.insert(Rc::new(entry), size);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(token: &str, valid_until: u64) -> CacheEntry {
        CacheEntry {
            token_hash: token_hash(token),
            provider: "corp".into(),
            key_set_version: 7,
            valid_until,
            claims: json!({"sub": token}).as_object().unwrap().clone(),
        }
    }

    #[test]
    fn encodes_and_decodes() {
        let e = entry("t1", 100);
        assert_eq!(CacheEntry::decode(&e.encode()), Some(e.clone()));
        let bytes = e.encode();
        for cut in 0..bytes.len() {
            assert_eq!(CacheEntry::decode(&bytes[..cut]), None, "cut at {cut}");
        }
        assert_eq!(CacheEntry::decode(b"XXXX"), None);
    }

    #[test]
    fn usable_only_for_its_token_provider_keys_and_time() {
        let e = entry("t1", 100);
        let h = token_hash("t1");
        assert!(e.usable(&h, "corp", 7, 99));
        assert!(!e.usable(&h, "corp", 7, 100));
        assert!(!e.usable(&h, "corp", 8, 50));
        assert!(!e.usable(&h, "other", 7, 50));
        assert!(!e.usable(&token_hash("t2"), "corp", 7, 50));
    }

    #[test]
    fn lru_is_bounded_by_entries() {
        let mut cache = MemoryCache::new(2, 1 << 20);
        cache.store(entry("a", 9));
        cache.store(entry("b", 9));
        assert!(cache.lookup(&token_hash("a")).is_some());
        cache.store(entry("c", 9));
        assert!(cache.lookup(&token_hash("b")).is_none(), "b was least recently used");
        assert!(cache.lookup(&token_hash("a")).is_some());
        assert!(cache.lookup(&token_hash("c")).is_some());
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn lru_is_bounded_by_bytes() {
        let size = entry("a", 9).encode().len();
        let mut cache = MemoryCache::new(100, size * 2);
        for token in ["a", "b", "c", "d"] {
            cache.store(entry(token, 9));
        }
        assert_eq!(cache.len(), 2);
        assert!(cache.bytes() <= size * 2);
        let mut big = entry("big", 9);
        big.claims.insert("pad".into(), json!("x".repeat(size * 3)));
        cache.store(big);
        assert!(cache.lookup(&token_hash("big")).is_none(), "larger than the whole cache");
        cache.store(entry("d", 10));
        assert_eq!(cache.lookup(&token_hash("d")).map(|e| e.valid_until), Some(10), "replaced in place");
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn slots_are_stable_and_bounded() {
        let h = token_hash("t");
        assert_eq!(slot_key(&h, 16), slot_key(&h, 16));
        let distinct: std::collections::HashSet<_> =
            (0..200).map(|i| slot_key(&token_hash(&i.to_string()), 8)).collect();
        assert_eq!(distinct.len(), 8);
        assert!(slot_key(&h, 0).starts_with("palisade.jwt.cache."));
    }
}
