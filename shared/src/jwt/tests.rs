//! The whole decision: config, extraction, requirements, verification, cache, output, replies.

use serde_json::json;

use super::api_key::sha256_hex;
use super::cache::{MemoryCache, NoCache};
use super::keys::{KeyOrigin, KeySet, ALL_ALGORITHMS};
use super::testdata::{self, Keys, HMAC_SECRET, ISSUER, NOW};
use super::*;
use crate::http::Headers;

struct Store(Option<KeySet>);

impl KeyStore for Store {
    fn key_set(&mut self, _: &str) -> Option<&KeySet> {
        self.0.as_ref()
    }
}

fn env(name: &str) -> Option<String> {
    (name == "JWT_HS_SECRET").then(|| String::from_utf8_lossy(HMAC_SECRET).into_owned())
}

fn config() -> serde_json::Value {
    json!({
        "providers": {
            "corp": {
                "issuer": ISSUER, "audiences": ["api"], "algorithms": ["ES256", "RS256", "PS256", "EdDSA", "ES384"],
                "local_jwks": Keys::get().jwks(),
                "claim_to_headers": [{"claim": "realm_access.roles", "header": "x-roles"}, {"claim": "sub", "header": "x-sub"}],
                "payload_header": "x-jwt-payload", "consumer_claim": "client_id",
                "tier": {"claim": "plan", "map": {"pro": "premium"}, "default": "authenticated"}
            },
            "internal": {
                "issuer": ISSUER, "algorithms": ["HS256"], "hmac_secret": {"env": "JWT_HS_SECRET", "kid": "hs-1"},
                "from_headers": [{"name": "x-internal-token"}], "forward": true
            },
            "remote": {
                "issuer": ISSUER, "algorithms": ["ES256"], "from_params": ["token"],
                "remote_jwks": {"cluster": "auth", "path": "/jwks"}
            }
        },
        "api_keys": {"partners": {"keys": [{"sha256": sha256_hex(b"partner-key-1"), "consumer": "acme", "tier": "gold"}]}},
        "rules": [
            {"match": {"path": {"prefix": "/health"}}, "requires": "none"},
            {"match": {"path": {"prefix": "/public"}}, "requires": "allow_missing"},
            {"match": {"path": {"prefix": "/internal"}}, "requires": {"provider": "internal"}},
            {"match": {"path": {"prefix": "/remote"}}, "requires": {"provider": "remote"}},
            {"match": {"path": {"prefix": "/both"}}, "requires": {"all": [{"provider": "corp"}, {"provider": "partners"}]}},
            {"match": {"path": {"prefix": "/api"}}, "requires": {"any": [{"provider": "corp"}, {"provider": "partners"}]}}
        ],
        "bypass_cors_preflight": true,
        "identity_headers": true
    })
}

fn policy() -> Policy {
    Policy::from_json(config().to_string().as_bytes(), &env).unwrap()
}

fn request(method: &str, path: &str, headers: &[(&str, &str)]) -> RequestView {
    let mut all = vec![("host", "api.example.com")];
    all.extend_from_slice(headers);
    RequestView {
        method: method.into(),
        path: path.into(),
        authority: "api.example.com:443".into(),
        headers: Headers::from_pairs(all),
        ..RequestView::default()
    }
}

