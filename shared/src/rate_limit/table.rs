//! The fixed-size table of buckets in shared data, and the bytes stored in it.
//!
//! Shared data has no delete, so each limit owns a fixed set of keys
//! `palisade.rl.<domain>.<limit>.<group>`, created once at configure and rewritten forever.
//! A table of `slots` slots is cut into `slots / ways` groups of `ways` slots; one group is one
//! shared-data value, read and written whole with one compare-and-swap.
//!
//! A request key is hashed with SipHash-2-4 (128-bit) keyed by a per-config secret. The hash
//! picks the group and is the fingerprint stored in the slot. SipHash is a keyed PRF: without the
//! seed a client cannot compute which group a key lands in, so it cannot aim keys at one group
//! (with FNV or a hash keyed by a public constant it could, and lock out a victim's group).
//!
//! Inside its group a key probes every slot (bounded linear probing over `ways` slots): its own
//! fingerprint first, else the first slot whose bucket would be full again by now (a full bucket
//! and no bucket are the same thing, so that reuse loses nothing), else a never-used slot. The
//! probe window is one value on purpose: probing across separate keys cannot be made exact with
//! per-key CAS (two workers may insert one new key into two different free slots and each spend
//! a fresh bucket), while a group changes atomically.
//!
//! Bytes of a group: version `1`, then up to `ways` slots of 40 bytes, little-endian:
//! fingerprint (16), level in units (8), level time in ms (8), full-again time in ms (8).
//! An empty value is a never-used group; bytes in any other format read as an empty group.

use siphasher::sip128::SipHasher24;

use super::bucket::Bucket;

/// Bytes of one slot inside a group.
pub const SLOT_BYTES: usize = 40;

const VERSION: u8 = 1;

/// Prefix of every shared-data key this filter writes.
pub const KEY_PREFIX: &str = "palisade.rl.";

/// The 128-bit keyed hash of a rate-limit key (its descriptor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub u128);

/// SipHash-2-4 keyed by the config's domain and secret seed.
#[derive(Debug, Clone)]
pub struct KeyHasher {
    key: [u8; 16],
}

impl KeyHasher {
    /// A hasher whose key is derived from `domain` and the secret `seed`.
    pub fn new(domain: &str, seed: &str) -> Self {
        let mut material = Vec::with_capacity(domain.len() + seed.len() + 40);
        push_field(&mut material, b"palisade.rl.seed");
        push_field(&mut material, domain.as_bytes());
        push_field(&mut material, seed.as_bytes());
        let key = SipHasher24::new_with_key(&[0; 16]).hash(&material).as_bytes();
        Self { key }
    }

    /// The fingerprint of length-prefixed key bytes.
    pub fn fingerprint(&self, encoded: &[u8]) -> Fingerprint {
        Fingerprint(SipHasher24::new_with_key(&self.key).hash(encoded).as_u128())
    }
}

/// Appends a length-prefixed field, so `("ab","c")` and `("a","bc")` never encode alike.
pub fn push_field(out: &mut Vec<u8>, field: &[u8]) {
    out.extend_from_slice(&(field.len() as u64).to_le_bytes());
    out.extend_from_slice(field);
}

/// [`push_field`] of the concatenated `parts`, without building it.
pub fn push_field_parts(out: &mut Vec<u8>, parts: &[&str]) {
    let len: usize = parts.iter().map(|part| part.len()).sum();
    out.extend_from_slice(&(len as u64).to_le_bytes());
    for part in parts {
        out.extend_from_slice(part.as_bytes());
    }
}

/// One slot: whose bucket, the bucket, and when it is full again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Whose bucket this is.
    pub fingerprint: Fingerprint,
    /// The bucket.
    pub bucket: Bucket,
    /// When the bucket is full again; from then on the slot may be reused.
    pub full_at_ms: u64,
}

/// The slots of one group, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Group {
    /// Used slots, at most `ways`.
    pub slots: Vec<Slot>,
}

/// Where a fingerprint goes in a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// The key already has this slot.
    Existing(usize),
    /// The key takes this slot (stale or never used) with a full bucket.
    Vacant(usize),
    /// Every slot holds a live bucket of another key; the first is free again at this time.
    Full {
        /// Earliest `full_at_ms` in the group.
        free_at_ms: u64,
    },
}

impl Group {
    /// Reads stored bytes; anything but our format is an empty group.
    pub fn decode(bytes: &[u8]) -> Self {
        let Some((&VERSION, rest)) = bytes.split_first() else {
            return Self::default();
        };
        if !rest.len().is_multiple_of(SLOT_BYTES) {
            return Self::default();
        }
        let slots = rest.chunks_exact(SLOT_BYTES).filter_map(decode_slot).collect();
        Self { slots }
    }

