//! The jwt-authn filter under the wasmtime host: tokens minted here with jwt-simple (ES256,
//! RS256, EdDSA, HS256 with the secret from the VM environment), Envoy's statuses and
//! `WWW-Authenticate`, identity in filter state, claim headers, API keys, per-route rules, the
//! verified-token cache, remote JWKS fetched by the root context with the test answering the
//! callouts, two workers sharing one fetch, and hostile traffic.
// Helpers outside `#[test]` fns unwrap too: a panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::OnceLock;
use std::time::Duration;

use jwt_simple::prelude::*;
use palisade_tests::host::{traffic, Exchange, Host, HttpReply, LogLevel, Plugin, Request, Stage, Verdict};
use serde_json::{json, Map, Value};

const ISSUER: &str = "https://auth.example.com";
const INTERNAL: &str = "https://internal.example.com";
const SECRET_VAR: &str = "PALISADE_JWT_HS256_SECRET";
const SECRET: &[u8; 64] = b"palisade-host-hmac-secret-0123456789abcdefghijklmnopqrstuvwxyz!!";
const API_KEY: &str = "acme-live-key-7f3a9c";
/// `printf %s "$API_KEY" | sha256sum`
const API_KEY_SHA256: &str = "09cf49376a19a8630af2104d6bcdfaf91a4c133ba09fe07386cdbd74940fe386";

/// The keys every test signs with, made once per test binary (RSA generation is slow).
struct Keys {
    rsa: RS256KeyPair,
    es256: ES256KeyPair,
    ed: Ed25519KeyPair,
    /// Same kid as `es256`, another key: a bad signature.
    stranger: ES256KeyPair,
    /// A key only the rotated remote JWKS holds.
    rotated: ES256KeyPair,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        rsa: RS256KeyPair::generate(2048).unwrap().with_key_id("rsa-1"),
        es256: ES256KeyPair::generate().with_key_id("ec-1"),
        ed: Ed25519KeyPair::generate().with_key_id("ed-1"),
        stranger: ES256KeyPair::generate().with_key_id("ec-1"),
        rotated: ES256KeyPair::generate().with_key_id("ec-2"),
    })
}

fn jwk(json: String, kid: &str) -> Value {
    let mut value: Value = serde_json::from_str(&json).unwrap();
    value["kid"] = json!(kid);
    value
}

/// The public JWK Set of the RSA, EC and Ed25519 keys.
fn jwks() -> Value {
    let k = keys();
    json!({"keys": [
        jwk(k.rsa.public_key().to_jwk(), "rsa-1"),
        jwk(k.es256.public_key().to_jwk(), "ec-1"),
        jwk(k.ed.public_key().to_jwk(), "ed-1"),
    ]})
}

/// The JWK Set after a rotation: the new EC key next to the old ones.
fn rotated_jwks() -> Value {
    let mut set = jwks();
    set["keys"].as_array_mut().unwrap().push(jwk(keys().rotated.public_key().to_jwk(), "ec-2"));
    set
}

fn claims_of(value: Value) -> JWTClaims<Map<String, Value>> {
    serde_json::from_value(value).unwrap()
}

/// Good claims at the host's clock `now`.
fn claims(now: u64) -> Value {
    json!({"iss": ISSUER, "sub": "alice", "aud": ["api"], "iat": now - 10, "exp": now + 3600,
           "realm_access": {"roles": ["admin", "ops"]}, "plan": "pro", "client_id": "web"})
}

fn with(now: u64, key: &str, value: Value) -> Value {
    let mut c = claims(now);
    match value {
        Value::Null => drop(c.as_object_mut().unwrap().remove(key)),
        value => c[key] = value,
    }
    c
}

fn es256(c: Value) -> String {
    keys().es256.sign(claims_of(c)).unwrap()
}

fn hs256(c: Value) -> String {
    HS256Key::from_bytes(SECRET).authenticate(claims_of(c)).unwrap()
}