fn decide(policy: &Policy, request: &RequestView) -> Decision {
    policy.authenticate(request, NOW, &mut NoKeys, &mut NoCache)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn denied(decision: &Decision) -> (u16, Failure, Option<String>) {
    match &decision.outcome {
        Outcome::Deny { failure, reply } => {
            let challenge = reply.headers.iter().find(|(k, _)| k == "www-authenticate").map(|(_, v)| v.clone());
            (reply.status, *failure, challenge)
        }
        other => panic!("expected a denial, got {other:?}"),
    }
}

fn allowed(decision: &Decision) -> (Option<SharedIdentity>, Vec<HeaderOp>) {
    match &decision.outcome {
        Outcome::Allow { identity, header_ops } => (identity.clone(), header_ops.clone()),
        other => panic!("expected to pass, got {other:?}"),
    }
}

#[test]
fn valid_token_yields_identity_and_headers() {
    let token = Keys::get().es256(testdata::good_claims());
    let auth = bearer(&token);
    let req = request(
        "GET",
        "/api/orders",
        &[("authorization", &auth), ("x-roles", "forged"), ("x-palisade-subject", "root")],
    );
    let (identity, ops) = allowed(&decide(&policy(), &req));
    let identity = identity.unwrap();
    assert_eq!(identity.provider, "corp");
    assert_eq!(identity.subject.as_deref(), Some("alice"));
    assert_eq!(identity.consumer.as_deref(), Some("web"));
    assert_eq!(identity.tier.as_deref(), Some("premium"));
    assert_eq!(identity.claims["scope"], "read write");
    let mut upstream = req.headers.clone();
    upstream.apply(&ops);
    assert_eq!(upstream.get("authorization"), None, "token stripped");
    assert_eq!(upstream.get("x-roles"), Some("admin,ops"));
    assert_eq!(upstream.get_all("x-roles").count(), 1, "forged copy removed");
    assert_eq!(upstream.get("x-palisade-subject"), Some("alice"));
    assert_eq!(upstream.get("x-jwt-payload"), token.split('.').nth(1));
}

#[test]
fn errors_follow_envoy() {
    let policy = policy();
    let keys = Keys::get();
    let (status, failure, challenge) = denied(&decide(&policy, &request("GET", "/api", &[])));
    assert_eq!((status, failure), (401, Failure::Missing));
    assert_eq!(challenge.as_deref(), Some("Bearer realm=\"api.example.com\""));
    let expired = bearer(&keys.es256(json!({"iss": ISSUER, "aud": "api", "exp": NOW - 3600})));
    let (status, failure, challenge) =
        denied(&decide(&policy, &request("GET", "/api", &[("authorization", &expired)])));
    assert_eq!((status, failure), (401, Failure::Expired));
    assert_eq!(challenge.as_deref(), Some("Bearer realm=\"api.example.com\", error=\"invalid_token\""));
    let wrong_aud = bearer(&keys.es256(json!({"iss": ISSUER, "aud": "web", "exp": NOW + 60})));
    let decision = decide(&policy, &request("GET", "/api", &[("authorization", &wrong_aud)]));
    let (status, failure, challenge) = denied(&decision);
    assert_eq!((status, failure, challenge), (403, Failure::AudienceNotAllowed, None));
    let Outcome::Deny { reply, .. } = &decision.outcome else { unreachable!() };
    let body = String::from_utf8(reply.body.clone()).unwrap();
    assert!(!body.contains(&wrong_aud[7..20]), "token never echoed");
    let audit = decision.audit(&request("GET", "/api?x=1", &[])).unwrap().to_json_line();
    assert!(audit.contains("\"reason\":\"audience_not_allowed\"") && audit.contains("\"status\":403"), "{audit}");
}

#[test]
fn every_generated_bad_token_is_denied_cleanly() {
    let policy = Policy::from_json(
        json!({"providers": {"corp": {"issuer": ISSUER, "audiences": ["api"],
            "algorithms": ALL_ALGORITHMS.iter().map(|a| a.name()).collect::<Vec<_>>(),
            "local_jwks": Keys::get().jwks()}},
            "rules": [{"requires": {"provider": "corp"}}]})
        .to_string()
        .as_bytes(),
        &env,
    )
    .unwrap();
    for (name, token, expected) in Keys::get().bad_tokens() {
        let auth = bearer(&token);
        let (status, failure, _) = denied(&decide(&policy, &request("GET", "/", &[("authorization", &auth)])));
        assert_eq!(failure, expected, "{name}");
        assert_eq!(status, expected.status(), "{name}");
    }
}

#[test]
fn api_keys_and_requirement_trees() {
    let policy = policy();
    let (identity, ops) = allowed(&decide(&policy, &request("GET", "/api", &[("x-api-key", "partner-key-1")])));
    let identity = identity.unwrap();
    assert_eq!(
        (identity.provider.as_str(), identity.consumer.as_deref(), identity.tier.as_deref()),
        ("partners", Some("acme"), Some("gold"))
    );
    assert!(ops.contains(&HeaderOp::Remove("x-api-key".into())));
    let (status, failure, _) = denied(&decide(&policy, &request("GET", "/api", &[("x-api-key", "guess")])));
    assert_eq!((status, failure), (401, Failure::ApiKeyInvalid));
    let token = bearer(&Keys::get().es256(testdata::good_claims()));
    let both = request("GET", "/both", &[("authorization", &token), ("x-api-key", "partner-key-1")]);
    assert_eq!(allowed(&decide(&policy, &both)).0.unwrap().provider, "corp");
    let only_jwt = request("GET", "/both", &[("authorization", &token)]);
    assert_eq!(denied(&decide(&policy, &only_jwt)).1, Failure::Missing);
    assert!(allowed(&decide(&policy, &request("GET", "/health", &[("authorization", "Bearer junk")]))).0.is_none());
    assert!(allowed(&decide(&policy, &request("GET", "/public", &[]))).0.is_none());
    assert_eq!(
        denied(&decide(&policy, &request("GET", "/public", &[("authorization", "Bearer a.b.c")]))).1,
        Failure::Malformed
    );
}

#[test]
fn every_credential_of_a_provider_must_verify_and_none_reaches_the_upstream() {
    let policy = policy();
    let good = Keys::get().es256(testdata::good_claims());
    let auth = bearer(&good);
    // A good token in the header, a bad one in the default `access_token` parameter: a
    // backend reading the parameter would take the bad one for the one that verified.
    let path = format!("/api/orders?access_token={}&page=2", "a.b.c");
    let (status, failure, _) = denied(&decide(&policy, &request("GET", &path, &[("authorization", &auth)])));
    assert_eq!((status, failure), (401, Failure::Malformed));
    // Two Authorization values: the second must verify too.
    let two = request("GET", "/api/orders", &[("authorization", &auth), ("authorization", "Bearer a.b.c")]);
    assert_eq!(denied(&decide(&policy, &two)).1, Failure::Malformed);
    // The same good token twice: allowed, and removed from both places.
    let path = format!("/api/orders?access_token={good}&page=2");
    let req = request("GET", &path, &[("authorization", &auth)]);
    let (identity, ops) = allowed(&decide(&policy, &req));
    assert_eq!(identity.unwrap().subject.as_deref(), Some("alice"));
    assert!(ops.contains(&HeaderOp::Remove("authorization".into())), "{ops:?}");
    assert!(ops.contains(&HeaderOp::Set(":path".into(), "/api/orders?page=2".into())), "{ops:?}");
    // `any` stops at the verified JWT without asking the API-key provider, whose (bad) key is
    // still removed: unchecked, it must not reach the upstream.
    let req = request("GET", "/api/orders", &[("authorization", &auth), ("x-api-key", "guess")]);
    let (identity, ops) = allowed(&decide(&policy, &req));
    assert_eq!(identity.unwrap().provider, "corp");
    assert!(ops.contains(&HeaderOp::Remove("x-api-key".into())), "{ops:?}");
}

#[test]
fn hmac_secret_comes_from_the_environment() {
    let policy = policy();
    let keys = Keys::get();
    let claims = json!({"iss": ISSUER, "sub": "svc", "exp": NOW + 60});
    let token = keys.hs256(claims.clone(), "hs-1");
    let req = request("GET", "/internal", &[("x-internal-token", &token)]);
    let (identity, ops) = allowed(&decide(&policy, &req));
    assert_eq!(identity.unwrap().subject.as_deref(), Some("svc"));
    assert!(!ops.contains(&HeaderOp::Remove("x-internal-token".into())), "forward keeps the token");
    let wrong_kid = keys.hs256(claims, "hs-2");
    assert_eq!(
        denied(&decide(&policy, &request("GET", "/internal", &[("x-internal-token", &wrong_kid)]))).1,
        Failure::UnknownKid
    );
}

#[test]
fn cors_preflight_bypass_and_unmatched_requests() {
    let policy = policy();
    let preflight = request("OPTIONS", "/api", &[("origin", "https://app"), ("access-control-request-method", "POST")]);
    assert!(allowed(&decide(&policy, &preflight)).0.is_none());
    let plain_options = request("OPTIONS", "/api", &[]);
    assert_eq!(denied(&decide(&policy, &plain_options)).1, Failure::Missing);
    let (status, failure, _) = denied(&decide(&policy, &request("GET", "/elsewhere", &[])));
    assert_eq!((status, failure), (403, Failure::NoMatchingRule));
}

#[test]
fn cache_serves_until_exp_and_never_across_key_changes() {
    let policy = policy();
    let keys = Keys::get();
    let token = bearer(&keys.es256(json!({"iss": ISSUER, "sub": "bob", "aud": "api", "exp": NOW + 100})));
    let req = request("GET", "/api", &[("authorization", &token)]);
    let mut cache = MemoryCache::new(16, 1 << 20);
    let first = policy.authenticate(&req, NOW, &mut NoKeys, &mut cache);
    assert_eq!((first.cache_hits, first.cache_misses), (0, 1));
    let second = policy.authenticate(&req, NOW + 99, &mut NoKeys, &mut cache);
    assert_eq!((second.cache_hits, second.cache_misses), (1, 0));
    assert_eq!(allowed(&second).0.unwrap().subject.as_deref(), Some("bob"));
    // At exp the entry is not served; verification still accepts within the clock skew.
    let at_exp = policy.authenticate(&req, NOW + 100, &mut NoKeys, &mut cache);
    assert_eq!((at_exp.cache_hits, at_exp.cache_misses), (0, 1));
    let late = policy.authenticate(&req, NOW + 161, &mut NoKeys, &mut cache);
    assert_eq!(denied(&late).1, Failure::Expired);

    // Remote keys: a different key set (rotation) makes the cached entry unusable.
    let remote_token = keys.es256(testdata::good_claims());
    let remote_req = request("GET", &format!("/remote?token={remote_token}"), &[]);
    let full = KeySet::parse(keys.jwks().as_bytes(), &[keys::Algorithm::ES256], KeyOrigin::Public).unwrap();
    let mut store = Store(Some(full));
    let mut cache = MemoryCache::new(16, 1 << 20);
    assert_eq!(policy.authenticate(&remote_req, NOW, &mut store, &mut cache).cache_misses, 1);
    assert_eq!(policy.authenticate(&remote_req, NOW, &mut store, &mut cache).cache_hits, 1);
    let rotated =
        KeySet::parse(testdata::RFC7515_A3_JWKS.as_bytes(), &[keys::Algorithm::ES256], KeyOrigin::Public).unwrap();
    let mut store = Store(Some(rotated));
    let after = policy.authenticate(&remote_req, NOW, &mut store, &mut cache);
    assert_eq!(after.cache_hits, 0);
    assert_eq!(denied(&after).1, Failure::UnknownKid);
    assert_eq!(after.kid_misses, ["remote"]);
}

#[test]
fn remote_provider_without_keys_waits_but_bad_tokens_fail_at_once() {
    let policy = policy();
    let token = Keys::get().es256(testdata::good_claims());
    let decision = decide(&policy, &request("GET", &format!("/remote?token={token}"), &[]));
    assert_eq!(decision.outcome, Outcome::WaitForKeys { providers: vec!["remote".into()] });
    assert_eq!(decision.verdict("r"), Verdict::Respond(Failure::KeysUnavailable.reply("r")));
    let expired = Keys::get().es256(json!({"iss": ISSUER, "exp": NOW - 3600}));
    assert_eq!(denied(&decide(&policy, &request("GET", &format!("/remote?token={expired}"), &[]))).1, Failure::Expired);
}

#[test]
fn config_errors_name_the_field() {
    let with = |path: &[&str], value: serde_json::Value| {
        let mut config = config();
        let mut slot = &mut config;
        for key in &path[..path.len() - 1] {
            slot = &mut slot[*key];
        }
        slot[path[path.len() - 1]] = value;
        match Policy::from_json(config.to_string().as_bytes(), &env) {
            Ok(_) => format!("accepted {path:?}"),
            Err(err) => err.to_string(),
        }
    };
    let cases: Vec<(String, &str)> = vec![
        (
            with(&["providers", "corp", "algorithms"], json!(["none"])),
            "providers.corp.algorithms[0]: unknown variant `none`",
        ),
        (
            with(&["providers", "corp", "algorithms"], json!([])),
            "providers.corp.algorithms: must list at least one algorithm",
        ),
        (with(&["providers", "corp", "issuer"], json!("")), "providers.corp.issuer: must not be empty"),
        (
            with(&["providers", "corp", "remote_jwks"], json!({"cluster": "a", "path": "/j"})),
            "providers.corp: exactly one of local_jwks, remote_jwks, hmac_secret is required",
        ),
        (
            with(&["providers", "corp", "local_jwks"], json!({"keys": [{"kty": "RSA", "e": "AQAB"}]})),
            "providers.corp.local_jwks: keys[0]: missing or invalid n",
        ),
        (
            with(&["providers", "corp", "claim_to_headers"], json!([{"claim": "a..b", "header": "x"}])),
            "providers.corp.claim_to_headers[0].claim: invalid claim path",
        ),
        (
            with(&["providers", "corp", "payload_header"], json!("x-palisade-tier")),
            "providers.corp.payload_header: is reserved",
        ),
        (
            with(&["providers", "corp", "clock_skew_seconds"], json!(601)),
            "providers.corp.clock_skew_seconds: must be at most 600",
        ),
        (with(&["providers", "corp", "extra"], json!(1)), "providers.corp.extra: unknown field `extra`"),
        (
            with(&["providers", "internal", "hmac_secret"], json!({"env": "NOPE"})),
            "providers.internal.hmac_secret.env: environment variable NOPE is not set",
        ),
        (
            with(&["providers", "internal", "algorithms"], json!(["RS256"])),
            "providers.internal.hmac_secret.env: algorithms allow no HMAC algorithm",
        ),
        (
            with(&["providers", "internal", "hmac_secret"], json!({"env": "JWT_HS_SECRET", "encoding": "base64"})),
            "providers.internal.hmac_secret.env: environment variable JWT_HS_SECRET is not valid Base64",
        ),
        (
            with(&["api_keys", "corp"], json!({"keys": [{"sha256": sha256_hex(b"x"), "consumer": "c"}]})),
            "api_keys.corp: name already used by a JWT provider",
        ),
        (
            with(&["rules"], json!([{"requires": {"provider": "ghost"}}])),
            "rules[0].requires.provider: unknown provider \"ghost\"",
        ),
        (with(&["rules"], json!([])), "rules: must have at least one rule"),
        (with(&["max_token_bytes"], json!(0)), "max_token_bytes: must be between 1 and 65536"),
    ];
    for (got, expected) in cases {
        assert!(got.starts_with(expected), "expected {expected:?}, got {got:?}");
    }
}

#[test]
fn hostile_credentials_never_panic() {
    let policy = policy();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let alphabet: Vec<char> = "eyJhbGciOiJ.-_=+/ \u{e9}\u{0}{}\"ABCxyz0123456789".chars().collect();
    for _ in 0..2000 {
        let len = (next() % 300) as usize;
        let token: String = (0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]).collect();
        let auth = bearer(&token);
        for path in ["/api", "/public", "/internal", "/remote?token=x", "/both"] {
            let req =
                request("GET", path, &[("authorization", &auth), ("x-internal-token", &token), ("x-api-key", &token)]);
            let decision = decide(&policy, &req);
            assert!(!matches!(decision.outcome, Outcome::Allow { identity: Some(_), .. }), "{token:?} on {path}");
        }
    }
}

