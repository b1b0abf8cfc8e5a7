//! API keys: a second provider kind, for callers that cannot get a JWT.
//!
//! ```json
//! {"api_keys": {"partners": {"from_header": "x-api-key",
//!   "keys": [{"sha256": "<64 hex digits>", "consumer": "acme", "tier": "gold"}]}}}
//! ```
//!
//! Only the SHA-256 of each key is in the config. The presented key is hashed and compared
//! with every configured hash in constant time, without stopping at a match, so the time
//! taken says nothing about which key (or how much of one) matched.

use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

use crate::config::ConfigError;

/// One key as written in config.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// SHA-256 of the key, 64 hex digits.
    pub sha256: String,
    /// The consumer this key belongs to.
    pub consumer: String,
    /// The consumer's service tier.
    #[serde(default)]
    pub tier: Option<String>,
}

/// A configured key, its hash decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    hash: [u8; 32],
    /// Consumer name.
    pub consumer: String,
    /// Service tier.
    pub tier: Option<String>,
}

/// The compiled key list of one provider.
#[derive(Debug, Clone, Default)]
pub struct ApiKeys {
    keys: Vec<ApiKey>,
}

impl ApiKeys {
    /// Decodes and checks the hashes; `field` names the list in errors.
    pub fn compile(configs: &[ApiKeyConfig], field: &str) -> Result<Self, ConfigError> {
        if configs.is_empty() {
            return Err(ConfigError::new(field, "must list at least one key"));
        }
        let mut keys: Vec<ApiKey> = Vec::with_capacity(configs.len());
        for (i, config) in configs.iter().enumerate() {
            let at = format!("{field}[{i}]");
            let hash = decode_hex32(&config.sha256).ok_or_else(|| {
                ConfigError::new(format!("{at}.sha256"), "must be 64 hex digits (SHA-256 of the key)")
            })?;
            if keys.iter().any(|k| k.hash == hash) {
                return Err(ConfigError::new(format!("{at}.sha256"), "duplicate key"));
            }
            if config.consumer.is_empty() {
                return Err(ConfigError::new(format!("{at}.consumer"), "must not be empty"));
            }
            keys.push(ApiKey { hash, consumer: config.consumer.clone(), tier: config.tier.clone() });
        }
        Ok(Self { keys })
    }

    /// The key matching `presented`, comparing against every key without early exit.
    pub fn authenticate(&self, presented: &str) -> Option<&ApiKey> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = Choice::from(0);
        let mut index = 0u32;
        for (i, key) in self.keys.iter().enumerate() {
            let equal = digest.ct_eq(&key.hash);
            index.conditional_assign(&u32::try_from(i).unwrap_or(u32::MAX), equal);
            found |= equal;
        }
        if bool::from(found) {
            self.keys.get(usize::try_from(index).ok()?)
        } else {
            None
        }
    }
}

/// Lower-case hex of SHA-256, the form the config stores.
pub fn sha256_hex(input: &[u8]) -> String {
    Sha256::digest(input).iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex32(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (slot, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let hi = char::from(*pair.first()?).to_digit(16)?;
        let lo = char::from(*pair.get(1)?).to_digit(16)?;
        *slot = u8::try_from(hi << 4 | lo).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> ApiKeys {
        let configs = [
            ApiKeyConfig { sha256: sha256_hex(b"key-one"), consumer: "acme".into(), tier: Some("gold".into()) },
            ApiKeyConfig { sha256: sha256_hex(b"key-two").to_uppercase(), consumer: "globex".into(), tier: None },
        ];
        ApiKeys::compile(&configs, "api_keys.partners.keys").unwrap()
    }

    #[test]
    fn finds_each_key_and_nothing_else() {
        let keys = keys();
        assert_eq!(keys.authenticate("key-one").map(|k| k.consumer.as_str()), Some("acme"));
        assert_eq!(keys.authenticate("key-one").and_then(|k| k.tier.as_deref()), Some("gold"));
        assert_eq!(keys.authenticate("key-two").map(|k| k.consumer.as_str()), Some("globex"));
        assert_eq!(keys.authenticate("key-three"), None);
        assert_eq!(keys.authenticate(""), None);
        assert_eq!(keys.authenticate(&sha256_hex(b"key-one")), None);
    }

    #[test]
    fn sha256_hex_matches_the_fips_vector() {
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn bad_key_lists_are_rejected() {
        let at = "api_keys.p.keys";
        let entry =
            |sha: &str, consumer: &str| ApiKeyConfig { sha256: sha.into(), consumer: consumer.into(), tier: None };
        let good = sha256_hex(b"k");
        let cases = [
            (vec![], "api_keys.p.keys: must list at least one key"),
            (vec![entry("abc", "a")], "api_keys.p.keys[0].sha256: must be 64 hex digits (SHA-256 of the key)"),
            (
                vec![entry(&"g".repeat(64), "a")],
                "api_keys.p.keys[0].sha256: must be 64 hex digits (SHA-256 of the key)",
            ),
            (vec![entry(&good, "a"), entry(&good, "b")], "api_keys.p.keys[1].sha256: duplicate key"),
            (vec![entry(&good, "")], "api_keys.p.keys[0].consumer: must not be empty"),
        ];
        for (configs, expected) in cases {
            assert_eq!(ApiKeys::compile(&configs, at).unwrap_err().to_string(), expected);
        }
    }
}
