//! Demo tokens from a local key, signed with jwt-simple (pure Rust) as the core verifies them,
//! and the public JWK Set a jwt-authn provider needs to verify them.

use jwt_simple::prelude::*;
use palisade_core::jwt::keys::Algorithm;
use serde_json::{Map, Value};

/// Loads a key pair of type `$ty` from a private JWK (text starting with `{`) or a PEM.
macro_rules! load {
    ($ty:ty, $text:expr, $kid:expr) => {{
        let text: &str = $text;
        let key = if text.trim_start().starts_with('{') { <$ty>::from_jwk(text) } else { <$ty>::from_pem(text) };
        let key = key.map_err(|err| {
            format!("cannot read the private key: {err} (expected a private JWK or a PKCS#8 PEM; PKCS#1 also for RSA)")
        })?;
        match $kid {
            Some(kid) => key.with_key_id(kid),
            None => key,
        }
    }};
}

/// Runs `$body` with `$key` bound to the asymmetric key pair for `$alg`.
macro_rules! with_key_pair {
    ($alg:expr, $text:expr, $kid:expr, |$key:ident| $body:expr) => {
        match $alg {
            Algorithm::RS256 => {
                let $key = load!(RS256KeyPair, $text, $kid);
                $body
            }
            Algorithm::RS384 => {
                let $key = load!(RS384KeyPair, $text, $kid);
                $body
            }
            Algorithm::RS512 => {
                let $key = load!(RS512KeyPair, $text, $kid);
                $body
            }
            Algorithm::PS256 => {
                let $key = load!(PS256KeyPair, $text, $kid);
                $body
            }
            Algorithm::PS384 => {
                let $key = load!(PS384KeyPair, $text, $kid);
                $body
            }
            Algorithm::PS512 => {
                let $key = load!(PS512KeyPair, $text, $kid);
                $body
            }
            Algorithm::ES256 => {
                let $key = load!(ES256KeyPair, $text, $kid);
                $body
            }
            Algorithm::ES384 => {
                let $key = load!(ES384KeyPair, $text, $kid);
                $body
            }
            Algorithm::EdDSA => {
                let $key = load!(Ed25519KeyPair, $text, $kid);
                $body
            }
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                return Err(format!("{} uses a shared secret, not a key pair", $alg.name()))
            }
        }
    };
}

/// A compact JWS over `claims_json` (a JSON object) signed with the key in `key_file`.
pub fn mint(alg: &str, key_file: &[u8], claims_json: &str, kid: Option<&str>, ttl: u64) -> Result<String, String> {
    let alg = algorithm(alg)?;
    let claims = claims(claims_json, ttl)?;
    let sign_err = |err: jwt_simple::Error| format!("cannot sign: {err}");
    if let Some(hmac) = hmac_sign(alg, key_file, kid, &claims) {
        return hmac.map_err(sign_err);
    }
    let text = std::str::from_utf8(key_file).map_err(|_| "the key file is not text (PEM or JWK)".to_string())?;
    with_key_pair!(alg, text, kid, |key| key.sign(claims).map_err(sign_err))
}

/// `{"keys": [<public JWK>]}` for the key in `key_file`.
pub fn jwks(alg: &str, key_file: &[u8], kid: Option<&str>) -> Result<String, String> {
    let alg = algorithm(alg)?;
    let text = std::str::from_utf8(key_file).map_err(|_| "the key file is not text (PEM or JWK)".to_string())?;
    let jwk: String = with_key_pair!(alg, text, kid, |key| key.public_key().to_jwk());
    let jwk: Value = serde_json::from_str(&jwk).map_err(|err| format!("jwt-simple produced a bad JWK: {err}"))?;
    Ok(serde_json::json!({"keys": [jwk]}).to_string())
}

fn algorithm(name: &str) -> Result<Algorithm, String> {
    Algorithm::from_name(name)
        .ok_or_else(|| format!("unknown algorithm {name:?} (expected RS256..PS512, ES256, ES384, EdDSA, HS256..HS512)"))
}

/// HMAC algorithms sign with the file's bytes as the secret (jwt-authn's `encoding: raw`).
fn hmac_sign(
    alg: Algorithm,
    secret: &[u8],
    kid: Option<&str>,
    claims: &JWTClaims<Map<String, Value>>,
) -> Option<Result<String, jwt_simple::Error>> {
    let claims = claims.clone();
    macro_rules! hs {
        ($ty:ty) => {{
            let key = <$ty>::from_bytes(secret);
            let key = match kid {
                Some(kid) => key.with_key_id(kid),
                None => key,
            };
            Some(key.authenticate(claims))
        }};
    }
    match alg {
        Algorithm::HS256 => hs!(HS256Key),
        Algorithm::HS384 => hs!(HS384Key),
        Algorithm::HS512 => hs!(HS512Key),
        _ => None,
    }
}

/// The registered claims go to jwt-simple's fields (so none is written twice); the rest stay
/// custom. `iat` and `nbf` default to now, `exp` to now + `ttl`.
fn claims(json: &str, ttl: u64) -> Result<JWTClaims<Map<String, Value>>, String> {
    let Value::Object(mut custom) = serde_json::from_str(json).map_err(|err| format!("--claims: {err}"))? else {
        return Err("--claims must be a JSON object".into());
    };
    let mut claims = Claims::with_custom_claims(Map::new(), Duration::from_secs(ttl));
    let string = |custom: &mut Map<String, Value>, name: &str| -> Result<Option<String>, String> {
        match custom.remove(name) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(_) => Err(format!("--claims: {name} must be a string")),
        }
    };
    let time = |custom: &mut Map<String, Value>, name: &str| -> Result<Option<UnixTimeStamp>, String> {
        match custom.remove(name) {
            None => Ok(None),
            Some(value) => value
                .as_u64()
                .map(|secs| Some(UnixTimeStamp::from_secs(secs)))
                .ok_or_else(|| format!("--claims: {name} must be a non-negative integer (Unix seconds)")),
        }
    };
    claims.issuer = string(&mut custom, "iss")?;
    claims.subject = string(&mut custom, "sub")?;
    claims.jwt_id = string(&mut custom, "jti")?;
    claims.nonce = string(&mut custom, "nonce")?;
    claims.audiences = match custom.remove("aud") {
        None => None,
        Some(Value::String(aud)) => Some(Audiences::AsString(aud)),
        Some(Value::Array(list)) => {
            let set = list.into_iter().map(|v| v.as_str().map(str::to_string)).collect::<Option<_>>();
            Some(Audiences::AsSet(set.ok_or("--claims: aud must be a string or an array of strings")?))
        }
        Some(_) => return Err("--claims: aud must be a string or an array of strings".into()),
    };
    if let Some(iat) = time(&mut custom, "iat")? {
        claims.issued_at = Some(iat);
    }
    if let Some(nbf) = time(&mut custom, "nbf")? {
        claims.invalid_before = Some(nbf);
    }
    if let Some(exp) = time(&mut custom, "exp")? {
        claims.expires_at = Some(exp);
    }
    claims.custom = custom;
    Ok(claims)
}
