//! Envelope keys: data keys stored in config wrapped under a key-encryption key (KEK) that only
//! the VM's environment holds, so the stored configuration contains no usable data key.
//!
//! Wrapping is AES-256-GCM under the KEK with a random 96-bit nonce, and the data key's id as
//! associated data: `base64url(nonce || E(data key) || tag)`. AES-KW (RFC 3394) would need one
//! more crate and cannot bind the key id; GCM is already here, authenticates the same way, and a
//! KEK wraps a handful of keys, far below any nonce limit. Produce a wrapped key with:
//!
//! ```text
//! python3 -c 'import os,base64,sys;from cryptography.hazmat.primitives.ciphers.aead import AESGCM
//! kek=base64.b64decode(os.environ["KEK"]);dk=base64.b64decode(os.environ["DATA_KEY"]);n=os.urandom(12)
//! print(base64.urlsafe_b64encode(n+AESGCM(kek).encrypt(n,dk,b"palisade-fe-wrap:v1:"+sys.argv[1].encode())).rstrip(b"=").decode())' k2
//! ```

use aes_gcm::{Aes256Gcm, KeyInit};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::ciphertext::{gcm_open, gcm_seal, NONCE_LEN};
use super::keyring::KEY_LEN;

/// Associated-data prefix of a wrapped key; the key id follows.
const WRAP_AAD: &[u8] = b"palisade-fe-wrap:v1:";

/// Why a wrapped key did not unwrap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnwrapError {
    /// Not base64url without padding.
    Encoding,
    /// Wrong KEK, wrong key id, tampered, or not a 256-bit key.
    Authentication,
}

/// Wraps `data_key` (for the key `key_id`) under `kek` with `nonce`.
pub fn wrap(kek: &[u8; KEY_LEN], key_id: &str, data_key: &[u8; KEY_LEN], nonce: &[u8; NONCE_LEN]) -> String {
    let mut out = nonce.to_vec();
    out.extend(gcm_seal(&Aes256Gcm::new(kek.into()), nonce, &aad(key_id), data_key));
    URL_SAFE_NO_PAD.encode(out)
}

/// Unwraps a data key.
pub fn unwrap(kek: &[u8; KEY_LEN], key_id: &str, wrapped: &str) -> Result<[u8; KEY_LEN], UnwrapError> {
    let bytes = URL_SAFE_NO_PAD.decode(wrapped).map_err(|_| UnwrapError::Encoding)?;
    let (nonce, sealed) = bytes.split_at_checked(NONCE_LEN).ok_or(UnwrapError::Authentication)?;
    let key = gcm_open(&Aes256Gcm::new(kek.into()), nonce, &aad(key_id), sealed).ok_or(UnwrapError::Authentication)?;
    key.try_into().map_err(|_| UnwrapError::Authentication)
}

fn aad(key_id: &str) -> Vec<u8> {
    [WRAP_AAD, key_id.as_bytes()].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_and_unwraps_bound_to_the_key_id() {
        let kek = [9u8; 32];
        let wrapped = wrap(&kek, "k2", &[5u8; 32], &[1u8; 12]);
        assert_eq!(unwrap(&kek, "k2", &wrapped), Ok([5u8; 32]));
        assert_eq!(unwrap(&kek, "k3", &wrapped), Err(UnwrapError::Authentication));
        assert_eq!(unwrap(&[8u8; 32], "k2", &wrapped), Err(UnwrapError::Authentication));
        assert_eq!(unwrap(&kek, "k2", "!!"), Err(UnwrapError::Encoding));
        assert_eq!(unwrap(&kek, "k2", "AAAA"), Err(UnwrapError::Authentication));
        // A wrapped 16-byte key authenticates but is refused.
        let mut short = vec![1u8; 12];
        short.extend(gcm_seal(&Aes256Gcm::new(&kek.into()), &[1u8; 12], &aad("k2"), &[5u8; 16]));
        assert_eq!(unwrap(&kek, "k2", &URL_SAFE_NO_PAD.encode(short)), Err(UnwrapError::Authentication));
    }

    #[test]
    fn matches_the_documented_python_recipe() {
        // Produced by the recipe in the module doc with KEK = 32 x 0x09, DATA_KEY = 32 x 0x05,
        // nonce fixed to 12 x 0x01 (the recipe draws a random one).
        let expected = "AQEBAQEBAQEBAQEBvHWEYBbizXUUS1rI4IqFFrnAwc_gxXjF6bYMkSnEXdfSoQmWvAnmZbO_Xb7n98Jo";
        assert_eq!(wrap(&[9; 32], "k2", &[5; 32], &[1; 12]), expected);
        assert_eq!(unwrap(&[9; 32], "k2", expected), Ok([5; 32]));
    }
}
