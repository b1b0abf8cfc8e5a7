//! The verified-token cache: a signature is checked once per proxy, not once per request.
//!
//! An entry carries the provider, the version (fingerprint) of the key set and claim rules
//! that verified the token, and the instant it stops being valid (`exp`, or a configured TTL
//! for tokens without one). It is served only while all three still hold, so a key rotation or
//! an expiry is never papered over by the cache.
//!
//! Two layers, both bounded. Each VM keeps a small LRU ([`MemoryCache`], entries and bytes)
//! keyed by the token itself, whose [`ReadyEntry`] holds what the request needs already made
//! (the identity with its filter-state JSON, the claim headers): a hit compares the token and
//! clones an [`Rc`], with no hashing of the token by SHA-256 and no JSON work. Behind it, the
//! proxy-wide table in shared data that every worker reads holds [`CacheEntry`]s keyed by
//! SHA-256 of the token (tokens are not written there in clear). Shared data has no delete, so
//! the table is direct-mapped: [`slot_key`] sends each token to one of N fixed keys and a newer
//! entry overwrites an older one, which bounds it to N entries of at most `max_entry_bytes`
//! each. [`CacheEntry::encode`] / [`CacheEntry::decode`] are the stored form.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::rc::Rc;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::decision::HeaderOp;
use crate::jwt::output::SharedIdentity;

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

/// A verified token as a VM keeps it: the validity facts, and the outputs ready to apply.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadyEntry {
    /// The provider that verified it.
    pub provider: String,
    /// Key-set version (with the claim rules' fingerprint) that verified it.
    pub key_set_version: u64,
    /// Unix seconds after which the entry must not be served.
    pub valid_until: u64,
    /// The identity, serialized for filter state.
    pub identity: SharedIdentity,
    /// The provider's header operations (claim headers, payload header).
    pub header_ops: Vec<HeaderOp>,
}

impl ReadyEntry {
    /// Whether the entry may answer for `provider` with keys `version` at `now`.
    pub fn usable(&self, provider: &str, version: u64, now: u64) -> bool {
        self.provider == provider && self.key_set_version == version && now < self.valid_until
    }

    /// Bytes held for `token` (what the LRU's byte bound counts).
    fn size(&self, token: &str) -> usize {
        let ops: usize = self
            .header_ops
            .iter()
            .map(|op| match op {
                HeaderOp::Set(n, v) | HeaderOp::SetIfAbsent(n, v) | HeaderOp::Append(n, v) => n.len() + v.len(),
                HeaderOp::Remove(n) => n.len(),
            })
            .sum();
        64 + token.len() + self.provider.len() + self.identity.filter_state().len() + ops
    }
}

/// Where verified tokens are looked up and stored.
pub trait TokenCache {
    /// The ready entry of exactly `token` in this VM, if any (validity is the caller's check).
    /// Shared, not copied.
    fn lookup(&mut self, token: &str) -> Option<Rc<ReadyEntry>>;
    /// The stored entry for the token of SHA-256 `hash` in a proxy-wide layer, if any (the
    /// caller checks it is that token's and still valid). None without such a layer.
    fn lookup_stored(&mut self, _hash: &TokenHash) -> Option<CacheEntry> {
        None
    }
    /// Keeps `ready` for `token`, and `stored` (a token just verified) in the proxy-wide layer.
    fn store(&mut self, token: &str, ready: Rc<ReadyEntry>, stored: Option<&CacheEntry>);
}

/// A cache that never holds anything (caching disabled).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCache;

impl TokenCache for NoCache {
    fn lookup(&mut self, _: &str) -> Option<Rc<ReadyEntry>> {
        None
    }
    fn store(&mut self, _: &str, _: Rc<ReadyEntry>, _: Option<&CacheEntry>) {}
}

/// A least-recently-used cache of ready entries keyed by token, bounded by entries and by bytes.
///
/// The table is indexed by a keyed hash of the token's length and last bytes (the signature:
/// distinct for distinct verified tokens), and every hit compares the whole token, so the
/// index only places entries: two tokens sharing an index value replace each other, and a
/// token is never answered with another's entry.
#[derive(Debug, Clone)]
pub struct MemoryCache {
    max_entries: usize,
    max_bytes: usize,
    bytes: usize,
    tick: u64,
    keys: RandomState,
    entries: HashMap<u64, Slot, BuildHasherDefault<IndexHasher>>,
    order: BTreeMap<u64, u64>,
}

#[derive(Debug, Clone)]
struct Slot {
    token: Box<str>,
    entry: Rc<ReadyEntry>,
    size: usize,
    tick: u64,
}

/// Bytes from the token's end that the index hashes.
const INDEXED_TAIL: usize = 32;

/// The hasher of the table: its keys are already keyed hashes.
#[derive(Debug, Clone, Copy, Default)]
struct IndexHasher(u64);

