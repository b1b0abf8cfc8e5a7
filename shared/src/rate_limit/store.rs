//! The storage the limiter needs: proxy-wasm shared data, reduced to get and compare-and-swap.
//!
//! The filter implements [`Store`] over `proxy_get_shared_data` / `proxy_set_shared_data`;
//! tests use [`MemoryStore`], which follows Envoy's semantics exactly (CAS counter starting at
//! 1 and bumped on every write, CAS 0 meaning unconditional, a missing key created whatever the
//! CAS) and can be told to fail.

use std::collections::HashMap;

/// A value and the CAS token it was read with.
pub type Versioned = (Vec<u8>, u32);

/// The store refused or failed an operation (not a CAS conflict).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreError;

/// Why a write did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetError {
    /// Someone wrote the key since it was read: read again and retry.
    CasMismatch,
    /// The store failed.
    Failed,
}

/// Key-value storage with compare-and-swap, shared by every worker.
pub trait Store {
    /// The value under `key` and its CAS token; `None` when the key was never written.
    fn get(&mut self, key: &str) -> Result<Option<Versioned>, StoreError>;

    /// Writes `value` if the key's CAS token is still `cas` (`0`: unconditionally).
    fn set(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), SetError>;
}

/// An in-memory [`Store`] with Envoy's shared-data semantics.
#[derive(Debug, Default)]
pub struct MemoryStore {
    entries: HashMap<String, Versioned>,
    next_cas: u32,
    /// When set, every `get` fails.
    pub fail_gets: bool,
    /// When set, every `set` fails.
    pub fail_sets: bool,
    /// Number of successful writes so far.
    pub writes: u64,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many keys exist (the memory the filter holds).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key exists.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The bytes under `key`, for assertions.
    pub fn value(&self, key: &str) -> Option<&[u8]> {
        self.entries.get(key).map(|(value, _)| value.as_slice())
    }

    fn bump(&mut self) -> u32 {
        // Envoy's counter skips 0, which means "unconditional".
        self.next_cas = self.next_cas.wrapping_add(1).max(1);
        self.next_cas
    }
}

impl Store for MemoryStore {
    fn get(&mut self, key: &str) -> Result<Option<Versioned>, StoreError> {
        if self.fail_gets {
            return Err(StoreError);
        }
        Ok(self.entries.get(key).cloned())
    }

    fn set(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), SetError> {
        if self.fail_sets {
            return Err(SetError::Failed);
        }
        if let Some((_, current)) = self.entries.get(key) {
            if cas != 0 && cas != *current {
                return Err(SetError::CasMismatch);
            }
        }
        let cas = self.bump();
        self.entries.insert(key.to_string(), (value.to_vec(), cas));
        self.writes += 1;
        Ok(())
    }
}

/// Creates every key in `keys` that does not exist yet, with an empty value.
///
/// Run once per VM at configure, before any request: a CAS write to a missing key would
/// create it unconditionally (Envoy ignores the CAS then), so the request path never creates
/// keys and treats a missing one as a store failure.
pub fn create_missing<S: Store>(store: &mut S, keys: impl IntoIterator<Item = String>) -> Result<usize, StoreError> {
    let mut created = 0;
    for key in keys {
        if store.get(&key)?.is_none() {
            store.set(&key, &[], 0).map_err(|_| StoreError)?;
            created += 1;
        }
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_envoy_cas_semantics() {
        let mut store = MemoryStore::new();
        assert_eq!(store.get("k"), Ok(None));
        store.set("k", b"v1", 0).unwrap();
        assert_eq!(store.get("k"), Ok(Some((b"v1".to_vec(), 1))));
        assert_eq!(store.set("k", b"v2", 1001), Err(SetError::CasMismatch));
        store.set("k", b"v2", 1).unwrap();
        assert_eq!(store.get("k"), Ok(Some((b"v2".to_vec(), 2))));
        // A missing key is created whatever the CAS.
        store.set("new", b"x", 12345).unwrap();
        assert_eq!(store.get("new"), Ok(Some((b"x".to_vec(), 3))));
        store.set("k", b"", 2).unwrap();
        assert_eq!(store.get("k"), Ok(Some((Vec::new(), 4))));
    }

    #[test]
    fn creates_only_missing_keys() {
        let mut store = MemoryStore::new();
        store.set("a", b"data", 0).unwrap();
        let created = create_missing(&mut store, ["a".to_string(), "b".to_string()]).unwrap();
        assert_eq!(created, 1);
        assert_eq!(store.value("a"), Some(&b"data"[..]));
        assert_eq!(store.value("b"), Some(&b""[..]));
        store.fail_gets = true;
        assert_eq!(create_missing(&mut store, ["c".to_string()]), Err(StoreError));
    }
}
