//! Verification of one compact JWS token against one provider, in Envoy's order: shape, `alg`,
//! issuer, time, audience, subject, then the key and the signature (the expensive step last,
//! so a forged token with wrong claims costs no signature check).
//!
//! The header and payload are parsed here (duplicate members rejected, sizes bounded); the
//! signature and jwt-simple's own time checks run with `artificial_time` set to the caller's
//! `now`, never the VM clock.

use std::collections::HashSet;
use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jwt_simple::prelude::*;
#[cfg(any(feature = "jwt-ec", feature = "jwt-eddsa", feature = "jwt-hmac"))]
use jwt_simple::JWTError;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::failure::Failure;
use super::keys::{Algorithm, KeySet, VerifyingKey};

/// An allowed-subject rule.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SubjectMatch {
    /// `sub` equals this.
    Exact(String),
    /// `sub` starts with this (e.g. a SPIFFE trust domain and namespace).
    Prefix(String),
}

impl SubjectMatch {
    fn matches(&self, subject: &str) -> bool {
        match self {
            SubjectMatch::Exact(exact) => subject == exact,
            SubjectMatch::Prefix(prefix) => subject.starts_with(prefix.as_str()),
        }
    }
}

/// What a provider demands of a token's claims.
#[derive(Debug, Clone)]
pub struct ClaimRules {
    /// Required `iss`.
    pub issuer: String,
    /// Allowed audiences (any of); empty means `aud` is not checked.
    pub audiences: Vec<String>,
    /// Allowed subjects (any of); empty means `sub` is not checked.
    pub subjects: Vec<SubjectMatch>,
    /// Allowed `alg` values.
    pub algorithms: Vec<Algorithm>,
    /// Tolerated clock difference, seconds.
    pub clock_skew: u64,
    /// Whether a token without `exp` is refused.
    pub require_exp: bool,
    /// Longest allowed lifetime, seconds (`exp - iat`, or `exp - now` without `iat`).
    pub max_lifetime: Option<u64>,
}

/// A token that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedToken {
    /// Every claim of the payload.
    pub claims: Map<String, Value>,
    /// `exp`, if any: a cache entry must not outlive it.
    pub exp: Option<u64>,
}

/// The parts of a token readable before verification.
#[derive(Debug, Clone)]
pub struct ParsedToken {
    /// The header's `alg`.
    pub alg: Algorithm,
    /// The header's `kid`.
    pub kid: Option<String>,
    /// The payload's members.
    pub claims: Map<String, Value>,
    /// The payload, base64url as in the token (for the payload header).
    pub payload_b64: String,
    times: Times,
}

#[derive(Debug, Clone, Copy, Default)]
struct Times {
    exp: Option<u64>,
    nbf: Option<u64>,
    iat: Option<u64>,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    crit: Option<Vec<String>>,
}

/// Largest decoded header accepted, bytes.
const MAX_HEADER_BYTES: usize = 4096;