fn now(host: &Host) -> u64 {
    host.now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn config() -> String {
    json!({
        "providers": {
            "corp": {
                "issuer": ISSUER, "audiences": ["api"], "algorithms": ["RS256", "ES256", "EdDSA"],
                "local_jwks": jwks(),
                "claim_to_headers": [{"claim": "realm_access.roles", "header": "x-roles"},
                                     {"claim": "sub", "header": "x-sub"}],
                "consumer_claim": "client_id",
                "tier": {"claim": "plan", "map": {"pro": "premium"}, "default": "authenticated"}
            },
            "internal": {
                "issuer": INTERNAL, "algorithms": ["HS256"],
                "hmac_secret": {"env": SECRET_VAR, "encoding": "raw"},
                "from_headers": [{"name": "x-internal-token"}]
            }
        },
        "api_keys": {"partners": {"keys": [{"sha256": API_KEY_SHA256, "consumer": "acme", "tier": "gold"}]}},
        "rules": [
            {"match": {"path": {"prefix": "/healthz"}}, "requires": "none"},
            {"match": {"path": {"prefix": "/internal/"}}, "requires": {"provider": "internal"}},
            {"match": {"path": {"prefix": "/optional/"}}, "requires": "allow_missing"},
            {"match": {"path": {"prefix": "/api/"}, "methods": ["GET", "POST"]},
             "requires": {"any": [{"provider": "corp"}, {"provider": "partners"}]}}
        ],
        "realm": "api.example.com",
        "identity_headers": true
    })
    .to_string()
}

fn load(host: &Host) -> Plugin {
    host.plugin("jwt-authn").config(config()).env(SECRET_VAR, std::str::from_utf8(SECRET).unwrap()).load().unwrap()
}

fn bearer(path: &str, token: &str) -> Request {
    Request::get(path).header("authorization", &format!("Bearer {token}"))
}

fn identity(exchange: &Exchange<'_>) -> Value {
    serde_json::from_slice(&exchange.filter_state("palisade.identity").expect("identity in filter state")).unwrap()
}

/// The reply's status, `WWW-Authenticate` and JSON body.
fn denial(exchange: &Exchange<'_>) -> (u16, Option<String>, Value, String) {
    let reply = exchange.local_reply().unwrap_or_else(|| panic!("no local reply: {:?}", exchange.verdict()));
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(reply.headers.get("content-type").as_deref(), Some("application/json"));
    (reply.status, reply.headers.get("www-authenticate"), body, reply.details.clone())
}

const INVALID: &str = r#"Bearer realm="api.example.com", error="invalid_token""#;

#[test]
fn config_rejections_name_the_field() {
    let host = Host::new();
    let reject = |config: Value, env: Option<&str>| {
        let mut builder = host.plugin("jwt-authn").config(config.to_string());
        if let Some(secret) = env {
            builder = builder.env(SECRET_VAR, secret);
        }
        match builder.load() {
            Ok(_) => panic!("accepted: {config}"),
            Err(error) => error.to_string(),
        }
    };
    let provider = |extra: Value| {
        let mut p = json!({"issuer": ISSUER, "algorithms": ["ES256"], "local_jwks": jwks()});
        for (k, v) in extra.as_object().unwrap() {
            p[k] = v.clone();
        }
        json!({"providers": {"corp": p}, "rules": [{"match": {}, "requires": {"provider": "corp"}}]})
    };
    let error = reject(provider(json!({"algorithms": ["none"]})), None);
    assert!(error.contains("providers.corp.algorithms"), "{error}");
    let error = reject(provider(json!({"clock_skew_seconds": 601})), None);
    assert!(error.contains("providers.corp.clock_skew_seconds"), "{error}");
    let error = reject(provider(json!({"issuer_typo": "x"})), None);
    assert!(error.contains("issuer_typo"), "{error}");
    let error = reject(json!({"providers": {}, "rules": [{"match": {}, "requires": {"provider": "ghost"}}]}), None);
    assert!(error.contains("rules") && error.contains("ghost"), "{error}");
    let error = reject(json!({"providers": {}, "rules": []}), None);
    assert!(error.contains("rules"), "{error}");
    let hmac = json!({"providers": {"i": {"issuer": INTERNAL, "algorithms": ["HS256"],
        "hmac_secret": {"env": SECRET_VAR, "encoding": "raw"}}},
        "rules": [{"match": {}, "requires": {"provider": "i"}}]});
    let error = reject(hmac.clone(), None);
    assert!(error.contains("providers.i.hmac_secret"), "secret missing from the environment: {error}");
    let error = reject(hmac, Some("too-short"));
    assert!(error.contains("providers.i.hmac_secret"), "secret shorter than the hash: {error}");
    // A private member in an inline JWKS is refused.
    let mut private: Value = serde_json::from_str(&keys().ed.public_key().to_jwk()).unwrap();
    private["d"] = json!("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A");
    let error = reject(provider(json!({"algorithms": ["EdDSA"], "local_jwks": {"keys": [private]}})), None);
    assert!(error.contains("providers.corp.local_jwks"), "{error}");
    let error = reject(
        json!({"api_keys": {"p": {"keys": [{"sha256": "abc", "consumer": "x"}]}},
        "rules": [{"match": {}, "requires": {"provider": "p"}}]}),
        None,
    );
    assert!(error.contains("api_keys.p.keys[0].sha256"), "{error}");
}

#[test]
fn valid_tokens_of_every_algorithm_pass_with_identity_and_claim_headers() {
    let host = Host::new();
    let plugin = load(&host);
    let now = now(&host);
    let k = keys();
    let tokens = [
        ("ES256", k.es256.sign(claims_of(claims(now))).unwrap()),
        ("RS256", k.rsa.sign(claims_of(claims(now))).unwrap()),
        ("EdDSA", k.ed.sign(claims_of(claims(now))).unwrap()),
    ];
    for (alg, token) in &tokens {
        let exchange = plugin.send(
            bearer("/api/items", token)
                .header("x-palisade-subject", "forged")
                .header("x-roles", "root")
                .header("x-request-id", "req-1"),
        );
        assert_eq!(exchange.verdict(), Verdict::Forwarded, "{alg}");
        let upstream = exchange.upstream().unwrap();
        assert_eq!(upstream.header("authorization"), None, "{alg}: the token is stripped");
        assert_eq!(upstream.header("x-roles").as_deref(), Some("admin,ops"), "{alg}: array joined");
        assert_eq!(upstream.headers.get_all("x-roles").len(), 1, "{alg}: the forged copy is gone");
        assert_eq!(upstream.header("x-sub").as_deref(), Some("alice"));
        assert_eq!(upstream.header("x-palisade-subject").as_deref(), Some("alice"));
        assert_eq!(upstream.header("x-palisade-provider").as_deref(), Some("corp"));
        assert_eq!(upstream.header("x-palisade-tier").as_deref(), Some("premium"));
        assert_eq!(upstream.header("x-request-id").as_deref(), Some("req-1"));
        let id = identity(&exchange);
        assert_eq!(id["provider"], "corp", "{alg}");
        assert_eq!(id["issuer"], ISSUER);
        assert_eq!(id["subject"], "alice");
        assert_eq!(id["consumer"], "web");
        assert_eq!(id["tier"], "premium");
        assert_eq!(id["claims"]["realm_access"]["roles"], json!(["admin", "ops"]));
    }
    // HS256 on its own header, the secret from the VM environment.
    let token = hs256(json!({"iss": INTERNAL, "sub": "batch-job", "exp": now + 60}));
    let exchange = plugin.send(Request::get("/internal/jobs").header("x-internal-token", &token));
    assert_eq!(exchange.verdict(), Verdict::Forwarded);
    assert_eq!(exchange.upstream().unwrap().header("x-internal-token"), None);
    let id = identity(&exchange);
    assert_eq!((id["provider"].as_str(), id["subject"].as_str()), (Some("internal"), Some("batch-job")));
    assert_eq!(host.metric("palisade.jwt_authn.allowed"), Some(4));
    assert_eq!(host.metric("palisade.jwt_authn.denied"), Some(0));
}

#[test]
fn missing_token_is_401_without_error_and_audited() {
    let host = Host::new();
    let plugin = load(&host);
    let exchange = plugin.send(Request::get("/api/items?x=1").header("x-request-id", "req-9"));
    let (status, www, body, details) = denial(&exchange);
    assert_eq!(status, 401);
    assert_eq!(www.as_deref(), Some(r#"Bearer realm="api.example.com""#));
    assert_eq!(body["error"], "unauthorized");
    assert_eq!(details, "jwt_authn_token_missing");
    assert_eq!(exchange.client().unwrap().status(), 401);
    assert_eq!(exchange.filter_state("palisade.identity"), None);
    assert_eq!(host.metric("palisade.jwt_authn.denied.token_missing"), Some(1));
    let audit = plugin.logs().into_iter().find(|e| e.message.contains(r#""audit":"palisade""#)).expect("an audit line");
    let event: Value = serde_json::from_str(&audit.message).unwrap();
    assert_eq!(event["filter"], "jwt-authn");
    assert_eq!(event["decision"], "deny");
    assert_eq!(event["reason"], "token_missing");
    assert_eq!(event["status"], 401);
    assert_eq!(event["path"], "/api/items", "no query in the audit line");
    assert_eq!(event["request_id"], "req-9");
}

#[test]
fn bad_tokens_are_401_invalid_token_and_never_echoed() {
    let host = Host::new();
    let plugin = load(&host);
    let now = now(&host);
    let k = keys();
    let b64 = |bytes: &[u8]| Base64UrlSafeNoPadding::encode_to_string(bytes).unwrap();
    let good = es256(claims(now));
    let parts: Vec<&str> = good.split('.').collect();
    let rsa_pem = k.rsa.public_key().to_pem().unwrap();
    let confused = HS256Key::from_bytes(rsa_pem.as_bytes()).with_key_id("rsa-1").authenticate(claims_of(claims(now)));
    let cases: Vec<(&str, String, &str)> = vec![
        ("expired", es256(with(now, "exp", json!(now - 3600))), "token_expired"),
        ("not yet valid", es256(with(now, "nbf", json!(now + 3600))), "token_not_yet_valid"),
        ("no exp", es256(with(now, "exp", Value::Null)), "exp_missing"),
        ("wrong issuer", es256(with(now, "iss", json!("https://evil.example.com"))), "issuer_mismatch"),
        ("bad signature", k.stranger.sign(claims_of(claims(now))).unwrap(), "bad_signature"),
        (
            "unknown kid",
            ES256KeyPair::generate().with_key_id("ghost").sign(claims_of(claims(now))).unwrap(),
            "unknown_kid",
        ),
        ("alg none", format!("{}.{}.", b64(br#"{"alg":"none","typ":"JWT"}"#), parts[1]), "alg_none"),
        ("alg NONE", format!("{}.{}.{}", b64(br#"{"alg":"NONE"}"#), parts[1], parts[2]), "alg_none"),
        ("HS256 signed with the RSA public key", confused.unwrap(), "alg_not_allowed"),
        (
            "RS256 naming the EC key",
            k.rsa.clone().with_key_id("ec-1").sign(claims_of(claims(now))).unwrap(),
            "alg_key_mismatch",
        ),
        ("truncated", good[..good.len() / 2].to_string(), "token_malformed"),
        ("not a JWT", "not-a-jwt".to_string(), "token_malformed"),
        ("non-JSON payload", format!("{}.{}.{}", parts[0], b64(b"not json"), parts[2]), "token_malformed"),
        ("oversized", es256(with(now, "pad", json!("x".repeat(9000)))), "token_too_large"),
    ];
    for (name, token, reason) in &cases {
        let exchange = plugin.send(bearer("/api/items", token));
        let (status, www, body, details) = denial(&exchange);
        assert_eq!(status, 401, "{name}");
        assert_eq!(www.as_deref(), Some(INVALID), "{name}");
        assert_eq!(details, format!("jwt_authn_{reason}"), "{name}");
        assert_eq!(body["error"], "unauthorized", "{name}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{name}");
        let text = exchange.client().unwrap().body_text();
        for part in token.split('.').filter(|p| p.len() > 8) {
            assert!(!text.contains(part), "{name}: the reply echoes the token: {text}");
        }
        assert_eq!(exchange.filter_state("palisade.identity"), None, "{name}");
        assert_eq!(exchange.upstream(), None, "{name}");
    }
    assert_eq!(host.metric("palisade.jwt_authn.denied"), Some(cases.len() as i64));
    assert_eq!(host.metric("palisade.jwt_authn.denied.alg_none"), Some(2));
    assert_eq!(host.metric("palisade.jwt_authn.allowed"), Some(0));
}

#[test]
fn audience_not_allowed_is_403_and_unknown_route_fails_closed() {
    let host = Host::new();
    let plugin = load(&host);
    let now = now(&host);
    for aud in [json!(["web"]), Value::Null] {
        let exchange = plugin.send(bearer("/api/items", &es256(with(now, "aud", aud.clone()))));
        let (status, www, body, details) = denial(&exchange);
        assert_eq!((status, www, details.as_str()), (403, None, "jwt_authn_audience_not_allowed"), "{aud}");
        assert_eq!(body["error"], "forbidden");
    }
    // A good token on a path no rule matches: 403, as documented (Envoy would let it pass).
    let exchange = plugin.send(bearer("/other", &es256(claims(now))));
    let (status, _, _, details) = denial(&exchange);
    assert_eq!((status, details.as_str()), (403, "jwt_authn_no_matching_rule"));
    // The /api/ rule is for GET and POST only.
    let exchange = plugin
        .send(Request::new("DELETE", "/api/items").header("authorization", &format!("Bearer {}", es256(claims(now)))));
    assert_eq!(denial(&exchange).0, 403);
}

#[test]
fn per_route_requirements_and_api_keys() {
    let host = Host::new();
    let plugin = load(&host);
    let now = now(&host);
    // No auth on /healthz, but forged identity headers are removed there too.
    let exchange = plugin.send(Request::get("/healthz").header("x-palisade-subject", "root").header("x-roles", "x"));
    assert_eq!(exchange.verdict(), Verdict::Forwarded);
    let upstream = exchange.upstream().unwrap();
    assert_eq!((upstream.header("x-palisade-subject"), upstream.header("x-roles")), (None, None));
    // /internal/ wants the HS256 provider: a corp token in Authorization is not its credential.
    let exchange = plugin.send(bearer("/internal/jobs", &es256(claims(now))));
    let (status, www, _, _) = denial(&exchange);
    assert_eq!((status, www.as_deref()), (401, Some(r#"Bearer realm="api.example.com""#)));
    // An HS256 token of the wrong issuer, and one signed with another secret.
    let wrong_iss = hs256(json!({"iss": ISSUER, "exp": now + 60}));
    let exchange = plugin.send(Request::get("/internal/jobs").header("x-internal-token", &wrong_iss));
    assert_eq!(denial(&exchange).3, "jwt_authn_issuer_mismatch");
    let other = HS256Key::from_bytes(&[7u8; 64]).authenticate(claims_of(json!({"iss": INTERNAL, "exp": now + 60})));
    let exchange = plugin.send(Request::get("/internal/jobs").header("x-internal-token", &other.unwrap()));
    assert_eq!(denial(&exchange).3, "jwt_authn_bad_signature");
    // allow_missing: nothing passes without identity, a bad token still fails.
    let exchange = plugin.send(Request::get("/optional/x"));
    assert_eq!(exchange.verdict(), Verdict::Forwarded);
    assert_eq!(exchange.filter_state("palisade.identity"), None);
    let exchange = plugin.send(bearer("/optional/x", &es256(with(now, "exp", json!(now - 3600)))));
    assert_eq!(denial(&exchange).0, 401);
    let exchange = plugin.send(bearer("/optional/x", &es256(claims(now))));
    assert_eq!(identity(&exchange)["subject"], "alice");
    // API keys on /api/ (any of corp, partners).
    let exchange = plugin.send(Request::get("/api/items").header("x-api-key", API_KEY));
    assert_eq!(exchange.verdict(), Verdict::Forwarded);
    assert_eq!(exchange.upstream().unwrap().header("x-api-key"), None, "the key is stripped");
    let id = identity(&exchange);
    assert_eq!(
        (id["provider"].as_str(), id["consumer"].as_str(), id["tier"].as_str()),
        (Some("partners"), Some("acme"), Some("gold"))
    );
    assert_eq!(id.get("subject"), Some(&Value::Null));
    let exchange = plugin.send(Request::get("/api/items").header("x-api-key", "acme-live-key-7f3a9d"));
    let (status, www, body, details) = denial(&exchange);
    assert_eq!((status, www.as_deref(), details.as_str()), (401, Some(INVALID), "jwt_authn_api_key_invalid"));
    assert!(!body.to_string().contains("acme-live"), "{body}");
}

#[test]
fn verified_tokens_are_cached_per_proxy() {
    let host = Host::new();
    let (a, b) = (
        host.plugin("jwt-authn").config(config()).env(SECRET_VAR, std::str::from_utf8(SECRET).unwrap()).vm_id("p"),
        host.plugin("jwt-authn").config(config()).env(SECRET_VAR, std::str::from_utf8(SECRET).unwrap()).vm_id("p"),
    );
    let (a, b) = (a.load().unwrap(), b.load().unwrap());
    let token = es256(claims(now(&host)));
    for plugin in [&a, &a, &b, &b] {
        let exchange = plugin.send(bearer("/api/items", &token));
        assert_eq!(identity(&exchange)["subject"], "alice");
    }
    assert_eq!(host.metric("palisade.jwt_authn.cache_misses"), Some(1), "verified once for both workers");
    assert_eq!(host.metric("palisade.jwt_authn.cache_hits"), Some(3));
    // A cached token is never served past its exp.
    let short = es256(with(now(&host), "exp", json!(now(&host) + 30)));
    assert_eq!(a.send(bearer("/api/items", &short)).verdict(), Verdict::Forwarded);
    host.advance(Duration::from_secs(100));
    let exchange = b.send(bearer("/api/items", &short));
    assert_eq!(denial(&exchange).3, "jwt_authn_token_expired");
}

// ---- remote JWKS -------------------------------------------------------------------------

const JWKS_PATH: &str = "/.well-known/jwks.json";

fn remote_config(wait_ms: u64) -> String {
    json!({
        "providers": {"remote": {
            "issuer": ISSUER, "audiences": ["api"], "algorithms": ["ES256", "RS256"],
            "remote_jwks": {"cluster": "auth_jwks", "path": JWKS_PATH, "authority": "auth.example.com",
                            "timeout_ms": 2000, "refresh_interval_seconds": 600, "jitter_seconds": 0,
                            "retry_seconds": 10, "kid_miss_min_interval_seconds": 30,
                            "wait_for_keys_ms": wait_ms}
        }},
        "rules": [{"match": {}, "requires": {"provider": "remote"}}],
        "realm": "api.example.com"
    })
    .to_string()
}

fn remote_worker(host: &Host) -> Plugin {
    host.plugin("jwt-authn").config(remote_config(3000)).vm_id("palisade").load().unwrap()
}

fn jwks_reply(set: &Value) -> HttpReply {
    HttpReply::ok().header("content-type", "application/json").body(set.to_string())
}

/// The one pending JWKS callout of `plugin`.
fn pending_fetch(plugin: &Plugin) -> u32 {
    let calls = plugin.http_calls();
    assert_eq!(calls.len(), 1, "one JWKS callout: {calls:?}");
    let call = &calls[0];
    assert_eq!(call.cluster, "auth_jwks");
    assert_eq!(call.headers.get(":path").as_deref(), Some(JWKS_PATH));
    assert_eq!(call.headers.get(":authority").as_deref(), Some("auth.example.com"));
    assert_eq!(call.headers.get(":method").as_deref(), Some("GET"));
    assert_eq!(call.timeout_ms, 2000);
    call.token
}

fn record(host: &Host) -> Value {
    let (bytes, _) = host.shared_data("palisade", "palisade.jwt.jwks.remote").expect("JWKS record");
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn first_fetch_holds_requests_then_resumes_them() {
    let host = Host::new();
    host.add_cluster("auth_jwks");
    let plugin = remote_worker(&host);
    let token = pending_fetch(&plugin);
    assert_eq!(plugin.tick_period(), Duration::from_millis(250));
    let t = es256(claims(now(&host)));
    let mut first = plugin.send(bearer("/api/a", &t));
    let mut second = plugin.send(bearer("/api/b", &keys().rsa.sign(claims_of(claims(now(&host)))).unwrap()));
    for exchange in [&first, &second] {
        assert_eq!(
            exchange.verdict(),
            Verdict::Paused { filter: "jwt-authn".into(), stage: Stage::RequestHeaders },
            "waits for the first keys"
        );
    }
    assert_eq!(host.metric("palisade.jwt_authn.waited_for_keys"), Some(2));
    plugin.tick().unwrap();
    assert_eq!(plugin.http_calls().len(), 1, "no second fetch while one is in flight");
    plugin.answer_http_call(token, jwks_reply(&jwks())).unwrap();
    assert_eq!(host.metric("palisade.jwt_authn.jwks_fetch_ok"), Some(1));
    for exchange in [&mut first, &mut second] {
        exchange.poll();
        assert_eq!(exchange.verdict(), Verdict::Forwarded);
        assert_eq!(exchange.upstream().unwrap().header("authorization"), None);
        assert_eq!(identity(exchange)["provider"], "remote");
    }
    // Later requests verify at once; no fetch is due.
    assert_eq!(plugin.send(bearer("/api/c", &t)).verdict(), Verdict::Forwarded);
    plugin.tick().unwrap();
    assert!(plugin.http_calls().is_empty());
    assert_eq!(host.metric("palisade.jwt_authn.allowed"), Some(3));
}

#[test]
fn refresh_on_tick_and_stale_if_error() {
    let host = Host::new();
    host.add_cluster("auth_jwks");
    let plugin = remote_worker(&host);
    plugin.answer_http_call(pending_fetch(&plugin), jwks_reply(&jwks())).unwrap();
    host.advance(Duration::from_secs(300));
    plugin.tick().unwrap();
    assert!(plugin.http_calls().is_empty(), "not due before the refresh interval");
    host.advance(Duration::from_secs(301));
    plugin.tick().unwrap();
    // The refresh fails: the last good keys keep serving, the failure is counted and retried.
    plugin.answer_http_call(pending_fetch(&plugin), HttpReply::status(503)).unwrap();
    assert_eq!(host.metric("palisade.jwt_authn.jwks_fetch_failed"), Some(1));
    let stored = record(&host);
    assert_eq!(stored["failures"], 1);
    assert!(stored["jwks"].as_str().is_some(), "stale keys kept: {stored}");
    host.advance(Duration::from_secs(2));
    let exchange = plugin.send(bearer("/api/x", &es256(claims(now(&host)))));
    assert_eq!(exchange.verdict(), Verdict::Forwarded, "stale-if-error");
    // A reset and a body that is not a JWKS are failures too.
    host.advance(Duration::from_secs(10));
    plugin.tick().unwrap();
    plugin.answer_http_call(pending_fetch(&plugin), HttpReply::Reset).unwrap();
    host.advance(Duration::from_secs(10));
    plugin.tick().unwrap();
    plugin.answer_http_call(pending_fetch(&plugin), HttpReply::ok().body("<html>")).unwrap();
    assert_eq!(host.metric("palisade.jwt_authn.jwks_fetch_failed"), Some(3));
    assert_eq!(record(&host)["failures"], 3);
    // The retry succeeds with rotated keys: a token of the new key verifies.
    host.advance(Duration::from_secs(10));
    plugin.tick().unwrap();
    plugin.answer_http_call(pending_fetch(&plugin), jwks_reply(&rotated_jwks())).unwrap();
    assert_eq!(host.metric("palisade.jwt_authn.jwks_fetch_ok"), Some(2));
    assert_eq!(record(&host)["failures"], 0);
    host.advance(Duration::from_secs(2));
    let rotated = keys().rotated.sign(claims_of(claims(now(&host)))).unwrap();
    assert_eq!(plugin.send(bearer("/api/x", &rotated)).verdict(), Verdict::Forwarded);
}

#[test]
fn unknown_kid_triggers_one_rate_limited_refetch() {
    let host = Host::new();
    host.add_cluster("auth_jwks");
    let plugin = remote_worker(&host);
    plugin.answer_http_call(pending_fetch(&plugin), jwks_reply(&jwks())).unwrap();
    host.advance(Duration::from_secs(5));
    let rotated = keys().rotated.sign(claims_of(claims(now(&host)))).unwrap();
    let exchange = plugin.send(bearer("/api/x", &rotated));
    assert_eq!(denial(&exchange).3, "jwt_authn_unknown_kid");
    plugin.tick().unwrap();
    plugin.answer_http_call(pending_fetch(&plugin), jwks_reply(&rotated_jwks())).unwrap();
    host.advance(Duration::from_secs(2));
    assert_eq!(plugin.send(bearer("/api/x", &rotated)).verdict(), Verdict::Forwarded);
    // Another unknown kid soon after: rejected, and no refetch until the interval passed.
    let ghost = ES256KeyPair::generate().with_key_id("ghost").sign(claims_of(claims(now(&host)))).unwrap();
    assert_eq!(denial(&plugin.send(bearer("/api/x", &ghost))).3, "jwt_authn_unknown_kid");
    plugin.tick().unwrap();
    assert!(plugin.http_calls().is_empty(), "kid-miss refetches are rate-limited");
    host.advance(Duration::from_secs(30));
    assert_eq!(denial(&plugin.send(bearer("/api/x", &ghost))).3, "jwt_authn_unknown_kid");
    plugin.tick().unwrap();
    plugin.answer_http_call(pending_fetch(&plugin), jwks_reply(&rotated_jwks())).unwrap();
    assert_eq!(host.metric("palisade.jwt_authn.jwks_fetch_ok"), Some(3));
}

#[test]
fn no_keys_by_the_deadline_is_503_not_401() {
    let host = Host::new();
    host.add_cluster("auth_jwks");
    let plugin = remote_worker(&host);
    let token = pending_fetch(&plugin);
    let mut exchange = plugin.send(bearer("/api/x", &es256(claims(now(&host)))));
    assert!(matches!(exchange.verdict(), Verdict::Paused { .. }));
    // The fetch times out; the request keeps waiting until its deadline.
    plugin.answer_http_call(token, HttpReply::Timeout).unwrap();
    assert_eq!(host.metric("palisade.jwt_authn.jwks_fetch_failed"), Some(1));
    exchange.poll();
    assert!(matches!(exchange.verdict(), Verdict::Paused { .. }), "{:?}", exchange.verdict());
    host.advance(Duration::from_millis(2900));
    plugin.tick().unwrap();
    exchange.poll();
    assert!(matches!(exchange.verdict(), Verdict::Paused { .. }), "{:?}", exchange.verdict());
    host.advance(Duration::from_millis(200));
    plugin.tick().unwrap();
    exchange.poll();
    let (status, www, body, details) = denial(&exchange);
    assert_eq!((status, www, details.as_str()), (503, None, "jwt_authn_keys_unavailable"));
    assert_eq!(body["error"], "unavailable");
    assert_eq!(exchange.client().unwrap().status(), 503);
    assert_eq!(host.metric("palisade.jwt_authn.denied.keys_unavailable"), Some(1));
    // A missing token does not need keys: 401 at once.
    assert_eq!(denial(&plugin.send(Request::get("/api/x"))).0, 401);
    // The retry brings keys; new requests pass.
    host.advance(Duration::from_secs(10));
    plugin.tick().unwrap();
    plugin.answer_http_call(pending_fetch(&plugin), jwks_reply(&jwks())).unwrap();
    assert_eq!(plugin.send(bearer("/api/x", &es256(claims(now(&host))))).verdict(), Verdict::Forwarded);
}

#[test]
fn two_workers_share_one_fetch() {
    let host = Host::new();
    host.add_cluster("auth_jwks");
    let (a, b) = (remote_worker(&host), remote_worker(&host));
    let token = pending_fetch(&a);
    assert!(b.http_calls().is_empty(), "the second worker sees the lease and does not fetch");
    b.tick().unwrap();
    assert!(b.http_calls().is_empty());
    let t = es256(claims(now(&host)));
    let mut waiting = b.send(bearer("/api/x", &t));
    assert!(matches!(waiting.verdict(), Verdict::Paused { .. }));
    a.answer_http_call(token, jwks_reply(&jwks())).unwrap();
    // b learns of the keys through shared data on its next tick.
    b.tick().unwrap();
    waiting.poll();
    assert_eq!(waiting.verdict(), Verdict::Forwarded);
    assert_eq!(a.send(bearer("/api/x", &t)).verdict(), Verdict::Forwarded);
    assert_eq!(host.metric("palisade.jwt_authn.jwks_fetch_ok"), Some(1));
    // The refresh is fetched once too, by whichever worker ticks first.
    host.advance(Duration::from_secs(601));
    b.tick().unwrap();
    a.tick().unwrap();
    assert_eq!(a.http_calls().len() + b.http_calls().len(), 1);
}

#[test]
fn keys_fetched_by_one_worker_serve_the_others_at_once() {
    let host = Host::new();
    host.add_cluster("auth_jwks");
    let (a, b) = (remote_worker(&host), remote_worker(&host));
    a.answer_http_call(pending_fetch(&a), jwks_reply(&jwks())).unwrap();
    host.advance(Duration::from_secs(5));
    assert_eq!(b.send(bearer("/api/x", &es256(claims(now(&host))))).verdict(), Verdict::Forwarded);
    // b meets a token of a rotated key; a fetches the new set (kid miss). b's very next request,
    // at the same instant, already verifies with it: no per-VM recheck delay.
    let rotated = keys().rotated.sign(claims_of(claims(now(&host)))).unwrap();
    assert_eq!(denial(&b.send(bearer("/api/x", &rotated))).3, "jwt_authn_unknown_kid");
    a.tick().unwrap();
    assert!(b.http_calls().is_empty(), "one fetch for both workers");
    a.answer_http_call(pending_fetch(&a), jwks_reply(&rotated_jwks())).unwrap();
    assert_eq!(b.send(bearer("/api/x", &rotated)).verdict(), Verdict::Forwarded);
    assert_eq!(host.metric("palisade.jwt_authn.jwks_fetch_ok"), Some(2));
    // A failed refresh stores no new keys: b keeps serving the rotated set.
    host.advance(Duration::from_secs(601));
    a.tick().unwrap();
    b.tick().unwrap();
    let (fetcher, token) = match (a.http_calls().first(), b.http_calls().first()) {
        (Some(call), None) => (&a, call.token),
        (None, Some(call)) => (&b, call.token),
        calls => panic!("one refresh fetch: {calls:?}"),
    };
    fetcher.answer_http_call(token, HttpReply::status(500)).unwrap();
    let rotated = keys().rotated.sign(claims_of(claims(now(&host)))).unwrap();
    assert_eq!(b.send(bearer("/api/x", &rotated)).verdict(), Verdict::Forwarded);
}

#[test]
fn hostile_traffic_never_traps() {
    let host = Host::new();
    let plugin = load(&host);
    traffic::assert_never_traps(&host.chain(&[&plugin]), 8, 300).unwrap();
    host.add_cluster("auth_jwks");
    let remote = remote_worker(&host);
    remote.answer_http_call(pending_fetch(&remote), jwks_reply(&jwks())).unwrap();
    traffic::assert_never_traps(&host.chain(&[&remote]), 9, 300).unwrap();
    // Malformed tokens of every size and shape.
    for len in [0usize, 1, 2, 3, 100, 8191, 8192, 8193, 70_000] {
        for filler in ["a", ".", "..", "é", "\u{0}"] {
            let token: String = filler.repeat(len / filler.len().max(1) + 1).chars().take(len).collect();
            let exchange =
                plugin.send(Request::get("/api/x").header_bytes("authorization", format!("Bearer {token}").as_bytes()));
            assert!(!matches!(exchange.verdict(), Verdict::Trapped { .. } | Verdict::Forwarded), "{len} {filler:?}");
        }
    }
    assert!(!plugin.logged(LogLevel::Critical, "panicked"));
}
