//! The test-vector generator: every key type and every kind of good and bad token, made at test
//! time with jwt-simple's key generation and a pinned `now`, plus the fixed RFC examples.
//!
//! Nothing here is hand-edited output: tokens are signed by the keys below, and the expected
//! failure of each bad token is listed next to the way it is made. RSA generation is slow, so
//! the keys are made once per test binary.

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jwt_simple::prelude::*;
use serde_json::{json, Map, Value};

use super::failure::Failure;

/// The pinned clock of every test: 2027-01-15T08:00:00Z.
pub const NOW: u64 = 1_800_000_000;
/// The issuer of generated tokens.
pub const ISSUER: &str = "https://auth.example.com";
/// The 64-byte HMAC secret of generated HS tokens (as an environment variable would hold it).
pub const HMAC_SECRET: &[u8; 64] = b"palisade-test-hmac-secret-0123456789abcdefghijklmnopqrstuvwxyz!!";

/// RFC 7515 A.1: HS256 with the appendix's symmetric key (a JWK `oct`, environment only).
pub const RFC7515_A1_JWKS: &str = r#"{"keys":[{"kty":"oct","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}]}"#;
/// RFC 7515 A.1 token.
pub const RFC7515_A1_TOKEN: &str = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
/// RFC 7515 A.2: RS256 public key.
pub const RFC7515_A2_JWKS: &str = r#"{"keys":[{"kty":"RSA","e":"AQAB","n":"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ"}]}"#;
/// RFC 7515 A.2 token.
pub const RFC7515_A2_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";
/// RFC 7515 A.3: ES256 public key.
pub const RFC7515_A3_JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;
/// RFC 7515 A.3 token.
pub const RFC7515_A3_TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
/// RFC 8037 A.2: the Ed25519 public key.
pub const RFC8037_JWKS: &str =
    r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;
/// RFC 8037 A.1: the Ed25519 private key (seed).
pub const RFC8037_D: &str = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
/// RFC 8037 A.4: a JWS over the text "Example of Ed25519 signing" (not a JSON payload).
pub const RFC8037_TOKEN: &str = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";

/// The claims of a good token.
pub fn good_claims() -> Value {
    json!({"iss": ISSUER, "sub": "alice", "aud": ["api"], "iat": NOW - 10, "exp": NOW + 3600,
           "scope": "read write", "realm_access": {"roles": ["admin", "ops"]}, "plan": "pro", "client_id": "web"})
}

/// The generated keys.
pub struct Keys {
    rsa: RS256KeyPair,
    ps: PS256KeyPair,
    rs384: RS384KeyPair,
    ps512: PS512KeyPair,
    es256: ES256KeyPair,
    es384: ES384KeyPair,
    ed: Ed25519KeyPair,
    stranger: ES256KeyPair,
}

fn claims_of(value: Value) -> JWTClaims<Map<String, Value>> {
    serde_json::from_value(value).unwrap()
}

