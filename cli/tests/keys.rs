//! keygen, hash-api-key, mint-token, jwks and sha256: outputs the filters (or Istio) accept.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::{palisade, scratch};
use jwt_simple::prelude::*;
use palisade_core::jwt::keys::{Algorithm, KeyOrigin, KeySet};
use palisade_core::jwt::verify::{verify, ClaimRules};
use sha2::{Digest, Sha256};

/// `VAR=value` lines of an output.
fn env_lines(output: &str) -> Vec<(String, String)> {
    output
        .lines()
        .filter(|line| !line.starts_with('#'))
        .map(|line| {
            let (name, value) = line.split_once('=').unwrap();
            (name.to_string(), value.to_string())
        })
        .collect()
}

/// The JSON config entry printed after `in keys.<list>: `.
fn entry(output: &str, list: &str) -> serde_json::Value {
    let marker = format!("in keys.{list}: ");
    let line = output.lines().find(|line| line.contains(&marker)).unwrap();
    serde_json::from_str(line.split_once(&marker).unwrap().1).unwrap()
}

/// A field-encryption config around the printed entries, compiled by the filter's compiler;
/// the result encrypts and decrypts a value with the new key.
fn accepts(data_key: &serde_json::Value, keks: Vec<serde_json::Value>, env: &[(String, String)]) {
    let config = serde_json::json!({
        "keys": {"primary": data_key["id"], "data_keys": [data_key], "key_encryption_keys": keks},
        "fields": {"secret": {"readers": [{"claim": "sub", "any_of": ["alice"]}]}},
        "routes": [{"match": {}, "encrypt": [{"path": "/secret", "field": "secret"}]}]
    });
    let lookup = common::lookup(env);
    palisade_core::encryption::Policy::from_json(config.to_string().as_bytes(), &lookup)
        .unwrap_or_else(|err| panic!("the filter refuses the generated key: {err}"));
}

#[test]
fn keygen_prints_a_key_the_keyring_accepts() {
    let run = palisade(&["keygen", "--id", "users-2026-06", "--version", "2"], &[], None);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let env = env_lines(&run.stdout);
    assert_eq!(env.len(), 1);
    let (name, value) = &env[0];
    assert_eq!(name, "PALISADE_FE_USERS_2026_06");
    use base64::Engine;
    assert_eq!(base64::engine::general_purpose::STANDARD.decode(value).unwrap().len(), 32);
    let data_key = entry(&run.stdout, "data_keys");
    assert_eq!(data_key, serde_json::json!({"id": "users-2026-06", "version": 2, "env": name}));
    accepts(&data_key, vec![], &env);
    // Without the variable, the filter refuses the config: the key really comes from it.
    let lookup = |_: &str| None;
    let config = serde_json::json!({"keys": {"primary": "users-2026-06", "data_keys": [data_key]},
        "fields": {"f": {}}, "routes": [{"match": {}, "encrypt": [{"path": "/f", "field": "f"}]}]});
    assert!(palisade_core::encryption::Policy::from_json(config.to_string().as_bytes(), &lookup).is_err());

    let again = palisade(&["keygen", "--id", "users-2026-06", "--version", "2"], &[], None);
    assert_ne!(env_lines(&again.stdout), env, "two runs printed the same key");
}

#[test]
fn keygen_wraps_under_a_new_or_an_existing_kek() {
    // New KEK: the KEK is printed, the data key only wrapped.
    let run = palisade(&["keygen", "--id", "k2", "--wrap"], &[], None);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let env = env_lines(&run.stdout);
    assert_eq!(env.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["PALISADE_FE_KEK"]);
    let data_key = entry(&run.stdout, "data_keys");
    assert_eq!(data_key["kek"], "kek");
    assert!(data_key["wrapped"].is_string() && data_key.get("env").is_none(), "{data_key}");
    let keks = vec![entry(&run.stdout, "key_encryption_keys")];
    accepts(&data_key, keks.clone(), &env);

    // Existing KEK from the environment: nothing secret is printed, and it unwraps under it.
    let kek_env = vec![("MY_KEK".to_string(), env[0].1.clone())];
    let run = palisade(&["keygen", "--id", "k3", "--wrap", "--kek-id", "main", "--kek-env", "MY_KEK"], &kek_env, None);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(env_lines(&run.stdout).is_empty(), "{}", run.stdout);
    let data_key = entry(&run.stdout, "data_keys");
    let keks = vec![entry(&run.stdout, "key_encryption_keys")];
    assert_eq!(keks[0], serde_json::json!({"id": "main", "env": "MY_KEK"}));
    accepts(&data_key, keks.clone(), &kek_env);
    // Under another KEK the wrapped key does not unwrap.
    let other = vec![("MY_KEK".to_string(), "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=".to_string())];
    let config = serde_json::json!({"keys": {"primary": "k3", "data_keys": [data_key], "key_encryption_keys": keks},
        "fields": {"f": {}}, "routes": [{"match": {}, "encrypt": [{"path": "/f", "field": "f"}]}]});
    let err = palisade_core::encryption::Policy::from_json(config.to_string().as_bytes(), &common::lookup(&other))
        .unwrap_err();
    assert_eq!(err.field, "keys.data_keys[0].wrapped");
}

