//! The ciphertext format and the AEAD calls.
//!
//! ```text
//! enc:v1:<key-id>:<base64url(nonce[12] || ciphertext || tag[16])>   AES-256-GCM, random nonce
//! enc:d1:<key-id>:<base64url(siv[16] || ciphertext)>                AES-256-SIV (RFC 5297), deterministic
//! ```
//!
//! The plaintext starts with a type marker, inside the encryption so the type does not leak:
//! `s` + the UTF-8 of a JSON string, or `j` + the JSON text of any other value (number, boolean,
//! null, object, array) exactly as it was sent, so `12345678901234567890` keeps every digit.
//!
//! The associated data binds, length-prefixed so no two contexts share an encoding: the format
//! tag (`v1`/`d1`), the key id, the logical field name (not its JSON location: the upstream
//! returns a stored `user.email` at `/users/3/email` after receiving it at `/email`), and the
//! context values (e.g. the tenant claim). A ciphertext moved to another field, another tenant or
//! relabeled with another key id fails authentication.

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::json;
use super::keyring::DataKey;

/// AES-GCM nonce length (96 bits, the length SP 800-38D recommends for random nonces).
pub const NONCE_LEN: usize = 12;
/// Authentication tag length of both modes.
pub const TAG_LEN: usize = 16;
/// Every ciphertext starts with this.
pub const PREFIX: &str = "enc:";

/// How a field is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// AES-256-GCM with a random nonce: equal values give unrelated ciphertexts.
    Randomized,
    /// AES-256-SIV: equal values under the same key and context give equal ciphertexts.
    Deterministic,
}

impl Mode {
    fn tag(self) -> &'static str {
        match self {
            Mode::Randomized => "v1",
            Mode::Deterministic => "d1",
        }
    }
}

/// A source of random nonce bytes; the filter passes WASI `random_get`, tests a fixed one.
pub trait NonceSource {
    /// Fills `dest` with random bytes.
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), RandomUnavailable>;
}

/// The random source refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RandomUnavailable;

/// Why a ciphertext was not opened. Every case is a safe failure: the value is redacted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// Not `enc:v1|d1:<id>:<base64url>`, or too short.
    Malformed,
    /// No key with that id in the keyring.
    UnknownKey,
    /// The key's version is below the keyring's minimum.
    RetiredKey,
    /// Authentication failed: tampered, wrong field, wrong context or wrong key material.
    AuthenticationFailed,
}

impl OpenError {
    /// Stable snake_case reason for metrics and audit lines.
    pub fn code(self) -> &'static str {
        match self {
            OpenError::Malformed => "malformed",
            OpenError::UnknownKey => "unknown_key",
            OpenError::RetiredKey => "retired_key",
            OpenError::AuthenticationFailed => "authentication_failed",
        }
    }
}

/// A parsed ciphertext string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// Which AEAD sealed it.
    pub mode: Mode,
    /// The key id it names.
    pub key_id: &'a str,
    /// Nonce (or SIV) || ciphertext || tag.
    pub payload: Vec<u8>,
}

impl<'a> Envelope<'a> {
    /// Parses `enc:v1:<id>:<payload>`; strict base64url without padding.
    pub fn parse(text: &'a str) -> Result<Self, OpenError> {
        let rest = text.strip_prefix(PREFIX).ok_or(OpenError::Malformed)?;
        let (mode, rest) = match rest.split_once(':') {
            Some(("v1", rest)) => (Mode::Randomized, rest),
            Some(("d1", rest)) => (Mode::Deterministic, rest),
            _ => return Err(OpenError::Malformed),
        };
        let (key_id, encoded) = rest.split_once(':').ok_or(OpenError::Malformed)?;
        let payload = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| OpenError::Malformed)?;
        let overhead = match mode {
            Mode::Randomized => NONCE_LEN + TAG_LEN,
            Mode::Deterministic => TAG_LEN,
        };
        // The plaintext holds at least its type marker.
        if key_id.is_empty() || payload.len() <= overhead {
            return Err(OpenError::Malformed);
        }
        Ok(Self { mode, key_id, payload })
    }

    /// The ciphertext string.
    pub fn render(&self) -> String {
        let tag = self.mode.tag();
        let mut out =
            String::with_capacity(PREFIX.len() + tag.len() + self.key_id.len() + 2 + self.payload.len() * 4 / 3 + 4);
        for part in [PREFIX, tag, ":", self.key_id, ":"] {
            out.push_str(part);
        }
        URL_SAFE_NO_PAD.encode_string(&self.payload, &mut out);
        out
    }
}