impl Hasher for IndexHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Whether two tokens are equal, compared as 64-bit words (wasm's `memcmp` goes byte by byte,
/// and comparing 8-byte slices would call it for each). Not constant-time: both tokens are the
/// caller's own.
fn same_token(a: &str, b: &str) -> bool {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    while let (Some((x, a_rest)), Some((y, b_rest))) = (a.split_first_chunk::<8>(), b.split_first_chunk::<8>()) {
        if u64::from_ne_bytes(*x) != u64::from_ne_bytes(*y) {
            return false;
        }
        (a, b) = (a_rest, b_rest);
    }
    a == b
}

impl MemoryCache {
    /// An empty cache holding at most `max_entries` entries and `max_bytes` bytes.
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        Self {
            max_entries,
            max_bytes,
            bytes: 0,
            tick: 0,
            keys: RandomState::new(),
            entries: HashMap::default(),
            order: BTreeMap::new(),
        }
    }

    fn index(&self, token: &str) -> u64 {
        let bytes = token.as_bytes();
        let tail = bytes.get(bytes.len().saturating_sub(INDEXED_TAIL)..).unwrap_or_default();
        self.keys.hash_one((bytes.len(), tail))
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

    fn remove(&mut self, index: u64) {
        if let Some(slot) = self.entries.remove(&index) {
            self.bytes -= slot.size;
            self.order.remove(&slot.tick);
        }
    }

    /// Stores the ready entry of `token` (replacing whatever held its index).
    pub fn insert(&mut self, token: &str, entry: Rc<ReadyEntry>) {
        let index = self.index(token);
        self.remove(index);
        let size = entry.size(token);
        if size > self.max_bytes || self.max_entries == 0 {
            return;
        }
        while self.entries.len() >= self.max_entries || self.bytes + size > self.max_bytes {
            let Some((_, oldest)) = self.order.pop_first() else { break };
            if let Some(slot) = self.entries.remove(&oldest) {
                self.bytes -= slot.size;
            }
        }
        self.tick += 1;
        self.order.insert(self.tick, index);
        self.bytes += size;
        self.entries.insert(index, Slot { token: token.into(), entry, size, tick: self.tick });
    }
}

impl TokenCache for MemoryCache {
    fn lookup(&mut self, token: &str) -> Option<Rc<ReadyEntry>> {
        let index = self.index(token);
        let slot = self.entries.get_mut(&index).filter(|slot| same_token(&slot.token, token))?;
        self.tick += 1;
        // Every entry has its tick in `order` (insert and remove keep both in step).
        self.order.remove(&slot.tick);
        self.order.insert(self.tick, index);
        slot.tick = self.tick;
        Some(Rc::clone(&slot.entry))
    }

    fn store(&mut self, token: &str, ready: Rc<ReadyEntry>, _: Option<&CacheEntry>) {
        self.insert(token, ready);
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

    fn ready(token: &str, valid_until: u64) -> Rc<ReadyEntry> {
        let claims = json!({"sub": token}).as_object().unwrap().clone();
        Rc::new(ReadyEntry {
            provider: "corp".into(),
            key_set_version: 7,
            valid_until,
            identity: SharedIdentity::new(crate::identity::Identity {
                provider: "corp".into(),
                claims,
                ..Default::default()
            }),
            header_ops: vec![HeaderOp::Set("x-sub".into(), token.into())],
        })
    }

    #[test]
    fn ready_entries_are_usable_only_for_their_provider_keys_and_time() {
        let e = ready("t1", 100);
        assert!(e.usable("corp", 7, 99));
        assert!(!e.usable("corp", 7, 100));
        assert!(!e.usable("corp", 8, 50));
        assert!(!e.usable("other", 7, 50));
    }

    #[test]
    fn lru_is_keyed_by_the_whole_token() {
        let mut cache = MemoryCache::new(8, 1 << 20);
        cache.store("a.b.c", ready("a.b.c", 9), None);
        assert!(cache.lookup("a.b.c").is_some());
        assert!(cache.lookup("a.b.d").is_none());
        assert!(cache.lookup("a.b.").is_none());
        assert!(cache.lookup("").is_none());
    }

    #[test]
    fn tokens_sharing_a_tail_are_told_apart() {
        let mut cache = MemoryCache::new(8, 1 << 20);
        let tail = "s".repeat(40);
        let (a, b) = (format!("a.{tail}"), format!("b.{tail}"));
        cache.store(&a, ready("a", 9), None);
        assert!(cache.lookup(&b).is_none(), "same length and tail, other token");
        cache.store(&b, ready("b", 9), None);
        assert_eq!(cache.lookup(&b).map(|e| e.identity.claims["sub"].clone()), Some(json!("b")));
        assert!(cache.lookup(&a).is_none(), "replaced by the token sharing its index");
        assert_eq!(cache.len(), 1);
        assert!(same_token("0123456789abcdefX", "0123456789abcdefX"));
        assert!(!same_token("0123456789abcdefX", "0123456789abcdefY"));
        assert!(!same_token("0123456789abcdefX", "1123456789abcdefX"));
        assert!(!same_token("abc", "abcd"));
        assert!(same_token("", ""));
    }

    #[test]
    fn lru_is_bounded_by_entries() {
        let mut cache = MemoryCache::new(2, 1 << 20);
        cache.store("a", ready("a", 9), None);
        cache.store("b", ready("b", 9), None);
        assert!(cache.lookup("a").is_some());
        cache.store("c", ready("c", 9), None);
        assert!(cache.lookup("b").is_none(), "b was least recently used");
        assert!(cache.lookup("a").is_some());
        assert!(cache.lookup("c").is_some());
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn lru_is_bounded_by_bytes() {
        let size = ready("a", 9).size("a");
        let mut cache = MemoryCache::new(100, size * 2);
        for token in ["a", "b", "c", "d"] {
            cache.store(token, ready(token, 9), None);
        }
        assert_eq!(cache.len(), 2);
        assert!(cache.bytes() <= size * 2);
        let big = "x".repeat(size * 3);
        cache.store(&big, ready("big", 9), None);
        assert!(cache.lookup(&big).is_none(), "larger than the whole cache");
        cache.store("d", ready("d", 10), None);
        assert_eq!(cache.lookup("d").map(|e| e.valid_until), Some(10), "replaced in place");
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.bytes(), size * 2);
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
