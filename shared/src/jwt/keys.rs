//! JWK Sets (RFC 7517) parsed into jwt-simple verifying keys, one per (key, algorithm).
//!
//! A key whose JWK names no `alg` is expanded into one entry per algorithm of the provider's
//! allow-list that fits its type (an RSA key serves RS256 and PS256 if both are allowed), so at
//! request time the header's `alg` selects the key type and a confused token (an HMAC `alg`
//! pointing at an RSA key) finds no key instead of being checked with the wrong primitive.
//! Keys of types or curves we do not know, and `use: enc` keys, are skipped as RFC 7517 §5 asks.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
#[cfg(any(feature = "jwt-ec", feature = "jwt-eddsa", feature = "jwt-hmac"))]
use jwt_simple::prelude::*;
#[cfg(feature = "jwt-rsa")]
use rsa::sha2::{Sha256 as RsaSha256, Sha384 as RsaSha384, Sha512 as RsaSha512};
#[cfg(feature = "jwt-rsa")]
use rsa::{pss, BoxedUint, PublicKey as RsaPublicKey};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// A signature algorithm Palisade verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// ECDSA P-384 with SHA-384.
    ES384,
    /// Ed25519.
    EdDSA,
    /// HMAC with SHA-256.
    HS256,
    /// HMAC with SHA-384.
    HS384,
    /// HMAC with SHA-512.
    HS512,
}

/// Every algorithm, in a stable order.
pub const ALL_ALGORITHMS: [Algorithm; 12] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::HS512,
];

/// The kind of key material an algorithm needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// `kty: RSA`.
    Rsa,
    /// `kty: EC`, `crv: P-256`.
    P256,
    /// `kty: EC`, `crv: P-384`.
    P384,
    /// `kty: OKP`, `crv: Ed25519`.
    Ed25519,
    /// `kty: oct` (a shared secret).
    Oct,
}

impl Algorithm {
    /// The JOSE name, as in the `alg` header.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::EdDSA => "EdDSA",
            Algorithm::HS256 => "HS256",
            Algorithm::HS384 => "HS384",
            Algorithm::HS512 => "HS512",
        }
    }

    /// Parses a JOSE `alg` name; `none` and unknown names are `None`.
    pub fn from_name(name: &str) -> Option<Self> {
        ALL_ALGORITHMS.into_iter().find(|alg| alg.name() == name)
    }

    /// The key material this algorithm verifies with.
    pub fn key_kind(self) -> KeyKind {
        match self {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => KeyKind::Rsa,
            Algorithm::ES256 => KeyKind::P256,
            Algorithm::ES384 => KeyKind::P384,
            Algorithm::EdDSA => KeyKind::Ed25519,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => KeyKind::Oct,
        }
    }

    /// The cargo feature of the core that verifies this algorithm (`jwt` enables them all).
    pub fn family_feature(self) -> &'static str {
        match self.key_kind() {
            KeyKind::Rsa => "jwt-rsa",
            KeyKind::P256 | KeyKind::P384 => "jwt-ec",
            KeyKind::Ed25519 => "jwt-eddsa",
            KeyKind::Oct => "jwt-hmac",
        }
    }

    /// Whether this build verifies the algorithm: a filter built with fewer families is
    /// smaller, and refuses a config naming the others.
    pub fn compiled(self) -> bool {
        match self.key_kind() {
            KeyKind::Rsa => cfg!(feature = "jwt-rsa"),
            KeyKind::P256 | KeyKind::P384 => cfg!(feature = "jwt-ec"),
            KeyKind::Ed25519 => cfg!(feature = "jwt-eddsa"),
            KeyKind::Oct => cfg!(feature = "jwt-hmac"),
        }
    }

    /// The shortest HMAC secret RFC 7518 §3.2 allows: the hash output size.
    #[cfg(feature = "jwt-hmac")]
    fn min_secret_len(self) -> usize {
        match self {
            Algorithm::HS384 => 48,
            Algorithm::HS512 => 64,
            _ => 32,
        }
    }
}