/// The context a value is bound to: its logical field name, context values and record id.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    /// Logical field name, e.g. `user.email`.
    pub field: &'a str,
    /// Named context values, e.g. `("tenant", "acme")`, in configured order.
    pub context: &'a [(String, String)],
    /// The id of the record holding the value, when the rule binds one.
    pub record: Option<&'a str>,
}

impl Binding<'_> {
    /// The associated data for `mode` under `key_id`.
    pub fn aad(&self, mode: Mode, key_id: &str) -> Vec<u8> {
        let mut aad = Vec::with_capacity(64);
        aad.extend_from_slice(b"palisade-fe\0");
        for part in [mode.tag(), key_id, self.field] {
            push_prefixed(&mut aad, part.as_bytes());
        }
        aad.extend_from_slice(&u32::try_from(self.context.len()).unwrap_or(u32::MAX).to_be_bytes());
        for (name, value) in self.context {
            push_prefixed(&mut aad, name.as_bytes());
            push_prefixed(&mut aad, value.as_bytes());
        }
        // Appended only when bound: the encoding above is self-delimiting, so values sealed
        // before record binding existed keep their associated data.
        if let Some(record) = self.record {
            push_prefixed(&mut aad, b"record");
            push_prefixed(&mut aad, record.as_bytes());
        }
        aad
    }
}

fn push_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// A JSON value about to be encrypted, or just decrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plain {
    /// A JSON string's content.
    String(String),
    /// The JSON text of any other value.
    Json(String),
}

impl Plain {
    /// The value from its JSON text; `None` for a string JSON cannot decode (lone surrogate).
    pub fn from_json_text(raw: &str) -> Option<Self> {
        if raw.starts_with('"') {
            json::decode_string(raw).map(|s| Plain::String(s.into_owned()))
        } else {
            Some(Plain::Json(raw.to_string()))
        }
    }

    /// The JSON text to put back into a body.
    pub fn to_json_text(&self) -> String {
        match self {
            // Serializing a string cannot fail.
            Plain::String(s) => serde_json::to_string(s).unwrap_or_default(),
            Plain::Json(text) => text.clone(),
        }
    }

    fn encode(&self) -> Vec<u8> {
        let (marker, text) = match self {
            Plain::String(s) => (b's', s),
            Plain::Json(text) => (b'j', text),
        };
        let mut out = Vec::with_capacity(text.len() + 1);
        out.push(marker);
        out.extend_from_slice(text.as_bytes());
        out
    }

    fn decode(bytes: Vec<u8>) -> Result<Self, OpenError> {
        let (marker, rest) = bytes.split_first().ok_or(OpenError::Malformed)?;
        let text = std::str::from_utf8(rest).map_err(|_| OpenError::Malformed)?.to_string();
        match marker {
            b's' => Ok(Plain::String(text)),
            // Authentic, so it is what was sealed; still checked so a body is never broken.
            b'j' if json::parse_for(text.as_bytes(), &[]).is_ok() => Ok(Plain::Json(text)),
            _ => Err(OpenError::Malformed),
        }
    }
}

/// Encrypts `plain` under `key` for `binding`; the result is the ciphertext string.
pub fn seal(
    key: &DataKey,
    mode: Mode,
    binding: Binding<'_>,
    plain: &Plain,
    rng: &mut dyn NonceSource,
) -> Result<String, RandomUnavailable> {
    let aad = binding.aad(mode, key.id());
    let msg = plain.encode();
    let payload = match mode {
        Mode::Randomized => {
            let mut nonce = [0u8; NONCE_LEN];
            rng.fill(&mut nonce)?;
            let mut payload = nonce.to_vec();
            payload.extend(gcm_seal(key.gcm(), &nonce, &aad, &msg));
            payload
        }
        Mode::Deterministic => key.siv().seal(&aad, &msg),
    };
    Ok(Envelope { mode, key_id: key.id(), payload }.render())
}

/// Opens a parsed ciphertext with `key` (the caller looked it up by the envelope's key id).
pub fn open(key: &DataKey, envelope: &Envelope<'_>, binding: Binding<'_>) -> Result<Plain, OpenError> {
    let aad = binding.aad(envelope.mode, key.id());
    let msg = match envelope.mode {
        Mode::Randomized => {
            let (nonce, sealed) = envelope.payload.split_at_checked(NONCE_LEN).ok_or(OpenError::Malformed)?;
            gcm_open(key.gcm(), nonce, &aad, sealed)
        }
        Mode::Deterministic => key.siv().open(&aad, &envelope.payload),
    }
    .ok_or(OpenError::AuthenticationFailed)?;
    Plain::decode(msg)
}