#[test]
fn keygen_refuses_what_the_keyring_would_refuse() {
    let run = palisade(&["keygen", "--id", "bad:id"], &[], None);
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("keys.data_keys[0].id: must be 1 to 64 characters"), "{}", run.stderr);
    let bad_kek = vec![("PALISADE_FE_KEK".to_string(), "c2hvcnQ=".to_string())];
    let run = palisade(&["keygen", "--wrap"], &bad_kek, None);
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("PALISADE_FE_KEK must hold standard base64 of 32 bytes"), "{}", run.stderr);
}

/// FIPS 180-2 appendix B.1: SHA-256("abc").
const ABC_SHA256: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

#[test]
fn hash_api_key_matches_fips_180_2_and_jwt_authn_accepts_it() {
    let run = palisade(&["hash-api-key", "abc"], &[], None);
    assert_eq!((run.code, run.stdout.as_str()), (Some(0), format!("{ABC_SHA256}\n").as_str()));
    // From standard input, one trailing newline (as `echo` adds) is not part of the key.
    for input in ["abc\n", "abc\r\n", "abc"] {
        assert_eq!(palisade(&["hash-api-key"], &[], Some(input)).stdout, format!("{ABC_SHA256}\n"));
    }
    assert_ne!(palisade(&["hash-api-key"], &[], Some("abc\n\n")).stdout, format!("{ABC_SHA256}\n"));
    assert_eq!(palisade(&["hash-api-key"], &[], Some("")).code, Some(2));

    // jwt-authn finds the key "abc" by the printed hash.
    let config = format!(
        r#"{{"api_keys": {{"p": {{"keys": [{{"sha256": "{}", "consumer": "acme"}}]}}}}, "rules": []}}"#,
        run.stdout.trim()
    );
    let keys: Vec<palisade_core::jwt::api_key::ApiKeyConfig> = serde_json::from_value(
        serde_json::from_str::<serde_json::Value>(&config).unwrap()["api_keys"]["p"]["keys"].clone(),
    )
    .unwrap();
    let compiled = palisade_core::jwt::api_key::ApiKeys::compile(&keys, "keys").unwrap();
    assert_eq!(compiled.authenticate("abc").map(|k| k.consumer.as_str()), Some("acme"));
    assert!(compiled.authenticate("abd").is_none());
}