impl Keys {
    /// The keys, made once.
    pub fn get() -> &'static Keys {
        static KEYS: OnceLock<Keys> = OnceLock::new();
        KEYS.get_or_init(|| {
            let rsa = RS256KeyPair::generate(2048).unwrap().with_key_id("rsa-1");
            let der = rsa.to_der().unwrap();
            Keys {
                ps: PS256KeyPair::from_der(&der).unwrap().with_key_id("rsa-1"),
                rs384: RS384KeyPair::from_der(&der).unwrap().with_key_id("rsa-1"),
                ps512: PS512KeyPair::from_der(&der).unwrap().with_key_id("rsa-1"),
                rsa,
                es256: ES256KeyPair::generate().with_key_id("ec-256"),
                es384: ES384KeyPair::generate().with_key_id("ec-384"),
                ed: Ed25519KeyPair::generate().with_key_id("ed-1"),
                stranger: ES256KeyPair::generate().with_key_id("ec-256"),
            }
        })
    }

    /// The public JWK Set of every key (the RSA key without `alg`, so it serves RS* and PS*).
    pub fn jwks(&self) -> String {
        let mut rsa: Value = serde_json::from_str(&self.rsa.public_key().to_jwk()).unwrap();
        rsa.as_object_mut().unwrap().remove("alg");
        let with_kid = |jwk: String, kid: &str| {
            let mut value: Value = serde_json::from_str(&jwk).unwrap();
            value["kid"] = json!(kid);
            value
        };
        rsa["kid"] = json!("rsa-1");
        json!({"keys": [
            rsa,
            with_kid(self.es256.public_key().to_jwk(), "ec-256"),
            with_kid(self.es384.public_key().to_jwk(), "ec-384"),
            with_kid(self.ed.public_key().to_jwk(), "ed-1"),
        ]})
        .to_string()
    }

    /// An ES256 token with these claims.
    pub fn es256(&self, claims: Value) -> String {
        self.es256.sign(claims_of(claims)).unwrap()
    }

    /// An HS256 token signed with [`HMAC_SECRET`] and `kid`.
    pub fn hs256(&self, claims: Value, kid: &str) -> String {
        HS256Key::from_bytes(HMAC_SECRET).with_key_id(kid).authenticate(claims_of(claims)).unwrap()
    }

    /// One good token per public-key algorithm.
    pub fn valid_tokens(&self) -> Vec<(&'static str, String)> {
        let c = good_claims;
        vec![
            ("RS256", self.rsa.sign(claims_of(c())).unwrap()),
            ("RS384", self.rs384.sign(claims_of(c())).unwrap()),
            ("PS256", self.ps.sign(claims_of(c())).unwrap()),
            ("PS512", self.ps512.sign(claims_of(c())).unwrap()),
            ("ES256", self.es256.sign(claims_of(c())).unwrap()),
            ("ES384", self.es384.sign(claims_of(c())).unwrap()),
            ("EdDSA", self.ed.sign(claims_of(c())).unwrap()),
        ]
    }

    /// Every kind of bad token, with the failure a provider (issuer [`ISSUER`], audience
    /// `api`, every algorithm allowed, the keys of [`Keys::jwks`]) must report at [`NOW`].
    pub fn bad_tokens(&self) -> Vec<(&'static str, String, Failure)> {
        let with = |key: &str, value: Value| {
            let mut claims = good_claims();
            match value {
                Value::Null => drop(claims.as_object_mut().unwrap().remove(key)),
                value => claims[key] = value,
            }
            claims
        };
        let good = self.es256(good_claims());
        let (header, rest) = good.split_once('.').unwrap();
        let (_, signature) = rest.split_once('.').unwrap();
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        let payload = b64(good_claims().to_string().as_bytes());
        let duplicate = format!(r#"{{"iss":"{ISSUER}","sub":"alice","aud":"api","exp":{},"sub":"admin"}}"#, NOW + 60);
        let rsa_public_pem = self.rsa.public_key().to_pem().unwrap();
        let confused = HS256Key::from_bytes(rsa_public_pem.as_bytes())
            .with_key_id("rsa-1")
            .authenticate(claims_of(good_claims()))
            .unwrap();
        vec![
            ("expired", self.es256(with("exp", json!(NOW - 3600))), Failure::Expired),
            ("not yet valid", self.es256(with("nbf", json!(NOW + 3600))), Failure::NotYetValid),
            ("wrong issuer", self.es256(with("iss", json!("https://evil.example.com"))), Failure::IssuerMismatch),
            ("no issuer", self.es256(with("iss", Value::Null)), Failure::IssuerMismatch),
            ("wrong audience", self.es256(with("aud", json!(["web"]))), Failure::AudienceNotAllowed),
            ("missing audience", self.es256(with("aud", Value::Null)), Failure::AudienceNotAllowed),
            (
                "unknown kid",
                ES256KeyPair::generate().with_key_id("ghost").sign(claims_of(good_claims())).unwrap(),
                Failure::UnknownKid,
            ),
            ("bad signature", self.stranger.sign(claims_of(good_claims())).unwrap(), Failure::BadSignature),
            (
                "signature of another token",
                format!("{header}.{}.{signature}", b64(with("sub", json!("admin")).to_string().as_bytes())),
                Failure::BadSignature,
            ),
            ("alg none", format!("{}.{payload}.", b64(br#"{"alg":"none","typ":"JWT"}"#)), Failure::AlgNone),
            ("alg None", format!("{}.{payload}.{signature}", b64(br#"{"alg":"None"}"#)), Failure::AlgNone),
            ("alg unknown", format!("{}.{payload}.{signature}", b64(br#"{"alg":"ES256K"}"#)), Failure::AlgNotAllowed),
            ("HS256 signed with the RSA public key", confused, Failure::AlgKeyMismatch),
            (
                "RS256 naming the EC key",
                self.rsa.clone().with_key_id("ec-256").sign(claims_of(good_claims())).unwrap(),
                Failure::AlgKeyMismatch,
            ),
            ("truncated", good[..good.len() / 2].to_string(), Failure::Malformed),
            ("signature cut by one character", good[..good.len() - 1].to_string(), Failure::Malformed),
            ("oversized", self.es256(with("pad", json!("x".repeat(9000)))), Failure::TooLarge),
            ("non-JSON payload", format!("{header}.{}.{signature}", b64(b"not json")), Failure::Malformed),
            ("payload is an array", format!("{header}.{}.{signature}", b64(b"[1,2]")), Failure::Malformed),
            ("duplicate claims", format!("{header}.{}.{signature}", b64(duplicate.as_bytes())), Failure::Malformed),
            (
                "exp is a string",
                format!("{header}.{}.{signature}", b64(with("exp", json!("tomorrow")).to_string().as_bytes())),
                Failure::Malformed,
            ),
            (
                "exp is negative",
                format!("{header}.{}.{signature}", b64(with("exp", json!(-1)).to_string().as_bytes())),
                Failure::Malformed,
            ),
            (
                "sub is a number",
                format!("{header}.{}.{signature}", b64(with("sub", json!(7)).to_string().as_bytes())),
                Failure::Malformed,
            ),
            (
                "aud is an object",
                format!("{header}.{}.{signature}", b64(with("aud", json!({"a": 1})).to_string().as_bytes())),
                Failure::Malformed,
            ),
            ("four parts", format!("{good}.x"), Failure::Malformed),
            ("padding in base64", format!("{header}=.{payload}.{signature}"), Failure::Malformed),
            ("header not JSON", format!("{}.{payload}.{signature}", b64(b"{alg")), Failure::Malformed),
        ]
    }
}

/// Signs `claims` with the RFC 8037 A.1 Ed25519 key (no `kid`).
pub fn rfc8037_sign(claims: Value) -> String {
    let mut bytes = URL_SAFE_NO_PAD.decode(RFC8037_D).unwrap();
    bytes.extend(URL_SAFE_NO_PAD.decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo").unwrap());
    Ed25519KeyPair::from_bytes(&bytes).unwrap().sign(claims_of(claims)).unwrap()
}