/// A public key (or HMAC secret) ready to verify one algorithm.
///
/// RSA keys use the `rsa` crate's arithmetic directly: its Montgomery arithmetic is several
/// times faster in wasm than jwt-simple's RSA backend. RSASSA-PKCS1-v1_5 goes through
/// [`super::rsa_pkcs1`] (the public exponent's fast path), RSASSA-PSS (salt as long as the hash,
/// RFC 7518 §3.5) through the crate's verifier. ES256 goes through [`super::es256`]; the other
/// families verify through jwt-simple.
#[derive(Debug, Clone)]
pub enum VerifyingKey {
    /// RS256.
    #[cfg(feature = "jwt-rsa")]
    Rs256(RsaPublicKey),
    /// RS384.
    #[cfg(feature = "jwt-rsa")]
    Rs384(RsaPublicKey),
    /// RS512.
    #[cfg(feature = "jwt-rsa")]
    Rs512(RsaPublicKey),
    /// PS256.
    #[cfg(feature = "jwt-rsa")]
    Ps256(pss::VerifyingKey<RsaSha256>),
    /// PS384.
    #[cfg(feature = "jwt-rsa")]
    Ps384(pss::VerifyingKey<RsaSha384>),
    /// PS512.
    #[cfg(feature = "jwt-rsa")]
    Ps512(pss::VerifyingKey<RsaSha512>),
    /// ES256.
    #[cfg(feature = "jwt-ec")]
    Es256(super::es256::PublicKey),
    /// ES384.
    #[cfg(feature = "jwt-ec")]
    Es384(ES384PublicKey),
    /// EdDSA over Ed25519.
    #[cfg(feature = "jwt-eddsa")]
    EdDsa(Ed25519PublicKey),
    /// HS256.
    #[cfg(feature = "jwt-hmac")]
    Hs256(HS256Key),
    /// HS384.
    #[cfg(feature = "jwt-hmac")]
    Hs384(HS384Key),
    /// HS512.
    #[cfg(feature = "jwt-hmac")]
    Hs512(HS512Key),
}

/// One usable key: its id, the one algorithm it verifies, and the key.
#[derive(Debug, Clone)]
pub struct Key {
    /// `kid`, when the JWK has one.
    pub kid: Option<String>,
    /// The algorithm this entry verifies.
    pub alg: Algorithm,
    /// The key itself.
    pub key: VerifyingKey,
}

/// The keys of one provider, with a fingerprint that changes whenever the set changes.
#[derive(Debug, Clone)]
pub struct KeySet {
    keys: Vec<Key>,
    version: u64,
}

/// Why a JWK Set was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksError {
    /// Not a JSON object with a `keys` array.
    NotAJwkSet(String),
    /// A key of a supported type is malformed.
    BadKey {
        /// Index in `keys`.
        index: usize,
        /// What is wrong.
        problem: &'static str,
    },
    /// No key fits the provider's algorithms.
    NoUsableKey,
}

impl std::fmt::Display for JwksError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwksError::NotAJwkSet(err) => write!(f, "not a JWK set: {err}"),
            JwksError::BadKey { index, problem } => write!(f, "keys[{index}]: {problem}"),
            JwksError::NoUsableKey => f.write_str("no key usable with the allowed algorithms"),
        }
    }
}

impl std::error::Error for JwksError {}

/// Where a key set comes from decides whether shared secrets may appear in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOrigin {
    /// Inline config or a remote JWKS: public keys only.
    Public,
    /// The VM environment: `oct` keys allowed.
    Environment,
}

#[derive(Deserialize)]
struct JwkSetDoc {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
#[cfg_attr(not(feature = "jwt"), allow(dead_code))] // members of the families left out
struct Jwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default, rename = "use")]
    key_use: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
    #[serde(default)]
    k: Option<String>,
    #[serde(default)]
    d: Option<String>,
}

/// Largest JWK Set accepted, in bytes.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;

impl KeySet {
    /// Parses a JWK Set, keeping the keys usable with `allowed`.
    pub fn parse(json: &[u8], allowed: &[Algorithm], origin: KeyOrigin) -> Result<Self, JwksError> {
        if json.len() > MAX_JWKS_BYTES {
            return Err(JwksError::NotAJwkSet(format!("larger than {MAX_JWKS_BYTES} bytes")));
        }
        let doc: JwkSetDoc = serde_json::from_slice(json).map_err(|err| JwksError::NotAJwkSet(err.to_string()))?;
        let mut keys = Vec::new();
        for (index, value) in doc.keys.into_iter().enumerate() {
            let jwk: Jwk =
                serde_json::from_value(value).map_err(|_| JwksError::BadKey { index, problem: "not a JWK" })?;
            keys.extend(jwk_keys(&jwk, allowed, origin).map_err(|problem| JwksError::BadKey { index, problem })?);
        }
        if keys.is_empty() {
            return Err(JwksError::NoUsableKey);
        }
        Ok(Self { keys, version: fingerprint(json) })
    }

