//! Signing keys and tokens for the JWT cases, minted natively (jwt-simple) when the bench starts:
//! one key per algorithm, an inline JWK Set both verifiers share, and tokens with a far `exp`.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Result};
use jwt_simple::prelude::*;
use serde_json::{json, Map, Value};

/// The `iss` of every bench token.
pub const ISSUER: &str = "https://auth.bench.example.com";
/// The `aud` of every bench token.
pub const AUDIENCE: &str = "api.example.com";
/// Tokens stay valid this long (the bench must not age them out): ten years.
const LIFETIME_SECS: u64 = 10 * 365 * 86_400;

/// A signature algorithm of the bench.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// RSASSA-PKCS1-v1_5 2048-bit with SHA-256.
    Rs256,
    /// Ed25519.
    EdDsa,
}

impl Alg {
    /// The JOSE name.
    pub fn name(self) -> &'static str {
        match self {
            Alg::Es256 => "ES256",
            Alg::Rs256 => "RS256",
            Alg::EdDsa => "EdDSA",
        }
    }
}

/// One signing key per algorithm.
pub struct Keys {
    es256: ES256KeyPair,
    rs256: RS256KeyPair,
    ed: Ed25519KeyPair,
}

impl Keys {
    /// Fresh keys (RSA 2048 takes a moment).
    pub fn generate() -> Result<Keys> {
        Ok(Keys {
            es256: ES256KeyPair::generate().with_key_id("bench-ec"),
            rs256: RS256KeyPair::generate(2048).map_err(|e| anyhow!("RSA key: {e}"))?.with_key_id("bench-rsa"),
            ed: Ed25519KeyPair::generate().with_key_id("bench-ed"),
        })
    }

    /// The public JWK Set of the three keys, each pinned to its algorithm.
    pub fn jwks(&self) -> Result<Value> {
        let jwk = |json: String, kid: &str, alg: &str| -> Result<Value> {
            let mut value: Value = serde_json::from_str(&json)?;
            value["kid"] = json!(kid);
            value["alg"] = json!(alg);
            value["use"] = json!("sig");
            Ok(value)
        };
        Ok(json!({"keys": [
            jwk(self.es256.public_key().to_jwk(), "bench-ec", "ES256")?,
            jwk(self.rs256.public_key().to_jwk(), "bench-rsa", "RS256")?,
            jwk(self.ed.public_key().to_jwk(), "bench-ed", "EdDSA")?,
        ]}))
    }

    /// A token for user `n` with realistic claims and a far `exp`; distinct `n`, distinct token.
    pub fn token(&self, alg: Alg, n: usize) -> Result<String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let claims: JWTClaims<Map<String, Value>> = serde_json::from_value(json!({
            "iss": ISSUER,
            "sub": format!("user-{n:06}"),
            "aud": [AUDIENCE],
            "iat": now - 60,
            "exp": now + LIFETIME_SECS,
            "jti": format!("bench-{}-{n}", alg.name()),
            "azp": "web-app",
            "scope": "orders.read orders.write profile",
            "email": format!("user{n}@example.com"),
            "tenant_id": "acme",
            "realm_access": {"roles": ["customer", "beta"]},
        }))?;
        let signed = match alg {
            Alg::Es256 => self.es256.sign(claims),
            Alg::Rs256 => self.rs256.sign(claims),
            Alg::EdDsa => self.ed.sign(claims),
        };
        signed.map_err(|e| anyhow!("signing a {} token: {e}", alg.name()))
    }
}