    /// The stored bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + self.slots.len() * SLOT_BYTES);
        out.push(VERSION);
        for slot in &self.slots {
            out.extend_from_slice(&slot.fingerprint.0.to_le_bytes());
            out.extend_from_slice(&slot.bucket.level.to_le_bytes());
            out.extend_from_slice(&slot.bucket.updated_ms.to_le_bytes());
            out.extend_from_slice(&slot.full_at_ms.to_le_bytes());
        }
        out
    }

    /// Probes the group for `fingerprint` at `now`, in a table of `ways` slots per group.
    pub fn place(&self, fingerprint: Fingerprint, now_ms: u64, ways: usize) -> Place {
        if let Some(index) = self.slots.iter().position(|slot| slot.fingerprint == fingerprint) {
            return Place::Existing(index);
        }
        if let Some(index) = self.slots.iter().position(|slot| slot.full_at_ms <= now_ms) {
            return Place::Vacant(index);
        }
        if self.slots.len() < ways {
            return Place::Vacant(self.slots.len());
        }
        let free_at_ms = self.slots.iter().map(|slot| slot.full_at_ms).min().unwrap_or(now_ms);
        Place::Full { free_at_ms }
    }

    /// Stores `slot` at `index` (a [`Place`] index: an existing slot or one past the end).
    pub fn put(&mut self, index: usize, slot: Slot) {
        match self.slots.get_mut(index) {
            Some(existing) => *existing = slot,
            None => self.slots.push(slot),
        }
    }
}

fn decode_slot(chunk: &[u8]) -> Option<Slot> {
    let (fingerprint, rest) = chunk.split_first_chunk::<16>()?;
    let (level, rest) = rest.split_first_chunk::<8>()?;
    let (updated, rest) = rest.split_first_chunk::<8>()?;
    let (full_at, _) = rest.split_first_chunk::<8>()?;
    Some(Slot {
        fingerprint: Fingerprint(u128::from_le_bytes(*fingerprint)),
        bucket: Bucket { level: u64::from_le_bytes(*level), updated_ms: u64::from_le_bytes(*updated) },
        full_at_ms: u64::from_le_bytes(*full_at),
    })
}

/// The groups of one limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    prefix: String,
    groups: u32,
    ways: u32,
}

impl Table {
    /// The table of `limit` in `domain`: `groups` groups of `ways` slots (both at least 1).
    pub fn new(domain: &str, limit: &str, groups: u32, ways: u32) -> Self {
        Self { prefix: format!("{KEY_PREFIX}{domain}.{limit}."), groups: groups.max(1), ways: ways.max(1) }
    }

    /// Slots per group.
    pub fn ways(&self) -> usize {
        self.ways as usize
    }

    /// Number of groups (shared-data keys, overflow buckets aside).
    pub fn groups(&self) -> u32 {
        self.groups
    }

    /// The shared-data key of the group a fingerprint lives in.
    pub fn group_key(&self, fingerprint: Fingerprint) -> String {
        // High 64 bits modulo the count; the bias for counts far below 2^64 is negligible.
        let index = ((fingerprint.0 >> 64) as u64) % u64::from(self.groups);
        let mut digits = itoa::Buffer::new();
        let index = digits.format(index);
        let mut key = String::with_capacity(self.prefix.len() + index.len());
        key.push_str(&self.prefix);
        key.push_str(index);
        key
    }

    /// The key of the shared overflow bucket for the limit's rate number `rate`.
    pub fn overflow_key(&self, rate: usize) -> String {
        format!("{}overflow.{rate}", self.prefix)
    }