impl ParsedToken {
    /// Splits and decodes a token; `max_len` bounds the whole token.
    pub fn parse(token: &str, max_len: usize) -> Result<Self, Failure> {
        if token.len() > max_len {
            return Err(Failure::TooLarge);
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Failure::Malformed);
        };
        if header_b64.len() > MAX_HEADER_BYTES {
            return Err(Failure::Malformed);
        }
        let header_bytes = URL_SAFE_NO_PAD.decode(header_b64).map_err(|_| Failure::Malformed)?;
        let header: Header = serde_json::from_slice(&header_bytes).map_err(|_| Failure::Malformed)?;
        if header.alg.eq_ignore_ascii_case("none") {
            return Err(Failure::AlgNone);
        }
        // As jwt-simple does for the algorithms it verifies: no critical extension is
        // understood (RFC 7515 §4.1.11), and a `typ` must say JWT.
        if header.crit.is_some_and(|crit| !crit.is_empty()) {
            return Err(Failure::Malformed);
        }
        if header.typ.is_some_and(|typ| {
            let typ = typ.to_ascii_uppercase();
            typ != "JWT" && !typ.ends_with("+JWT")
        }) {
            return Err(Failure::Malformed);
        }
        let alg = Algorithm::from_name(&header.alg).ok_or(Failure::AlgNotAllowed)?;
        if signature_b64.is_empty() {
            return Err(Failure::Malformed);
        }
        let payload = URL_SAFE_NO_PAD.decode(payload_b64).map_err(|_| Failure::Malformed)?;
        let UniqueObject(claims) = serde_json::from_slice(&payload).map_err(|_| Failure::Malformed)?;
        let times = Times {
            exp: time_claim(&claims, "exp")?,
            nbf: time_claim(&claims, "nbf")?,
            iat: time_claim(&claims, "iat")?,
        };
        // String-typed registered claims (RFC 7519 §4.1), as jwt-simple reads them too.
        for name in ["iss", "sub", "jti", "nonce"] {
            if claims.get(name).is_some_and(|v| !v.is_string()) {
                return Err(Failure::Malformed);
            }
        }
        Ok(Self { alg, kid: header.kid, claims, payload_b64: payload_b64.to_string(), times })
    }

    /// The `aud` values (a string or an array of strings).
    fn audiences(&self) -> Result<Vec<&str>, Failure> {
        match self.claims.get("aud") {
            None => Ok(Vec::new()),
            Some(Value::String(aud)) => Ok(vec![aud.as_str()]),
            Some(Value::Array(items)) => items.iter().map(|v| v.as_str().ok_or(Failure::Malformed)).collect(),
            Some(_) => Err(Failure::Malformed),
        }
    }

    /// Checks everything but the signature.
    pub fn check_claims(&self, rules: &ClaimRules, now: u64) -> Result<(), Failure> {
        if !rules.algorithms.contains(&self.alg) {
            return Err(Failure::AlgNotAllowed);
        }
        if self.claims.get("iss").and_then(Value::as_str) != Some(rules.issuer.as_str()) {
            return Err(Failure::IssuerMismatch);
        }
        let Times { exp, nbf, iat } = self.times;
        match exp {
            Some(exp) if exp.saturating_add(rules.clock_skew) < now => return Err(Failure::Expired),
            None if rules.require_exp => return Err(Failure::ExpMissing),
            _ => {}
        }
        if nbf.is_some_and(|nbf| nbf > now.saturating_add(rules.clock_skew)) {
            return Err(Failure::NotYetValid);
        }
        if let (Some(max), Some(exp)) = (rules.max_lifetime, exp) {
            if exp.saturating_sub(iat.unwrap_or(now)) > max {
                return Err(Failure::LifetimeTooLong);
            }
        }
        let audiences = self.audiences()?;
        if !rules.audiences.is_empty() && !audiences.iter().any(|aud| rules.audiences.iter().any(|a| a == aud)) {
            return Err(Failure::AudienceNotAllowed);
        }
        if !rules.subjects.is_empty() {
            let subject = self.claims.get("sub").and_then(Value::as_str).unwrap_or_default();
            if !rules.subjects.iter().any(|rule| rule.matches(subject)) {
                return Err(Failure::SubjectNotAllowed);
            }
        }
        Ok(())
    }

    /// Finds the key for this token and checks the signature.
    pub fn check_signature(&self, token: &str, keys: &KeySet, rules: &ClaimRules, now: u64) -> Result<(), Failure> {
        let by_kid: Vec<_> = match &self.kid {
            Some(kid) => keys.keys().iter().filter(|k| k.kid.as_deref() == Some(kid.as_str())).collect(),
            None => keys.keys().iter().collect(),
        };
        if by_kid.is_empty() {
            return Err(Failure::UnknownKid);
        }
        let candidates: Vec<_> = by_kid.iter().filter(|k| k.alg == self.alg).collect();
        if candidates.is_empty() {
            // The kid exists but for another key type: an attempt at algorithm confusion.
            return Err(if self.kid.is_some() { Failure::AlgKeyMismatch } else { Failure::UnknownKid });
        }
        let options = VerificationOptions {
            accept_future: true,
            time_tolerance: Some(Duration::from_secs(rules.clock_skew)),
            max_token_length: None,
            artificial_time: Some(UnixTimeStamp::from_secs(now)),
            allowed_issuers: Some(HashSet::from([rules.issuer.clone()])),
            ..VerificationOptions::default()
        };
        let mut last = Failure::BadSignature;
        for key in candidates {
            match verify_with(&key.key, token, &options) {
                Ok(()) => return Ok(()),
                Err(failure) => last = failure,
            }
        }
        Err(last)
    }

    /// The verified result, once both checks passed.
    pub fn into_verified(self) -> VerifiedToken {
        VerifiedToken { exp: self.times.exp, claims: self.claims }
    }
}