    /// A key set holding one HMAC secret (from the environment), for each allowed HS algorithm
    /// the secret is long enough for.
    pub fn from_secret(secret: &[u8], kid: Option<&str>, allowed: &[Algorithm]) -> Result<Self, JwksError> {
        #[cfg(feature = "jwt-hmac")]
        let keys = hmac_keys(secret, kid, None, allowed).map_err(|problem| JwksError::BadKey { index: 0, problem })?;
        #[cfg(not(feature = "jwt-hmac"))]
        let keys: Vec<Key> = {
            let _ = allowed; // No HMAC in this build: the config refused HS algorithms already.
            Vec::new()
        };
        if keys.is_empty() {
            return Err(JwksError::NoUsableKey);
        }
        let mut hasher = Sha256::new();
        hasher.update(b"secret\0");
        hasher.update(secret);
        hasher.update(kid.unwrap_or_default());
        Ok(Self { keys, version: fingerprint(&hasher.finalize()) })
    }

    /// Every key entry.
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// A fingerprint of the source document: equal sets have equal versions.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Whether any entry carries `kid`.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|key| key.kid.as_deref() == Some(kid))
    }
}

/// The first 8 bytes of SHA-256 of `bytes`, as a number.
pub fn fingerprint(bytes: &[u8]) -> u64 {
    let digest = Sha256::digest(bytes);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

fn jwk_keys(jwk: &Jwk, allowed: &[Algorithm], origin: KeyOrigin) -> Result<Vec<Key>, &'static str> {
    if jwk.key_use.as_deref().is_some_and(|u| u != "sig") {
        return Ok(Vec::new());
    }
    if jwk.d.is_some() {
        return Err("private key material in a public key set");
    }
    let kind = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
        ("RSA", _) => KeyKind::Rsa,
        ("EC", Some("P-256")) => KeyKind::P256,
        ("EC", Some("P-384")) => KeyKind::P384,
        ("OKP", Some("Ed25519")) => KeyKind::Ed25519,
        ("oct", _) => KeyKind::Oct,
        _ => return Ok(Vec::new()),
    };
    // A JWK's `alg` pins it to one algorithm; an unknown `alg` means the key is not for us.
    let pinned = match jwk.alg.as_deref() {
        Some(name) => match Algorithm::from_name(name) {
            Some(alg) if alg.key_kind() == kind => Some(alg),
            Some(_) => return Err("alg does not fit the key type"),
            None => return Ok(Vec::new()),
        },
        None => None,
    };
    let algs: Vec<Algorithm> = allowed
        .iter()
        .copied()
        .filter(|alg| alg.compiled() && alg.key_kind() == kind && pinned.is_none_or(|p| p == *alg))
        .collect();
    if algs.is_empty() {
        return Ok(Vec::new());
    }
    if kind == KeyKind::Oct && origin != KeyOrigin::Environment {
        return Err("symmetric (oct) keys are accepted only from the environment");
    }
    let kid = jwk.kid.clone();
    #[cfg_attr(not(any(feature = "jwt-rsa", feature = "jwt-ec", feature = "jwt-eddsa")), allow(unused_variables))]
    let entry = |alg, key| Key { kid: kid.clone(), alg, key };
    match kind {
        #[cfg(feature = "jwt-rsa")]
        KeyKind::Rsa => {
            let n = member(&jwk.n, "missing or invalid n")?;
            let e = member(&jwk.e, "missing or invalid e")?;
            algs.into_iter().map(|alg| Ok(entry(alg, rsa_key(alg, &n, &e)?))).collect()
        }
        #[cfg(feature = "jwt-ec")]
        KeyKind::P256 | KeyKind::P384 => {
            let size = if kind == KeyKind::P256 { 32 } else { 48 };
            let x = member(&jwk.x, "missing or invalid x")?;
            let y = member(&jwk.y, "missing or invalid y")?;
            if x.len() != size || y.len() != size {
                return Err("x and y must be the curve's coordinate size");
            }
            let key = if kind == KeyKind::P256 {
                let (Ok(x), Ok(y)) = (<[u8; 32]>::try_from(x.as_slice()), <[u8; 32]>::try_from(y.as_slice())) else {
                    return Err("x and y must be the curve's coordinate size");
                };
                VerifyingKey::Es256(super::es256::PublicKey::from_coordinates(&x, &y).ok_or("not a point on P-256")?)
            } else {
                let mut point = Vec::with_capacity(1 + 2 * size);
                point.push(4);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                VerifyingKey::Es384(ES384PublicKey::from_bytes(&point).map_err(|_| "not a point on P-384")?)
            };
            Ok(algs.into_iter().map(|alg| entry(alg, key.clone())).collect())
        }
        #[cfg(feature = "jwt-eddsa")]
        KeyKind::Ed25519 => {
            let x = member(&jwk.x, "missing or invalid x")?;
            if x.len() != 32 {
                return Err("x must be 32 bytes");
            }
            let key = Ed25519PublicKey::from_bytes(&x).map_err(|_| "invalid Ed25519 key")?;
            Ok(algs.into_iter().map(|alg| entry(alg, VerifyingKey::EdDsa(key.clone()))).collect())
        }
        #[cfg(feature = "jwt-hmac")]
        KeyKind::Oct => {
            let k = member(&jwk.k, "missing or invalid k")?;
            hmac_keys(&k, jwk.kid.as_deref(), pinned, &algs)
        }
        // A family this build leaves out: `algs` was empty already.
        #[allow(unreachable_patterns)]
        _ => Ok(Vec::new()),
    }
}

