//! Field-level encryption of JSON bodies: selected fields are encrypted in requests before the
//! upstream sees them, and decrypted in responses for callers allowed to read them.
//!
//! ```json
//! {"keys": {"primary": "k2", "min_version": 1,
//!           "data_keys": [{"id": "k1", "version": 1, "env": "PALISADE_FE_K1"},
//!                         {"id": "k2", "version": 2, "wrapped": "AQEB...", "kek": "kek"}],
//!           "key_encryption_keys": [{"id": "kek", "env": "PALISADE_FE_KEK"}]},
//!  "fields": {"user.email": {"mode": "deterministic",
//!                            "context": [{"name": "tenant", "claim": "tenant_id"}],
//!                            "readers": [{"claim": "roles", "any_of": ["pii-reader"]}]}},
//!  "routes": [{"match": {"path": {"prefix": "/users"}, "methods": ["POST"]},
//!              "encrypt": [{"path": "/email", "field": "user.email", "required": true}]},
//!             {"match": {"path": {"prefix": "/users"}, "methods": ["GET"]},
//!              "decrypt": [{"path": "/users/*/email", "field": "user.email"}]}]}
//! ```
//!
//! `POST /users {"email":"a@x.io"}` reaches the upstream as
//! `{"email":"enc:d1:k2:<base64url>"}`, bound to field `user.email` and the caller's tenant.
//! `GET /users` returns the plaintext to callers whose `roles` claim holds `pii-reader` and the
//! same tenant, `null` to others. Modules: [`config`] (config and compiled policy), [`keyring`]
//! (keys, derivation, retirement), [`envelope`] (wrapped data keys), [`ciphertext`] (format and
//! AEAD), [`pointer`] (JSON pointers with `*`), [`json`] (span-keeping parser), [`usage`]
//! (nonce-limit accounting), [`transform`] (the request and response transforms).

pub mod ciphertext;
pub mod config;
pub mod envelope;
pub mod json;
pub mod keyring;
pub mod pointer;
pub mod siv;
pub mod transform;
pub mod usage;

pub use ciphertext::{Mode, NonceSource, RandomUnavailable};
pub use config::Policy;
pub use transform::{Decrypted, Encrypted, Failure, Refusal, Skipped};
pub use usage::{LedgerError, MemoryLedger, UsageLedger, UsageReport};

/// Fixtures shared by this module's tests.
#[cfg(test)]
pub(crate) mod testing {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;

    use super::ciphertext::{NonceSource, RandomUnavailable};
    use super::envelope;

    /// Bytes from hex, for test vectors.
    pub fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// Counts up from a seed, so tests are deterministic.
    pub struct CountingNonces(pub u8);

    impl NonceSource for CountingNonces {
        /// Each nonce-sized piece gets the next counter value, however many one call asks for.
        fn fill(&mut self, dest: &mut [u8]) -> Result<(), RandomUnavailable> {
            for nonce in dest.chunks_mut(super::ciphertext::NONCE_LEN) {
                self.0 = self.0.wrapping_add(1);
                nonce.fill(self.0);
            }
            Ok(())
        }
    }

    /// A small deterministic PRNG (xorshift64*) for generated documents and nonces.
    pub struct Xorshift(pub u64);

    impl Xorshift {
        /// The next value.
        pub fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        /// A value below `n` (n > 0).
        pub fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    impl NonceSource for Xorshift {
        fn fill(&mut self, dest: &mut [u8]) -> Result<(), RandomUnavailable> {
            for byte in dest {
                *byte = self.next() as u8;
            }
            Ok(())
        }
    }

    /// The VM environment the test config reads.
    pub fn test_env(name: &str) -> Option<String> {
        match name {
            "K1" => Some(STANDARD.encode([1u8; 32])),
            "K3" => Some(STANDARD.encode([3u8; 32])),
            "KEK" => Some(format!("{}\n", STANDARD.encode([9u8; 32]))),
            "SHORT_KEY" => Some(STANDARD.encode([1u8; 16])),
            _ => None,
        }
    }

    /// A config with two keys (k1 from env, k2 wrapped, primary), three fields, two routes.
    pub fn config_json() -> String {
        let wrapped = envelope::wrap(&[9; 32], "k2", &[2; 32], &[1; 12]);
        serde_json::json!({
            "keys": {
                "primary": "k2",
                "data_keys": [
                    {"id": "k1", "version": 1, "env": "K1"},
                    {"id": "k2", "version": 2, "wrapped": wrapped, "kek": "kek"}
                ],
                "key_encryption_keys": [{"id": "kek", "env": "KEK"}]
            },
            "fields": {
                "user.email": {
                    "mode": "deterministic",
                    "context": [{"name": "tenant", "claim": "tenant_id"}],
                    "readers": [{"claim": "roles", "any_of": ["pii-reader"]}],
                    "undecryptable": {"marker": "[undecryptable]"}
                },
                "user.name": {
                    "readers": [{"claim": "roles", "any_of": ["pii-reader"]}, {"claim": "scope", "any_of": ["names"], "split_spaces": true}],
                    "unreadable": {"marker": "[redacted]"}
                },
                "user.ssn": {"unreadable": "ciphertext"}
            },
            "routes": [
                {
                    "match": {"path": {"prefix": "/users"}, "methods": ["POST", "PUT"]},
                    "encrypt": [
                        {"path": "/email", "field": "user.email", "required": true},
                        {"path": "/name", "field": "user.name"},
                        {"path": "/ids/*/ssn", "field": "user.ssn"}
                    ],
                    "decrypt": [
                        {"path": "/email", "field": "user.email"},
                        {"path": "/name", "field": "user.name"}
                    ]
                },
                {
                    "match": {"path": {"prefix": "/users"}, "methods": ["GET"]},
                    "decrypt": [
                        {"path": "/users/*/email", "field": "user.email"},
                        {"path": "/users/*/name", "field": "user.name"},
                        {"path": "/users/*/ids/*/ssn", "field": "user.ssn"}
                    ]
                }
            ]
        })
        .to_string()
    }
}