/// Parses and fully verifies `token`.
pub fn verify(
    token: &str,
    max_len: usize,
    rules: &ClaimRules,
    keys: &KeySet,
    now: u64,
) -> Result<VerifiedToken, Failure> {
    let parsed = ParsedToken::parse(token, max_len)?;
    parsed.check_claims(rules, now)?;
    parsed.check_signature(token, keys, rules, now)?;
    Ok(parsed.into_verified())
}

#[cfg_attr(not(any(feature = "jwt-ec", feature = "jwt-eddsa", feature = "jwt-hmac")), allow(unused_variables))]
fn verify_with(key: &VerifyingKey, token: &str, options: &VerificationOptions) -> Result<(), Failure> {
    match key {
        #[cfg(feature = "jwt-rsa")]
        VerifyingKey::Rs256(k) => verify_pkcs1::<rsa::sha2::Sha256>(k, token),
        #[cfg(feature = "jwt-rsa")]
        VerifyingKey::Rs384(k) => verify_pkcs1::<rsa::sha2::Sha384>(k, token),
        #[cfg(feature = "jwt-rsa")]
        VerifyingKey::Rs512(k) => verify_pkcs1::<rsa::sha2::Sha512>(k, token),
        #[cfg(feature = "jwt-rsa")]
        VerifyingKey::Ps256(k) => verify_pss(k, token),
        #[cfg(feature = "jwt-rsa")]
        VerifyingKey::Ps384(k) => verify_pss(k, token),
        #[cfg(feature = "jwt-rsa")]
        VerifyingKey::Ps512(k) => verify_pss(k, token),
        #[cfg(feature = "jwt-ec")]
        VerifyingKey::Es256(k) => verify_es256(k, token),
        #[cfg(feature = "jwt-ec")]
        VerifyingKey::Es384(k) => simple(k.verify_token::<NoCustomClaims>(token, Some(options.clone()))),
        #[cfg(feature = "jwt-eddsa")]
        VerifyingKey::EdDsa(k) => simple(k.verify_token::<NoCustomClaims>(token, Some(options.clone()))),
        #[cfg(feature = "jwt-hmac")]
        VerifyingKey::Hs256(k) => simple(k.verify_token::<NoCustomClaims>(token, Some(options.clone()))),
        #[cfg(feature = "jwt-hmac")]
        VerifyingKey::Hs384(k) => simple(k.verify_token::<NoCustomClaims>(token, Some(options.clone()))),
        #[cfg(feature = "jwt-hmac")]
        VerifyingKey::Hs512(k) => simple(k.verify_token::<NoCustomClaims>(token, Some(options.clone()))),
    }
}

/// A jwt-simple verification result as a [`Failure`].
#[cfg(any(feature = "jwt-ec", feature = "jwt-eddsa", feature = "jwt-hmac"))]
fn simple(result: Result<JWTClaims<NoCustomClaims>, jwt_simple::Error>) -> Result<(), Failure> {
    result.map(drop).map_err(|err| match err.downcast_ref::<JWTError>() {
        Some(JWTError::InvalidSignature | JWTError::InvalidAuthenticationTag) => Failure::BadSignature,
        Some(JWTError::TokenHasExpired) => Failure::Expired,
        Some(JWTError::TokenNotValidYet) => Failure::NotYetValid,
        Some(JWTError::RequiredIssuerMismatch | JWTError::RequiredIssuerMissing) => Failure::IssuerMismatch,
        _ => Failure::Malformed,
    })
}