#[test]
fn example_config_compiles() {
    use base64::Engine as _;
    let bytes = include_bytes!("../../../envoy-config/examples/jwt-authn.json");
    let env = |name: &str| {
        (name == "PALISADE_JWT_HS256_SECRET")
            .then(|| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7u8; 32]))
    };
    let policy = Policy::from_json(bytes, &env).unwrap();
    assert_eq!(policy.providers.len(), 4);
    assert!(policy.output_headers.contains(&"x-user-roles".to_string()));
}

/// Whole-request timings for the speed report (issue #8): a cache miss (signature checked), a
/// hit in the VM's LRU, and the decode of a proxy-wide slot (what a hit from another worker
/// adds). No assertion on time; see `verify::tests::report_verification_timings` for how to run.
#[test]
#[ignore = "timing report"]
fn report_request_timings() {
    use super::verify::tests::time_per_call;
    let policy = policy();
    let token = Keys::get().es256(testdata::good_claims());
    let auth = bearer(&token);
    let req = request("GET", "/api/items", &[("authorization", &auth)]);
    let miss = time_per_call(|| {
        let decision = policy.authenticate(&req, NOW, &mut NoKeys, &mut NoCache);
        assert_eq!(decision.cache_misses, 1);
    });
    println!("request ES256, cache miss: {miss:.1} us");
    let mut cache = MemoryCache::new(1024, 1 << 20);
    policy.authenticate(&req, NOW, &mut NoKeys, &mut cache);
    let hit = time_per_call(|| {
        let decision = policy.authenticate(&req, NOW, &mut NoKeys, &mut cache);
        assert_eq!(decision.cache_hits, 1);
    });
    println!("request ES256, VM cache hit: {hit:.2} us");
    let entry = cache::CacheEntry {
        token_hash: cache::token_hash(&token),
        provider: "corp".into(),
        key_set_version: 1,
        valid_until: NOW + 3600,
        claims: testdata::good_claims().as_object().cloned().unwrap_or_default(),
    };
    let stored = entry.encode();
    let decode = time_per_call(|| assert!(cache::CacheEntry::decode(std::hint::black_box(&stored)).is_some()));
    println!("shared slot decode ({} bytes): {decode:.2} us", stored.len());
    let no_token = request("GET", "/health", &[]);
    let trivial = time_per_call(|| drop(std::hint::black_box(decide(&policy, &no_token))));
    println!("request without auth (rule `none`): {trivial:.2} us");
}