/// AES-GCM encryption: ciphertext || tag.
pub fn gcm_seal(cipher: &Aes256Gcm, nonce: &[u8; NONCE_LEN], aad: &[u8], msg: &[u8]) -> Vec<u8> {
    // Encryption fails only for messages over 64 GiB, far above any body limit.
    cipher.encrypt(Nonce::from_slice(nonce), Payload { msg, aad }).unwrap_or_default()
}

/// AES-GCM decryption; `None` when the tag does not verify.
pub fn gcm_open(cipher: &Aes256Gcm, nonce: &[u8], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    if nonce.len() != NONCE_LEN {
        return None;
    }
    cipher.decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad }).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encryption::keyring::DataKey;
    use crate::encryption::testing::hex;
    use aes_gcm::KeyInit;

    use crate::encryption::testing::CountingNonces;

    #[test]
    fn aes_256_gcm_matches_mcgrew_viega_test_cases_13_to_16() {
        // The GCM specification (McGrew & Viega), test cases 13-16: AES-256 with 96-bit IVs.
        let k15 = "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308";
        let p15 = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255";
        let c15 = "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad";
        let cases = [
            (
                "00".repeat(32),
                "00".repeat(12),
                String::new(),
                String::new(),
                String::new(),
                "530f8afbc74536b9a963b4f1c4cb738b",
            ),
            (
                "00".repeat(32),
                "00".repeat(12),
                "00".repeat(16),
                String::new(),
                "cea7403d4d606b6e074ec5d3baf39d18".into(),
                "d0d1c8a799996bf0265b98b5d48ab919",
            ),
            (
                k15.into(),
                "cafebabefacedbaddecaf888".into(),
                p15.into(),
                String::new(),
                c15.into(),
                "b094dac5d93471bdec1a502270e3cc6c",
            ),
            (
                k15.into(),
                "cafebabefacedbaddecaf888".into(),
                p15[..120].into(),
                "feedfacedeadbeeffeedfacedeadbeefabaddad2".into(),
                c15[..120].into(),
                "76fc6ece0f4e1768cddf8853bb2d551b",
            ),
        ];
        for (key, iv, pt, aad, ct, tag) in cases {
            let cipher = Aes256Gcm::new_from_slice(&hex(&key)).unwrap();
            let nonce: [u8; 12] = hex(&iv).try_into().unwrap();
            let sealed = gcm_seal(&cipher, &nonce, &hex(&aad), &hex(&pt));
            assert_eq!(sealed, hex(&format!("{ct}{tag}")), "tag {tag}");
            assert_eq!(gcm_open(&cipher, &nonce, &hex(&aad), &sealed), Some(hex(&pt)));
            let mut bad = sealed.clone();
            bad[0] ^= 1;
            assert_eq!(gcm_open(&cipher, &nonce, &hex(&aad), &bad), None);
        }
    }

    fn key(id: &str, byte: u8) -> DataKey {
        DataKey::new(id, 1, &[byte; 32])
    }

    const CONTEXT: &[(String, String)] = &[];

    #[test]
    fn every_bit_flip_of_a_ciphertext_is_detected() {
        let key = key("k1", 1);
        let binding = Binding { field: "user.email", context: CONTEXT, record: None };
        for mode in [Mode::Randomized, Mode::Deterministic] {
            let text =
                seal(&key, mode, binding, &Plain::String("alice@example.com".into()), &mut CountingNonces(0)).unwrap();
            let envelope = Envelope::parse(&text).unwrap();
            assert_eq!(open(&key, &envelope, binding), Ok(Plain::String("alice@example.com".into())));
            for bit in 0..envelope.payload.len() * 8 {
                let mut flipped = envelope.clone();
                flipped.payload[bit / 8] ^= 1 << (bit % 8);
                assert_eq!(open(&key, &flipped, binding), Err(OpenError::AuthenticationFailed), "{mode:?} bit {bit}");
                // And through the text form, as a client would tamper with it.
                let reparsed = flipped.render();
                assert!(Envelope::parse(&reparsed).and_then(|e| open(&key, &e, binding)).is_err());
            }
        }
    }

    #[test]
    fn binding_key_id_and_mode_are_authenticated() {
        let k1 = key("k1", 1);
        let other_material = key("k1", 2);
        let tenant_a = [("tenant".to_string(), "a".to_string())];
        let tenant_b = [("tenant".to_string(), "b".to_string())];
        let bound = Binding { field: "user.email", context: &tenant_a, record: None };
        let text = seal(&k1, Mode::Randomized, bound, &Plain::Json("42".into()), &mut CountingNonces(9)).unwrap();
        let envelope = Envelope::parse(&text).unwrap();
        assert_eq!(open(&k1, &envelope, bound), Ok(Plain::Json("42".into())));
        let wrong = [
            Binding { field: "user.name", context: &tenant_a, record: None },
            Binding { field: "user.email", context: &tenant_b, record: None },
            Binding { field: "user.email", context: CONTEXT, record: None },
        ];
        for binding in wrong {
            assert_eq!(open(&k1, &envelope, binding), Err(OpenError::AuthenticationFailed));
        }
        assert_eq!(open(&other_material, &envelope, bound), Err(OpenError::AuthenticationFailed));
        // A record-bound value opens only with its record's id.
        let record = |id| Binding { record: id, ..bound };
        let text = seal(&k1, Mode::Deterministic, record(Some("7")), &Plain::Json("42".into()), &mut CountingNonces(0))
            .unwrap();
        let envelope = Envelope::parse(&text).unwrap();
        assert_eq!(open(&k1, &envelope, record(Some("7"))), Ok(Plain::Json("42".into())));
        for other in [Some("8"), Some("70"), Some(""), None] {
            assert_eq!(open(&k1, &envelope, record(other)), Err(OpenError::AuthenticationFailed), "{other:?}");
        }
        // Unbound associated data is what it was before record binding existed.
        let unbound = Binding { field: "f", context: &tenant_a, record: None }.aad(Mode::Randomized, "k");
        let expected: &[u8] = b"palisade-fe\0\0\0\0\x02v1\0\0\0\x01k\0\0\0\x01f\0\0\0\x01\0\0\0\x06tenant\0\0\0\x01a";
        assert_eq!(unbound, expected);
        let bound_aad = Binding { field: "f", context: &tenant_a, record: Some("7") }.aad(Mode::Randomized, "k");
        assert_eq!(bound_aad, [expected, b"\0\0\0\x06record\0\0\0\x017"].concat());
        let relabeled = Envelope { key_id: "k2", ..envelope.clone() };
        assert_eq!(open(&key("k2", 1), &relabeled, bound), Err(OpenError::AuthenticationFailed));
        // Length prefixes: ("ab","c") and ("a","bc") must differ.
        let x = [("ab".to_string(), "c".to_string())];
        let y = [("a".to_string(), "bc".to_string())];
        let aad = |c| Binding { field: "f", context: c, record: None }.aad(Mode::Randomized, "k");
        assert_ne!(aad(&x), aad(&y));
    }

    #[test]
    fn format_is_strict() {
        let good = seal(
            &key("k1", 1),
            Mode::Randomized,
            Binding { field: "f", context: CONTEXT, record: None },
            &Plain::Json("1".into()),
            &mut CountingNonces(0),
        )
        .unwrap();
        assert!(good.starts_with("enc:v1:k1:"));
        assert_eq!(good.len(), "enc:v1:k1:".len() + (12 + 2 + 16) * 4 / 3);
        for bad in ["enc:v2:k1:AAAA", "enc:v1::AAAA", "enc:v1:k1", "enc:v1:k1:", "xenc:v1:k1:AA", "enc:v1:k1:AAAA="] {
            assert_eq!(Envelope::parse(bad), Err(OpenError::Malformed), "{bad}");
        }
        let padded = format!("{good}=");
        assert_eq!(Envelope::parse(&padded), Err(OpenError::Malformed));
        // A payload of only nonce and tag (no type marker) is malformed.
        let short = Envelope { mode: Mode::Randomized, key_id: "k1", payload: vec![0; 28] }.render();
        assert_eq!(Envelope::parse(&short), Err(OpenError::Malformed));
    }

    #[test]
    fn plaintext_keeps_its_type() {
        assert_eq!(Plain::from_json_text("\"a\\u00e9\""), Some(Plain::String("aé".into())));
        assert_eq!(
            Plain::from_json_text("12345678901234567890123"),
            Some(Plain::Json("12345678901234567890123".into()))
        );
        assert_eq!(Plain::from_json_text("\"\\ud800\""), None);
        assert_eq!(Plain::String("a\"b".into()).to_json_text(), "\"a\\\"b\"");
        assert_eq!(Plain::decode(b"j{\"a\":1}".to_vec()), Ok(Plain::Json("{\"a\":1}".into())));
        assert_eq!(Plain::decode(b"j{".to_vec()), Err(OpenError::Malformed));
        assert_eq!(Plain::decode(b"x1".to_vec()), Err(OpenError::Malformed));
        assert_eq!(Plain::decode(Vec::new()), Err(OpenError::Malformed));
    }
}