/// Splits a JWS into its signing input (header and payload, RFC 7515 §5.2) and its decoded
/// signature.
#[cfg(any(feature = "jwt-rsa", feature = "jwt-ec"))]
fn signing_input(token: &str) -> Result<(&str, Vec<u8>), Failure> {
    let (input, signature) = token.rsplit_once('.').ok_or(Failure::Malformed)?;
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| Failure::Malformed)?;
    Ok((input, signature))
}

/// Checks an RSASSA-PKCS1-v1_5 signature over the signing input. The claims were checked by
/// [`ParsedToken::check_claims`] already.
#[cfg(feature = "jwt-rsa")]
fn verify_pkcs1<H: super::rsa_pkcs1::Pkcs1Hash>(key: &rsa::PublicKey, token: &str) -> Result<(), Failure> {
    let (input, signature) = signing_input(token)?;
    match super::rsa_pkcs1::verify::<H>(key, input.as_bytes(), &signature) {
        true => Ok(()),
        false => Err(Failure::BadSignature),
    }
}

/// Checks an ES256 signature over the signing input, as [`verify_pkcs1`] does.
#[cfg(feature = "jwt-ec")]
fn verify_es256(key: &super::es256::PublicKey, token: &str) -> Result<(), Failure> {
    let (input, signature) = signing_input(token)?;
    match key.verify(input.as_bytes(), &signature) {
        true => Ok(()),
        false => Err(Failure::BadSignature),
    }
}

/// Checks an RSASSA-PSS signature over the signing input, as [`verify_pkcs1`] does.
#[cfg(feature = "jwt-rsa")]
fn verify_pss<V: rsa::signature::Verifier<rsa::pss::Signature>>(key: &V, token: &str) -> Result<(), Failure> {
    let (input, signature) = signing_input(token)?;
    let signature = rsa::pss::Signature::try_from(signature.as_slice()).map_err(|_| Failure::BadSignature)?;
    key.verify(input.as_bytes(), &signature).map_err(|_| Failure::BadSignature)
}

/// A numeric date claim (RFC 7519 §2): a non-negative number, fractions dropped.
fn time_claim(claims: &Map<String, Value>, name: &str) -> Result<Option<u64>, Failure> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
            (Some(secs), _) => Ok(Some(secs)),
            (None, Some(f)) if (0.0..1e15).contains(&f) => Ok(Some(f as u64)),
            _ => Err(Failure::Malformed),
        },
        Some(_) => Err(Failure::Malformed),
    }
}

/// A JSON object whose top-level member names are unique (RFC 7519 §4 lets us reject
/// duplicates, and we must: two parsers could read different values).
struct UniqueObject(Map<String, Value>);

impl<'de> Deserialize<'de> for UniqueObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = UniqueObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<UniqueObject, A::Error> {
                let mut map = Map::new();
                while let Some((key, value)) = access.next_entry::<String, Value>()? {
                    if map.contains_key(&key) {
                        return Err(serde::de::Error::custom("duplicate claim"));
                    }
                    map.insert(key, value);
                }
                Ok(UniqueObject(map))
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::jwt::keys::{KeyOrigin, ALL_ALGORITHMS};
    use crate::jwt::testdata::{self, Keys, NOW};

    fn rules() -> ClaimRules {
        ClaimRules {
            issuer: testdata::ISSUER.into(),
            audiences: vec!["api".into(), "other".into()],
            subjects: Vec::new(),
            algorithms: ALL_ALGORITHMS.to_vec(),
            clock_skew: 60,
            require_exp: true,
            max_lifetime: None,
        }
    }