fn member(value: &Option<String>, problem: &'static str) -> Result<Vec<u8>, &'static str> {
    let text = value.as_deref().ok_or(problem)?;
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| problem)?;
    if bytes.is_empty() {
        return Err(problem);
    }
    Ok(bytes)
}

/// An RSA key under jwt-simple's policy: a 2048- to 4096-bit odd modulus, exponent 65537.
#[cfg(feature = "jwt-rsa")]
fn rsa_key(alg: Algorithm, n: &[u8], e: &[u8]) -> Result<VerifyingKey, &'static str> {
    const BAD: &str = "invalid RSA key (modulus must be 2048 to 4096 bits)";
    let n = trim_leading_zeros(n);
    let bits = n.first().map_or(0, |top| n.len() * 8 - top.leading_zeros() as usize);
    if !(2048..=4096).contains(&bits) || n.last().is_none_or(|low| low & 1 == 0) || trim_leading_zeros(e) != [1, 0, 1] {
        return Err(BAD);
    }
    let key =
        RsaPublicKey::new(BoxedUint::from_be_slice_vartime(n), BoxedUint::from_be_slice_vartime(e)).map_err(|_| BAD)?;
    Ok(match alg {
        Algorithm::RS256 => VerifyingKey::Rs256(key),
        Algorithm::RS384 => VerifyingKey::Rs384(key),
        Algorithm::RS512 => VerifyingKey::Rs512(key),
        Algorithm::PS256 => VerifyingKey::Ps256(pss::VerifyingKey::new(key)),
        Algorithm::PS384 => VerifyingKey::Ps384(pss::VerifyingKey::new(key)),
        Algorithm::PS512 => VerifyingKey::Ps512(pss::VerifyingKey::new(key)),
        _ => return Err("not an RSA algorithm"),
    })
}

#[cfg(feature = "jwt-rsa")]
fn trim_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes.get(first..).unwrap_or_default()
}