fn rules(issuer: &str, alg: Algorithm) -> ClaimRules {
    ClaimRules {
        issuer: issuer.into(),
        audiences: vec!["orders".into()],
        subjects: vec![],
        algorithms: vec![alg],
        clock_skew: 60,
        require_exp: true,
        max_lifetime: None,
    }
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

#[test]
fn mint_token_verifies_with_the_printed_jwks_in_jwt_authns_verifier() {
    let dir = scratch("tokens");
    let pem = dir.join("es256.pem");
    std::fs::write(&pem, ES256KeyPair::generate().to_pem().unwrap()).unwrap();
    let pem = pem.to_str().unwrap();

    let jwks = palisade(&["jwks", "--key", pem, "--kid", "demo-1"], &[], None);
    assert_eq!(jwks.code, Some(0), "{}", jwks.stderr);
    let claims = r#"{"iss": "https://issuer.test", "sub": "alice", "aud": "orders", "tier": "premium"}"#;
    let token =
        palisade(&["mint-token", "--key", pem, "--claims", claims, "--kid", "demo-1", "--ttl", "600"], &[], None);
    assert_eq!(token.code, Some(0), "{}", token.stderr);
    let token = token.stdout.trim();

    let keys = KeySet::parse(jwks.stdout.trim().as_bytes(), &[Algorithm::ES256], KeyOrigin::Public).unwrap();
    assert!(keys.has_kid("demo-1"));
    let verified = verify(token, 8192, &rules("https://issuer.test", Algorithm::ES256), &keys, now()).unwrap();
    assert_eq!(verified.claims["sub"], "alice");
    assert_eq!(verified.claims["tier"], "premium");
    let exp = verified.exp.unwrap();
    assert!((now() + 590..=now() + 600).contains(&exp), "exp {exp}");
    // Past its lifetime (beyond the skew) the token is refused; so is another issuer.
    assert!(verify(token, 8192, &rules("https://issuer.test", Algorithm::ES256), &keys, exp + 61).is_err());
    assert!(verify(token, 8192, &rules("https://other.test", Algorithm::ES256), &keys, now()).is_err());

    // A token from another key does not verify against this JWKS.
    let other = dir.join("other.pem");
    std::fs::write(&other, ES256KeyPair::generate().to_pem().unwrap()).unwrap();
    let forged =
        palisade(&["mint-token", "--key", other.to_str().unwrap(), "--claims", claims, "--kid", "demo-1"], &[], None);
    assert!(verify(forged.stdout.trim(), 8192, &rules("https://issuer.test", Algorithm::ES256), &keys, now()).is_err());
}

#[test]
fn mint_token_reads_a_private_jwk_and_hmac_secrets() {
    let dir = scratch("tokens-jwk");
    let jwk = dir.join("ed.jwk");
    std::fs::write(&jwk, Ed25519KeyPair::generate().with_key_id("ed-1").to_jwk()).unwrap();
    let jwk = jwk.to_str().unwrap();
    let claims = r#"{"iss": "i", "aud": ["orders", "billing"], "exp": 4102444800}"#;
    let token = palisade(&["mint-token", "--key", jwk, "--alg", "EdDSA", "--claims", claims], &[], None);
    assert_eq!(token.code, Some(0), "{}", token.stderr);
    let jwks = palisade(&["jwks", "--key", jwk, "--alg", "EdDSA"], &[], None);
    let keys = KeySet::parse(jwks.stdout.trim().as_bytes(), &[Algorithm::EdDSA], KeyOrigin::Public).unwrap();
    assert!(keys.has_kid("ed-1"), "the JWK's kid is kept: {}", jwks.stdout);
    let verified = verify(token.stdout.trim(), 8192, &rules("i", Algorithm::EdDSA), &keys, now()).unwrap();
    assert_eq!(verified.exp, Some(4102444800));

    let secret = dir.join("hs.key");
    std::fs::write(&secret, b"0123456789abcdef0123456789abcdef").unwrap();
    let token = palisade(
        &[
            "mint-token",
            "--key",
            secret.to_str().unwrap(),
            "--alg",
            "HS256",
            "--claims",
            r#"{"iss":"i","aud":"orders"}"#,
        ],
        &[],
        None,
    );
    let keys = KeySet::from_secret(b"0123456789abcdef0123456789abcdef", None, &[Algorithm::HS256]).unwrap();
    assert!(verify(token.stdout.trim(), 8192, &rules("i", Algorithm::HS256), &keys, now()).is_ok(), "{}", token.stderr);

    let bad = palisade(&["mint-token", "--key", jwk, "--alg", "none"], &[], None);
    assert_eq!(bad.code, Some(2));
    assert!(bad.stderr.contains("unknown algorithm \"none\""), "{}", bad.stderr);
    let bad = palisade(&["mint-token", "--key", jwk, "--alg", "EdDSA", "--claims", r#"{"iss": 1}"#], &[], None);
    assert!(bad.stderr.contains("iss must be a string"), "{}", bad.stderr);
    let bad = palisade(&["jwks", "--key", secret.to_str().unwrap(), "--alg", "HS256"], &[], None);
    assert!(bad.stderr.contains("shared secret"), "{}", bad.stderr);
}

#[test]
fn sha256_prints_each_wasm_digest_in_sha256sum_format() {
    let dir = scratch("wasm");
    let files: [(&str, &[u8]); 2] = [("b.wasm", b"\0asm\x01\0\0\0"), ("a.wasm", b"\0asm\x01\0\0\0 other")];
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    std::fs::write(dir.join("notes.txt"), b"not wasm").unwrap();
    let run = palisade(&["sha256", dir.to_str().unwrap()], &[], None);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let hex = |bytes: &[u8]| Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect::<String>();
    let expected = format!("{}  a.wasm\n{}  b.wasm\n", hex(files[1].1), hex(files[0].1));
    assert_eq!(run.stdout, expected);

    let empty = scratch("wasm-empty");
    let run = palisade(&["sha256", empty.to_str().unwrap()], &[], None);
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("no .wasm files"), "{}", run.stderr);
}