    fn keys() -> KeySet {
        KeySet::parse(Keys::get().jwks().as_bytes(), &ALL_ALGORITHMS, KeyOrigin::Public).unwrap()
    }

    fn check(token: &str) -> Result<VerifiedToken, Failure> {
        verify(token, 8192, &rules(), &keys(), NOW)
    }

    #[test]
    fn every_algorithm_verifies() {
        for (name, token) in Keys::get().valid_tokens() {
            let verified = check(&token).unwrap_or_else(|f| panic!("{name}: {f:?}"));
            assert_eq!(verified.claims["sub"], "alice", "{name}");
            assert_eq!(verified.exp, Some(NOW + 3600));
        }
    }

    #[test]
    fn generated_bad_tokens_fail_with_their_reason() {
        for (name, token, expected) in Keys::get().bad_tokens() {
            assert_eq!(check(&token).map(drop), Err(expected), "{name}");
        }
    }

    #[test]
    fn time_boundaries_include_the_skew() {
        let keys = Keys::get();
        let exp_at =
            |exp: u64| keys.es256(serde_json::json!({"iss": testdata::ISSUER, "sub": "a", "aud": "api", "exp": exp}));
        assert!(check(&exp_at(NOW - 60)).is_ok());
        assert_eq!(check(&exp_at(NOW - 61)).map(drop), Err(Failure::Expired));
        let nbf_at = |nbf: u64| {
            keys.es256(serde_json::json!({"iss": testdata::ISSUER, "aud": "api", "exp": NOW + 900, "nbf": nbf}))
        };
        assert!(check(&nbf_at(NOW + 60)).is_ok());
        assert_eq!(check(&nbf_at(NOW + 61)).map(drop), Err(Failure::NotYetValid));
    }

    #[test]
    fn lifetime_audience_and_subject_rules() {
        let keys = Keys::get();
        let set = self::keys();
        let token = keys.es256(serde_json::json!({"iss": testdata::ISSUER, "sub": "spiffe://td/ns/prod/sa/web",
            "aud": ["x", "other"], "iat": NOW, "exp": NOW + 3600}));
        let mut r = rules();
        assert!(verify(&token, 8192, &r, &set, NOW).is_ok());
        r.max_lifetime = Some(3599);
        assert_eq!(verify(&token, 8192, &r, &set, NOW).map(drop), Err(Failure::LifetimeTooLong));
        r.max_lifetime = Some(3600);
        r.subjects = vec![SubjectMatch::Prefix("spiffe://td/ns/prod/".into())];
        assert!(verify(&token, 8192, &r, &set, NOW).is_ok());
        r.subjects = vec![SubjectMatch::Exact("spiffe://td/ns/prod/".into())];
        assert_eq!(verify(&token, 8192, &r, &set, NOW).map(drop), Err(Failure::SubjectNotAllowed));
        r.subjects.clear();
        r.audiences = vec!["api".into()];
        assert_eq!(verify(&token, 8192, &r, &set, NOW).map(drop), Err(Failure::AudienceNotAllowed));
        r.audiences.clear();
        assert!(verify(&token, 8192, &r, &set, NOW).is_ok());
        assert_eq!(verify(&token, token.len() - 1, &r, &set, NOW).map(drop), Err(Failure::TooLarge));
    }

    #[test]
    fn exp_is_required_unless_configured_otherwise() {
        let token = Keys::get().es256(serde_json::json!({"iss": testdata::ISSUER, "aud": "api"}));
        assert_eq!(check(&token).map(drop), Err(Failure::ExpMissing));
        let mut r = rules();
        r.require_exp = false;
        assert!(verify(&token, 8192, &r, &keys(), NOW).is_ok());
    }

    #[test]
    fn allow_list_is_checked_before_keys() {
        let mut r = rules();
        r.algorithms = vec![Algorithm::RS256];
        let token = Keys::get().es256(testdata::good_claims());
        assert_eq!(verify(&token, 8192, &r, &keys(), NOW).map(drop), Err(Failure::AlgNotAllowed));
    }