#[cfg(feature = "jwt-hmac")]
fn hmac_keys(
    secret: &[u8],
    kid: Option<&str>,
    pinned: Option<Algorithm>,
    allowed: &[Algorithm],
) -> Result<Vec<Key>, &'static str> {
    if let Some(alg) = pinned {
        if secret.len() < alg.min_secret_len() {
            return Err("HMAC secret shorter than the hash output");
        }
    }
    let keys: Vec<Key> = allowed
        .iter()
        .copied()
        .filter(|alg| alg.key_kind() == KeyKind::Oct && pinned.is_none_or(|p| p == *alg))
        .filter(|alg| secret.len() >= alg.min_secret_len())
        .map(|alg| {
            let key = match alg {
                Algorithm::HS384 => VerifyingKey::Hs384(HS384Key::from_bytes(secret)),
                Algorithm::HS512 => VerifyingKey::Hs512(HS512Key::from_bytes(secret)),
                _ => VerifyingKey::Hs256(HS256Key::from_bytes(secret)),
            };
            Key { kid: kid.map(str::to_string), alg, key }
        })
        .collect();
    if keys.is_empty() && allowed.iter().any(|alg| alg.key_kind() == KeyKind::Oct) {
        return Err("HMAC secret shorter than the hash output");
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::testdata;

    const ALL: &[Algorithm] = &ALL_ALGORITHMS;

    #[test]
    fn parses_every_public_key_type() {
        let set = testdata::Keys::get().jwks();
        let keys = KeySet::parse(set.as_bytes(), ALL, KeyOrigin::Public).unwrap();
        let algs: Vec<_> = keys.keys().iter().map(|k| (k.kid.as_deref().unwrap_or(""), k.alg)).collect();
        assert!(algs.contains(&("rsa-1", Algorithm::RS256)));
        assert!(algs.contains(&("rsa-1", Algorithm::PS512)));
        assert!(algs.contains(&("ec-256", Algorithm::ES256)));
        assert!(algs.contains(&("ec-384", Algorithm::ES384)));
        assert!(algs.contains(&("ed-1", Algorithm::EdDSA)));
        assert!(!algs.iter().any(|(kid, alg)| *kid == "ec-256" && *alg != Algorithm::ES256));
        assert!(keys.has_kid("rsa-1") && !keys.has_kid("nope"));
    }

    #[test]
    fn allow_list_limits_the_entries() {
        let set = testdata::Keys::get().jwks();
        let keys = KeySet::parse(set.as_bytes(), &[Algorithm::ES256], KeyOrigin::Public).unwrap();
        assert!(keys.keys().iter().all(|k| k.alg == Algorithm::ES256));
        assert_eq!(keys.keys().len(), 1);
    }

    #[test]
    fn version_follows_the_document() {
        let a = KeySet::parse(testdata::RFC7515_A3_JWKS.as_bytes(), ALL, KeyOrigin::Public).unwrap();
        let b = KeySet::parse(testdata::RFC7515_A3_JWKS.as_bytes(), ALL, KeyOrigin::Public).unwrap();
        let c = KeySet::parse(testdata::RFC7515_A2_JWKS.as_bytes(), ALL, KeyOrigin::Public).unwrap();
        assert_eq!(a.version(), b.version());
        assert_ne!(a.version(), c.version());
    }

    #[test]
    fn skips_unknown_types_curves_and_encryption_keys() {
        let json = br#"{"keys":[{"kty":"EC","crv":"secp256k1","x":"AA","y":"AA"},{"kty":"XYZ"},
            {"kty":"RSA","use":"enc","n":"AA","e":"AQAB"},{"kty":"OKP","crv":"X25519","x":"AA"},
            {"kty":"EC","crv":"P-256","alg":"ES999","x":"AA","y":"AA"}]}"#;
        assert_eq!(KeySet::parse(json, ALL, KeyOrigin::Public).unwrap_err(), JwksError::NoUsableKey);
    }

    #[test]
    fn rejects_malformed_keys_with_their_index() {
        let cases: [(&[u8], &str); 9] = [
            (b"[]", "not a JWK set"),
            (br#"{"keys":{}}"#, "not a JWK set"),
            (br#"{"keys":[{"kty":"RSA","e":"AQAB"}]}"#, "keys[0]: missing or invalid n"),
            (br#"{"keys":[{"kty":"RSA","n":"AAAA","e":"AQAB"}]}"#, "keys[0]: invalid RSA key"),
            (br#"{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}"#, "keys[0]: x and y must be"),
            (br#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"A+/="}]}"#, "keys[0]: missing or invalid x"),
            (br#"{"keys":[{"kty":"oct","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}]}"#, "keys[0]: symmetric"),
            (br#"{"keys":[{"kty":"RSA","alg":"ES256","n":"AA","e":"AQAB"}]}"#, "keys[0]: alg does not fit"),
            (br#"{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA","d":"AA"}]}"#, "keys[0]: private key"),
        ];
        for (json, expected) in cases {
            let err = KeySet::parse(json, ALL, KeyOrigin::Public).unwrap_err().to_string();
            assert!(err.starts_with(expected), "{}: got {err}", String::from_utf8_lossy(json));
        }
    }

    #[test]
    fn hmac_secrets_must_be_as_long_as_the_hash() {
        let short = KeySet::from_secret(&[7u8; 31], None, &[Algorithm::HS256]).unwrap_err();
        assert_eq!(short.to_string(), "keys[0]: HMAC secret shorter than the hash output");
        let mid = KeySet::from_secret(&[7u8; 40], Some("k"), &[Algorithm::HS256, Algorithm::HS512]).unwrap();
        assert_eq!(mid.keys().iter().map(|k| k.alg).collect::<Vec<_>>(), [Algorithm::HS256]);
        assert_eq!(KeySet::from_secret(&[7u8; 64], None, &[Algorithm::RS256]).unwrap_err(), JwksError::NoUsableKey);
        let env = KeySet::parse(testdata::RFC7515_A1_JWKS.as_bytes(), ALL, KeyOrigin::Environment).unwrap();
        assert!(env.keys().iter().any(|k| k.alg == Algorithm::HS256));
    }
}
