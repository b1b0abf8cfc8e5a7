//! Data keys: one primary that encrypts, others that only decrypt, a minimum version that
//! retires old ones (Vault transit's `min_decryption_version`, Tink's primary key).
//!
//! Each 256-bit data key is a key-derivation key only: the AES-256-GCM key, the AES-SIV key and
//! the usage-counter fingerprint are derived from it by encrypting fixed, distinct blocks with
//! AES-256 (AES as a PRF over a handful of inputs, as RFC 8452 derives AES-GCM-SIV's keys).
//! So one configured key serves both modes without ever using the same key in two algorithms.

use aes_gcm::aes::cipher::{BlockEncrypt, KeyInit};
use aes_gcm::aes::Aes256;
use aes_gcm::Aes256Gcm;

use super::ciphertext::OpenError;
use super::siv::Siv;

/// Length of every data key and key-encryption key.
pub const KEY_LEN: usize = 32;

/// One data key, ready to use.
#[derive(Clone)]
pub struct DataKey {
    id: String,
    version: u32,
    gcm: Aes256Gcm,
    siv: Siv,
    fingerprint: String,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("DataKey").field("id", &self.id).field("version", &self.version).finish_non_exhaustive()
    }
}

impl DataKey {
    /// Derives the working keys from a 256-bit data key.
    pub fn new(id: &str, version: u32, material: &[u8; KEY_LEN]) -> Self {
        let kdf = Aes256::new(material.into());
        let mut gcm_key = [0u8; 32];
        derive(&kdf, 1, &mut gcm_key);
        let mut siv_key = [0u8; 64];
        derive(&kdf, 2, &mut siv_key);
        let (mac_key, cipher_key) = siv_key.split_at(32);
        let siv = Siv::new(mac_key.into(), cipher_key.into());
        let mut print = [0u8; 16];
        derive(&kdf, 3, &mut print);
        let fingerprint = print.iter().take(8).map(|b| format!("{b:02x}")).collect();
        Self { id: id.to_string(), version, gcm: Aes256Gcm::new(&gcm_key.into()), siv, fingerprint }
    }

    /// The id written into ciphertexts.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key's version (for retirement).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// A public name of the key material (8 bytes of a derived block, hex): usage is counted per
    /// material, so reusing an id for a new key starts no counter over by mistake.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub(crate) fn gcm(&self) -> &Aes256Gcm {
        &self.gcm
    }

    pub(crate) fn siv(&self) -> &Siv {
        &self.siv
    }
}

/// Fills `out` with AES-256_K(`palisade-fe-kdf` || purpose || counter) blocks.
fn derive(kdf: &Aes256, purpose: u8, out: &mut [u8]) {
    for (counter, chunk) in (0u8..).zip(out.chunks_mut(16)) {
        let mut block = [0u8; 16];
        block[..13].copy_from_slice(b"palisade-fe-k");
        block[14] = purpose;
        block[15] = counter;
        let mut block = block.into();
        kdf.encrypt_block(&mut block);
        chunk.copy_from_slice(&block[..chunk.len()]);
    }
}

/// The keys of a policy.
#[derive(Debug, Clone)]
pub struct Keyring {
    keys: Vec<DataKey>,
    primary: usize,
    min_version: u32,
}

impl Keyring {
    /// A keyring; the config compiler has checked that `primary` exists and is not retired.
    pub(crate) fn new(keys: Vec<DataKey>, primary: usize, min_version: u32) -> Self {
        Self { keys, primary, min_version }
    }

    /// The key that encrypts.
    pub fn primary(&self) -> Option<&DataKey> {
        self.keys.get(self.primary)
    }

    /// The key named by a ciphertext, if it may still decrypt.
    pub fn for_decrypt(&self, id: &str) -> Result<&DataKey, OpenError> {
        let key = self.keys.iter().find(|key| key.id == id).ok_or(OpenError::UnknownKey)?;
        if key.version < self.min_version {
            return Err(OpenError::RetiredKey);
        }
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_keys_are_distinct_and_stable() {
        let a = DataKey::new("a", 1, &[1; 32]);
        let b = DataKey::new("a", 1, &[2; 32]);
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint(), DataKey::new("other", 9, &[1; 32]).fingerprint());
        assert_eq!(a.fingerprint().len(), 16);
        let mut siv_key = [0u8; 64];
        derive(&Aes256::new(&[1u8; 32].into()), 2, &mut siv_key);
        assert_ne!(siv_key[..32], siv_key[32..]);
        assert!(!format!("{a:?}").contains("siv"));
        // The derivation is AES-256 of fixed blocks: check one block against a direct call.
        let kdf = Aes256::new(&[1u8; 32].into());
        let mut block: aes_gcm::aes::Block = (*b"palisade-fe-k\0\x03\0").into();
        kdf.encrypt_block(&mut block);
        let expected: String = block.iter().take(8).map(|b| format!("{b:02x}")).collect();
        assert_eq!(a.fingerprint(), expected);
    }

    #[test]
    fn retired_and_unknown_keys_do_not_decrypt() {
        let ring = Keyring::new(vec![DataKey::new("k1", 1, &[1; 32]), DataKey::new("k2", 2, &[2; 32])], 1, 2);
        assert_eq!(ring.primary().map(DataKey::id), Some("k2"));
        assert_eq!(ring.for_decrypt("k1").unwrap_err(), OpenError::RetiredKey);
        assert_eq!(ring.for_decrypt("k2").map(DataKey::version), Ok(2));
        assert_eq!(ring.for_decrypt("k3").unwrap_err(), OpenError::UnknownKey);
    }
}