    #[test]
    fn rfc_7515_appendix_a_examples_verify() {
        // A.1 (HS256, key from the environment), A.2 (RS256), A.3 (ES256); their payload says
        // iss "joe", exp 1300819380: pin now just before it and accept a missing audience.
        let rules = ClaimRules {
            issuer: "joe".into(),
            audiences: Vec::new(),
            subjects: Vec::new(),
            algorithms: ALL_ALGORITHMS.to_vec(),
            clock_skew: 0,
            require_exp: true,
            max_lifetime: None,
        };
        let now = 1_300_819_379;
        let cases = [
            (testdata::RFC7515_A1_JWKS, testdata::RFC7515_A1_TOKEN, KeyOrigin::Environment),
            (testdata::RFC7515_A2_JWKS, testdata::RFC7515_A2_TOKEN, KeyOrigin::Public),
            (testdata::RFC7515_A3_JWKS, testdata::RFC7515_A3_TOKEN, KeyOrigin::Public),
        ];
        for (jwks, token, origin) in cases {
            let set = KeySet::parse(jwks.as_bytes(), &ALL_ALGORITHMS, origin).unwrap();
            let verified = verify(token, 8192, &rules, &set, now).unwrap();
            assert_eq!(verified.claims["http://example.com/is_root"], true);
            assert_eq!(verify(token, 8192, &rules, &set, now + 2).map(drop), Err(Failure::Expired));
            let mut tampered = token.to_string();
            tampered.pop();
            tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
            assert_eq!(verify(&tampered, 8192, &rules, &set, now).map(drop), Err(Failure::BadSignature), "{token}");
        }
    }

    #[test]
    fn rfc_8037_ed25519_example_verifies() {
        // RFC 8037 A.4 signs the payload "Example of Ed25519 signing", which is not a JSON
        // object: the signature is genuine, so our parser must stop it as malformed, and the
        // key from A.2 must load.
        let set = KeySet::parse(testdata::RFC8037_JWKS.as_bytes(), &ALL_ALGORITHMS, KeyOrigin::Public).unwrap();
        assert_eq!(set.keys()[0].alg, Algorithm::EdDSA);
        assert_eq!(ParsedToken::parse(testdata::RFC8037_TOKEN, 8192).map(drop), Err(Failure::Malformed));
        let token = testdata::rfc8037_sign(testdata::good_claims());
        assert!(verify(&token, 8192, &rules(), &set, NOW).is_ok());
    }