    /// Every key of the table: the groups, then the overflow buckets of `rates` rates.
    pub fn all_keys(&self, rates: usize) -> impl Iterator<Item = String> + '_ {
        (0..self.groups).map(|i| format!("{}{i}", self.prefix)).chain((0..rates).map(|r| self.overflow_key(r)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000;

    fn slot(fingerprint: u128, full_at_ms: u64) -> Slot {
        Slot { fingerprint: Fingerprint(fingerprint), bucket: Bucket { level: 7, updated_ms: NOW - 5 }, full_at_ms }
    }

    #[test]
    fn group_round_trips_and_foreign_bytes_read_as_empty() {
        let group = Group { slots: vec![slot(u128::MAX - 3, NOW + 10), slot(5, NOW)] };
        let bytes = group.encode();
        assert_eq!(bytes.len(), 1 + 2 * SLOT_BYTES);
        assert_eq!(Group::decode(&bytes), group);
        assert_eq!(Group::decode(&[]), Group::default());
        assert_eq!(Group::decode(&bytes[..40]), Group::default());
        let mut other_version = bytes.clone();
        other_version[0] = 2;
        assert_eq!(Group::decode(&other_version), Group::default());
        assert_eq!(Group::decode(&Group::default().encode()), Group::default());
    }

    #[test]
    fn own_slot_wins_over_stale_and_unused_ones() {
        let group = Group { slots: vec![slot(1, NOW - 1), slot(2, NOW + 100)] };
        assert_eq!(group.place(Fingerprint(2), NOW, 4), Place::Existing(1));
        // A stale slot (full again by now) is reused before an unused one.
        assert_eq!(group.place(Fingerprint(3), NOW, 4), Place::Vacant(0));
        // Full again exactly now counts as stale.
        let group = Group { slots: vec![slot(1, NOW), slot(2, NOW + 100)] };
        assert_eq!(group.place(Fingerprint(3), NOW, 2), Place::Vacant(0));
        let group = Group { slots: vec![slot(1, NOW + 1), slot(2, NOW + 100)] };
        assert_eq!(group.place(Fingerprint(3), NOW, 3), Place::Vacant(2));
    }

    #[test]
    fn full_group_reports_when_a_slot_frees_up() {
        let group = Group { slots: vec![slot(1, NOW + 300), slot(2, NOW + 100)] };
        assert_eq!(group.place(Fingerprint(3), NOW, 2), Place::Full { free_at_ms: NOW + 100 });
        assert_eq!(group.place(Fingerprint(3), NOW + 100, 2), Place::Vacant(1));
        // A key that has a slot always finds it, full table or not.
        assert_eq!(group.place(Fingerprint(1), NOW, 2), Place::Existing(0));
    }

    #[test]
    fn put_replaces_or_appends() {
        let mut group = Group { slots: vec![slot(1, NOW)] };
        group.put(0, slot(9, NOW));
        group.put(1, slot(10, NOW));
        assert_eq!(group.slots.iter().map(|s| s.fingerprint.0).collect::<Vec<_>>(), [9, 10]);
    }

    #[test]
    fn fingerprints_depend_on_seed_domain_and_field_boundaries() {
        let hasher = KeyHasher::new("api", "s3cret");
        let encode = |fields: &[&str]| {
            let mut out = Vec::new();
            fields.iter().for_each(|f| push_field(&mut out, f.as_bytes()));
            out
        };
        let a = hasher.fingerprint(&encode(&["ab", "c"]));
        assert_eq!(a, hasher.fingerprint(&encode(&["ab", "c"])));
        assert_ne!(a, hasher.fingerprint(&encode(&["a", "bc"])));
        assert_ne!(a, KeyHasher::new("api", "other").fingerprint(&encode(&["ab", "c"])));
        assert_ne!(a, KeyHasher::new("web", "s3cret").fingerprint(&encode(&["ab", "c"])));
    }

    #[test]
    fn siphash_matches_the_reference_vector() {
        // SipHash-2-4-128 reference vector (Aumasson & Bernstein, vectors_sip128[0]): key 00..0f, empty message.
        let key: [u8; 16] = core::array::from_fn(|i| i as u8);
        let hash = SipHasher24::new_with_key(&key).hash(&[]).as_bytes();
        assert_eq!(
            hash,
            [0xa3, 0x81, 0x7f, 0x04, 0xba, 0x25, 0xa8, 0xe6, 0x6d, 0xf6, 0x72, 0x14, 0xc7, 0x55, 0x02, 0x93]
        );
    }

    #[test]
    fn keys_are_bounded_and_named_by_domain_and_limit() {
        let table = Table::new("api", "hourly", 4, 8);
        assert_eq!(table.group_key(Fingerprint(3 << 64 | 99)), "palisade.rl.api.hourly.3");
        assert_eq!(table.group_key(Fingerprint(6 << 64)), "palisade.rl.api.hourly.2");
        let wide = Table::new("api", "m", 2048, 8);
        assert_eq!(wide.group_key(Fingerprint(1234 << 64 | 7)), "palisade.rl.api.m.1234");
        assert_eq!(wide.group_key(Fingerprint((2048 + 2047) << 64)), "palisade.rl.api.m.2047");
        let all: Vec<String> = table.all_keys(2).collect();
        assert_eq!(all.len(), 6);
        assert_eq!(all[0], "palisade.rl.api.hourly.0");
        assert_eq!(all[5], "palisade.rl.api.hourly.overflow.1");
    }
}