    #[test]
    fn critical_extensions_and_foreign_types_are_refused() {
        // Refused by every algorithm alike, RSA (verified by the `rsa` crate) included.
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        let good = Keys::get().valid_tokens().into_iter().find(|(name, _)| *name == "RS256").unwrap().1;
        let (_, rest) = good.split_once('.').unwrap();
        for (header, expected) in [
            (r#"{"alg":"RS256","kid":"rsa-1","crit":["exp"]}"#, Err(Failure::Malformed)),
            (r#"{"alg":"RS256","kid":"rsa-1","typ":"JOSE"}"#, Err(Failure::Malformed)),
            (r#"{"alg":"RS256","kid":"rsa-1","typ":7}"#, Err(Failure::Malformed)),
            (r#"{"alg":"RS256","kid":"rsa-1","crit":[]}"#, Err(Failure::BadSignature)),
            (r#"{"alg":"RS256","kid":"rsa-1","typ":"at+jwt"}"#, Err(Failure::BadSignature)),
        ] {
            let token = format!("{}.{rest}", b64(header.as_bytes()));
            assert_eq!(check(&token).map(drop), expected, "{header}");
        }
        let (header, _) = good.split_once('.').unwrap();
        for claim in ["jti", "nonce"] {
            let mut claims = testdata::good_claims();
            claims[claim] = serde_json::json!(7);
            let token = format!("{header}.{}.{}", b64(claims.to_string().as_bytes()), good.rsplit('.').next().unwrap());
            assert_eq!(check(&token).map(drop), Err(Failure::Malformed), "{claim}");
        }
        assert!(check(&good).is_ok());
    }

    #[test]
    fn rsa_keys_follow_the_policy() {
        let n = serde_json::from_str::<Value>(testdata::RFC7515_A2_JWKS).unwrap()["keys"][0]["n"].clone();
        for (e, ok) in [("AQAB", true), ("Aw", false), ("AAEAAQ", true)] {
            let jwks = serde_json::json!({"keys": [{"kty": "RSA", "n": n, "e": e}]}).to_string();
            let parsed = KeySet::parse(jwks.as_bytes(), &[Algorithm::RS256], KeyOrigin::Public);
            assert_eq!(parsed.is_ok(), ok, "e = {e}: {:?}", parsed.err());
        }
    }

    #[test]
    fn hostile_shapes_never_panic() {
        let set = keys();
        let samples =
            ["", ".", "..", "...", "a.b.c", "eyJ.eyJ.x", "\u{0}\u{0}", "é.é.é", "eyJhbGciOiJub25lIn0..", "....."];
        for sample in samples {
            let result = verify(sample, 8192, &rules(), &set, NOW);
            assert!(result.is_err(), "{sample}");
        }
        let huge = "a".repeat(100_000);
        assert_eq!(verify(&huge, 8192, &rules(), &set, NOW).map(drop), Err(Failure::TooLarge));
    }

    /// Timings for the speed report (issue #8); no assertion on time. Natively:
    /// `cargo test --release -p palisade-core --features jwt report_ -- --ignored --nocapture`;
    /// under wasmtime, the same with `--target wasm32-wasip1` and
    /// `CARGO_TARGET_WASM32_WASIP1_RUNNER=target/debug/wasm-test-runner` (as `make test-core-wasm`).
    #[test]
    #[ignore = "timing report"]
    fn report_verification_timings() {
        let set = keys();
        let secret = URL_SAFE_NO_PAD.encode(testdata::HMAC_SECRET);
        let hmac_jwks = format!(r#"{{"keys":[{{"kty":"oct","kid":"hs-1","k":"{secret}"}}]}}"#);
        let hmac = KeySet::parse(hmac_jwks.as_bytes(), &ALL_ALGORITHMS, KeyOrigin::Environment).unwrap();
        let mut tokens: Vec<(&str, String, &KeySet)> =
            Keys::get().valid_tokens().into_iter().map(|(name, token)| (name, token, &set)).collect();
        tokens.push(("HS256", Keys::get().hs256(testdata::good_claims(), "hs-1"), &hmac));
        for (name, token, keys) in tokens {
            let per_call = time_per_call(|| assert!(verify(&token, 8192, &rules(), keys, NOW).is_ok()));
            println!("verify {name}: {per_call:.1} us");
        }
        let token = Keys::get().es256(testdata::good_claims());
        let per_call = time_per_call(|| {
            std::hint::black_box(crate::jwt::cache::token_hash(&token));
        });
        println!("token hash (SHA-256 of an ES256 token): {per_call:.2} us");
    }

    /// Microseconds per call of `f`: the fastest of many batches of at least 100 µs over about
    /// a second, so that preemption on a shared machine does not count.
    pub(crate) fn time_per_call(mut f: impl FnMut()) -> f64 {
        use std::time::{Duration, Instant};
        f();
        let mut batch = 1u32;
        loop {
            let start = Instant::now();
            (0..batch).for_each(|_| f());
            if start.elapsed() >= Duration::from_micros(100) || batch >= 1 << 20 {
                break;
            }
            batch *= 2;
        }
        let started = Instant::now();
        let (mut best, mut batches) = (f64::MAX, 0);
        while batches < 10 || started.elapsed() < Duration::from_secs(1) {
            let start = Instant::now();
            (0..batch).for_each(|_| f());
            best = best.min(start.elapsed().as_secs_f64() * 1e6 / f64::from(batch));
            batches += 1;
        }
        best
    }
}
