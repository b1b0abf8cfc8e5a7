//! The gateway bundle (dist/gateway.wasm) against the chain of the six separate filters, in
//! the wasmtime host: the same requests go through both, each in its own host, with the same
//! per-layer configs; the responses (status, headers, body), what the upstream received and
//! every counter must be identical. Plus config rejection naming the field, a stream paused for
//! remote JWKS that must resume through the later layers, and hostile traffic.
// Helpers outside `#[test]` fns unwrap too: a panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jwt_simple::prelude::*;
use palisade_tests::host::{traffic, Exchange, Host, HttpReply, Plugin, Received, Request, Response, Verdict};
use serde_json::{json, Map, Value};

const ISSUER: &str = "https://auth.example.com";
const INTERNAL: &str = "https://internal.example.com";
const HS256_SECRET: &[u8] = b"palisade-gateway-host-test-hs256-secret!";
const FE_KEY_1: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="; // 32 x 0x01
const FE_KEY_2: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI="; // 32 x 0x02
const ORIGIN: &str = "https://app.example.com";
const CLIENT: &str = "203.0.113.7:40000";

/// The VM environment every plugin gets (secrets never go into plugin configs).
fn env() -> Vec<(&'static str, String)> {
    vec![
        ("PALISADE_JWT_HS256_SECRET", URL_SAFE_NO_PAD.encode(HS256_SECRET)),
        ("PALISADE_FE_USERS_2026_01", FE_KEY_1.to_string()),
        ("PALISADE_FE_USERS_2026_06", FE_KEY_2.to_string()),
        ("PALISADE_CSRF_KEY", FE_KEY_1.to_string()),
        ("PALISADE_RATE_LIMIT_SEED", "host-gateway-seed".to_string()),
    ]
}

struct Keys {
    es256: ES256KeyPair,
    /// Same kid, another key: a bad signature.
    stranger: ES256KeyPair,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        es256: ES256KeyPair::generate().with_key_id("ec-1"),
        stranger: ES256KeyPair::generate().with_key_id("ec-1"),
    })
}

fn jwks() -> Value {
    let mut key: Value = serde_json::from_str(&keys().es256.public_key().to_jwk()).unwrap();
    key["kid"] = json!("ec-1");
    json!({"keys": [key]})
}

fn example(name: &str) -> Value {
    let path = format!("{}/../envoy-config/examples/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn jwt_config(corp_keys: Value) -> Value {
    let mut corp = json!({
        "issuer": ISSUER, "audiences": ["api.example.com"], "algorithms": ["ES256"],
        "clock_skew_seconds": 60,
        "claim_to_headers": [{"claim": "email", "header": "x-user-email"}],
        "consumer_claim": "azp",
        "tier": {"claim": "plan", "map": {"pro": "premium"}, "default": "authenticated"}
    });
    corp.as_object_mut().unwrap().extend(corp_keys.as_object().unwrap().clone());
    json!({
        "providers": {
            "corp": corp,
            "internal": {
                "issuer": INTERNAL, "algorithms": ["HS256"],
                "hmac_secret": {"env": "PALISADE_JWT_HS256_SECRET", "encoding": "base64url", "kid": "internal-1"},
                "from_headers": [{"name": "x-internal-token"}]
            }
        },
        "rules": [
            {"match": {"path": {"prefix": "/healthz"}}, "requires": "none"},
            {"match": {"path": {"prefix": "/auth/"}}, "requires": "none"},
            {"match": {"path": {"prefix": "/public/"}, "methods": ["GET"]}, "requires": "allow_missing"},
            {"match": {"path": {"prefix": "/internal/"}}, "requires": {"provider": "internal"}},
            {"match": {"path": {"prefix": "/"}}, "requires": {"provider": "corp"}}
        ],
        "bypass_cors_preflight": true,
        "identity_headers": true
    })
}

fn authz_config() -> Value {
    json!({
        "default_action": "deny",
        "policies": [
            {"name": "block-admin", "action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin/*"]}}]}]},
            {"name": "audit-writes", "action": "AUDIT",
             "rules": [{"to": [{"operation": {"methods": ["POST", "PUT", "PATCH", "DELETE"]}}]}]},
            {"name": "open", "action": "ALLOW",
             "rules": [{"to": [{"operation": {"paths": ["/healthz", "/auth/*", "/public/*"]}}]}]},
            {"name": "internal", "action": "ALLOW",
             "rules": [{"from": [{"source": {"requestPrincipals": ["https://internal.example.com/*"]}}],
                        "to": [{"operation": {"paths": ["/internal/*"]}}]}]},
            {"name": "corp-users", "action": "ALLOW",
             "rules": [{"from": [{"source": {"requestPrincipals": ["https://auth.example.com/*"]}}],
                        "to": [{"operation": {"paths": ["/api/*", "/users", "/users/*"]}}],
                        "when": [{"key": "request.auth.claims[scope]", "values": ["api"]}]}]}
        ]
    })
}

fn rate_limit_config() -> Value {
    let mut config = example("rate-limit");
    config["trusted_proxies"] = json!(0);
    // A small login limit, so the test sees the 429 after a few requests.
    config["limits"]["login"]["rate"] = json!({"tokens": 3, "per": "1m"});
    config
}

fn validation_config() -> Value {
    let mut config = example("request-validation");
    // CSRF by origin only (the example's signed-token variant is covered by its own tests).
    config["routes"][0]["csrf"] = json!({"allowed_origins": ["https://shop.example.com"]});
    config
}

fn encryption_config() -> Value {
    let mut config = example("field-encryption");
    config["max_body_bytes"] = json!(4096);
    config
}

/// The six layers in the README's order, with the corp provider's keys given inline.
fn layers() -> Vec<(&'static str, Value)> {
    layers_with(json!({"local_jwks": jwks()}))
}

fn layers_with(corp_keys: Value) -> Vec<(&'static str, Value)> {
    vec![
        ("security-headers", example("security-headers")),
        ("jwt-authn", jwt_config(corp_keys)),
        ("authz", authz_config()),
        ("rate-limit", rate_limit_config()),
        ("request-validation", validation_config()),
        ("field-encryption", encryption_config()),
    ]
}

fn bundle_config(layers: &[(&str, Value)]) -> String {
    let layers: Vec<Value> =
        layers.iter().map(|(filter, config)| json!({"filter": filter, "config": config})).collect();
    json!({ "layers": layers }).to_string()
}

fn with_env(mut builder: palisade_tests::host::PluginBuilder) -> palisade_tests::host::PluginBuilder {
    for (key, value) in env() {
        builder = builder.env(key, &value);
    }
    builder
}

/// The chain (separate filters, one host) and the bundle (another host), configured alike.
struct Twin {
    chain_host: Host,
    chain: Vec<Plugin>,
    bundle_host: Host,
    bundle: Plugin,
}

impl Twin {
    fn new(layers: &[(&str, Value)]) -> Self {
        let chain_host = Host::new();
        let bundle_host = Host::new();
        for host in [&chain_host, &bundle_host] {
            host.add_cluster("auth_jwks");
        }
        let chain = layers
            .iter()
            .map(|(filter, config)| {
                with_env(chain_host.plugin(filter).config(config.to_string()).vm_id("palisade")).load().unwrap()
            })
            .collect();
        let bundle =
            with_env(bundle_host.plugin("gateway").config(bundle_config(layers)).vm_id("palisade")).load().unwrap();
        Self { chain_host, chain, bundle_host, bundle }
    }

    fn send_chain(&self, request: Request) -> Exchange<'_> {
        let plugins: Vec<&Plugin> = self.chain.iter().collect();
        self.chain_host.chain(&plugins).send(request)
    }

    fn send_bundle(&self, request: Request) -> Exchange<'_> {
        self.bundle_host.chain(&[&self.bundle]).send(request)
    }

    /// Sends `request` through both (and `response`, if the upstream gets the request) and
    /// checks they agree; returns the chain's outcome.
    fn same(&self, case: &str, request: Request, response: Option<Response>) -> Outcome {
        let mut chain = self.send_chain(request.clone());
        let mut bundle = self.send_bundle(request);
        for exchange in [&mut chain, &mut bundle] {
            if let (Verdict::Forwarded, Some(response)) = (exchange.verdict(), &response) {
                exchange.respond(response.clone()).unwrap();
            }
        }
        let (chain, bundle) = (Outcome::of(&chain), Outcome::of(&bundle));
        chain.assert_same(&bundle, case);
        chain
    }

    fn assert_same_metrics(&self) {
        let mut differ = Vec::new();
        for name in metric_names() {
            let (chain, bundle) = (self.chain_host.metric(&name), self.bundle_host.metric(&name));
            if chain != bundle {
                differ.push(format!("{name}: chain {chain:?}, bundle {bundle:?}"));
            }
        }
        assert!(differ.is_empty(), "counters differ:\n{}", differ.join("\n"));
    }
}

/// What a client and the upstream saw of one exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    verdict: String,
    /// (status, details, body, headers) of a local reply.
    reply: Option<(u16, String, Vec<u8>, palisade_tests::host::Headers)>,
    upstream: Option<Received>,
    client: Option<Received>,
}

impl Outcome {
    fn of(exchange: &Exchange<'_>) -> Self {
        let verdict = match exchange.verdict() {
            Verdict::Forwarded => "forwarded".to_string(),
            Verdict::LocalReply(status) => format!("local reply {status}"),
            Verdict::Paused { stage, .. } => format!("paused in {stage:?}"),
            Verdict::Reset { .. } => "reset".to_string(),
            Verdict::Trapped { filter, message } => panic!("{filter} trapped: {message}"),
        };
        Self {
            verdict,
            reply: exchange.local_reply().map(|r| (r.status, r.details.clone(), r.body.clone(), r.headers.clone())),
            upstream: exchange.upstream().cloned(),
            client: exchange.client().cloned(),
        }
    }

    fn status(&self) -> u16 {
        self.client.as_ref().map_or(0, Received::status)
    }

    fn assert_same(&self, bundle: &Self, case: &str) {
        let mut chain = self.clone();
        let mut bundle = bundle.clone();
        // A request a body-phase local reply aborted: the test host may still hold the chain's
        // headers in a later filter's queue (it runs the earliest filter's events first), while
        // Envoy, like the bundle, has sent them upstream and then resets the upstream request.
        // What matters alike: no complete request reached the upstream.
        for outcome in [&mut chain, &mut bundle] {
            if outcome.reply.is_some() && outcome.upstream.as_ref().is_some_and(|u| !u.complete) {
                outcome.upstream = None;
            }
        }
        // Randomized encryption: equal shapes, different nonces. Decryption is compared apart.
        if let (Some(a), Some(b)) = (chain.upstream.as_mut(), bundle.upstream.as_mut()) {
            mask_randomized(&mut a.body, &mut b.body);
        }
        assert_eq!(chain.verdict, bundle.verdict, "{case}: verdict");
        assert_eq!(chain.reply, bundle.reply, "{case}: local reply");
        assert_eq!(chain.upstream, bundle.upstream, "{case}: what the upstream received");
        assert_eq!(chain.client, bundle.client, "{case}: what the client received");
    }
}

/// Where two JSON bodies differ only in ciphertexts of equal length (randomized mode), puts the
/// same placeholder in both.
fn mask_randomized(a: &mut Vec<u8>, b: &mut Vec<u8>) {
    let (Ok(mut x), Ok(mut y)) = (serde_json::from_slice::<Value>(a), serde_json::from_slice::<Value>(b)) else {
        return;
    };
    fn walk(x: &mut Value, y: &mut Value) {
        match (x, y) {
            (Value::Object(x), Value::Object(y)) => {
                for (key, value) in x.iter_mut() {
                    if let Some(other) = y.get_mut(key) {
                        walk(value, other);
                    }
                }
            }
            (Value::Array(x), Value::Array(y)) => x.iter_mut().zip(y.iter_mut()).for_each(|(x, y)| walk(x, y)),
            (Value::String(x), Value::String(y)) if x != y && x.len() == y.len() && x.len() > 40 => {
                *x = "<randomized>".into();
                *y = "<randomized>".into();
            }
            _ => {}
        }
    }
    walk(&mut x, &mut y);
    *a = serde_json::to_vec(&x).unwrap();
    *b = serde_json::to_vec(&y).unwrap();
}

/// Every counter the six filters define for these configs (names without `wasmcustom.`).
fn metric_names() -> Vec<String> {
    let mut names = Vec::new();
    let mut add = |prefix: &str, list: &[&str]| names.extend(list.iter().map(|n| format!("palisade.{prefix}.{n}")));
    add(
        "security_headers",
        &[
            "responses_decorated",
            "preflights_allowed",
            "preflights_denied",
            "cors_requests_allowed",
            "cors_requests_denied",
        ],
    );
    add(
        "jwt_authn",
        &["allowed", "denied", "cache_hits", "cache_misses", "waited_for_keys", "jwks_fetch_ok", "jwks_fetch_failed"],
    );
    add(
        "authz",
        &[
            "allowed",
            "denied",
            "unauthenticated",
            "invalid_path",
            "shadow_denied",
            "audited",
            "identity_malformed",
            "policy.block-admin.denied",
            "policy.open.allowed",
            "policy.internal.allowed",
            "policy.corp-users.allowed",
            "policy.audit-writes.audited",
        ],
    );
    add(
        "rate_limit",
        &[
            "allowed",
            "limited",
            "shadow_limited",
            "unlimited",
            "failed_open",
            "failed_closed",
            "cas_retries",
            "table_overflow",
            "store_errors",
            "identity_malformed",
        ],
    );
    add(
        "field_encryption",
        &[
            "fields_encrypted",
            "fields_decrypted",
            "fields_redacted",
            "decrypt_failed",
            "refused",
            "key.users-2026-06.encryptions",
            "identity_malformed",
        ],
    );
    const JWT_FAILURES: &[&str] = &[
        "token_missing",
        "token_malformed",
        "token_too_large",
        "alg_none",
        "alg_not_allowed",
        "alg_key_mismatch",
        "unknown_kid",
        "bad_signature",
        "token_expired",
        "token_not_yet_valid",
        "exp_missing",
        "lifetime_too_long",
        "issuer_mismatch",
        "audience_not_allowed",
        "subject_not_allowed",
        "api_key_invalid",
        "keys_unavailable",
        "no_matching_rule",
    ];
    for code in JWT_FAILURES {
        names.push(format!("palisade.jwt_authn.denied.{code}"));
    }
    const RULES: &[&str] = &[
        "method_not_allowed",
        "path_too_long",
        "query_too_long",
        "header_too_large",
        "too_many_headers",
        "body_too_large",
        "unsupported_content_type",
        "invalid_json",
        "json_limit",
        "invalid_multipart",
        "schema_violation",
        "sqli",
        "xss",
        "path_traversal",
        "crlf",
        "csrf_origin",
        "csrf_token",
    ];
    for rule in RULES {
        names.push(format!("palisade.request_validation.{rule}.rejected"));
        names.push(format!("palisade.request_validation.{rule}.shadow"));
    }
    names
}

fn now(host: &Host) -> u64 {
    host.now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn token(now: u64, claims: Value, key: &ES256KeyPair) -> String {
    let mut all = json!({"iss": ISSUER, "sub": "alice", "aud": "api.example.com", "iat": now - 10, "exp": now + 600,
                         "email": "alice@example.com", "azp": "web", "plan": "pro", "scope": "api",
                         "tenant_id": "acme"});
    all.as_object_mut().unwrap().extend(claims.as_object().unwrap().clone());
    let claims: JWTClaims<Map<String, Value>> = serde_json::from_value(all).unwrap();
    key.sign(claims).unwrap()
}

fn internal_token(now: u64) -> String {
    let claims: JWTClaims<Map<String, Value>> = serde_json::from_value(json!({
        "iss": INTERNAL, "sub": "batch-job", "iat": now - 10, "exp": now + 600
    }))
    .unwrap();
    HS256Key::from_bytes(HS256_SECRET).with_key_id("internal-1").authenticate(claims).unwrap()
}

fn client(request: Request) -> Request {
    request.property(&["source", "address"], CLIENT)
}

fn get(path: &str, token: &str) -> Request {
    client(Request::get(path).header("authorization", &format!("Bearer {token}")).header("origin", ORIGIN))
}

fn post_json(path: &str, token: &str, chunks: &[&str]) -> Request {
    let length = chunks.concat().len().to_string();
    client(
        Request::post(path)
            .header("authorization", &format!("Bearer {token}"))
            .header("content-type", "application/json")
            .header("content-length", &length)
            .body_chunks(chunks.iter().map(|c| c.as_bytes().to_vec())),
    )
}

fn ok_json(body: &str) -> Response {
    let middle = body.len() / 2;
    Response::ok().header("content-type", "application/json").body_chunks([&body[..middle], &body[middle..]])
}

#[test]
fn bundle_answers_every_request_as_the_chain_does() {
    let twin = Twin::new(&layers());
    let now = now(&twin.chain_host);
    assert_eq!(now, self::now(&twin.bundle_host));
    let good = token(now, json!({}), &keys().es256);
    let no_scope = token(now, json!({"scope": "other"}), &keys().es256);
    let expired = token(now - 7200, json!({}), &keys().es256);
    let forged = token(now, json!({}), &keys().stranger);
    let order = r#"{"customer": {"email": "bob@example.com", "name": "Bob"}, "items": [{"sku": "ABC-123", "qty": 2}]}"#;
    let user = r#"{"id": 7, "email": "ann@example.com", "name": "Ann"}"#;

    let cases: Vec<(&str, Request, Option<Response>, u16)> = vec![
        ("health check", client(Request::get("/healthz")), Some(Response::ok().body("ok")), 200),
        ("valid token", get("/api/orders/1", &good), Some(ok_json(r#"{"id": 1}"#)), 200),
        ("token missing", client(Request::get("/api/orders/1").header("origin", ORIGIN)), None, 401),
        ("token expired", get("/api/orders/1", &expired), None, 401),
        ("bad signature", get("/api/orders/1", &forged), None, 401),
        ("malformed token", get("/api/orders/1", "not.a.jwt"), None, 401),
        ("authz: denied path", get("/admin/users", &good), None, 403),
        ("authz: claim missing", get("/api/orders/1", &no_scope), None, 403),
        (
            "internal token",
            client(Request::get("/internal/jobs").header("x-internal-token", &internal_token(now))),
            Some(Response::ok()),
            200,
        ),
        ("public, no token", client(Request::get("/public/info")), Some(Response::ok().body("hi")), 200),
        (
            "valid order, chunked",
            post_json("/api/orders", &good, &[&order[..20], &order[20..50], &order[50..]]),
            Some(Response::status(201).body("{}")),
            201,
        ),
        ("invalid JSON body, chunked", post_json("/api/orders", &good, &["{\"customer\": ", "[1, 2"]), None, 400),
        (
            "schema violation",
            post_json("/api/orders", &good, &[r#"{"customer": {"email": "x@y.io"}, "items": []}"#]),
            None,
            400,
        ),
        ("SQL injection in the query", get("/api/orders?id=1'%20OR%20'1'%3D'1", &good), None, 400),
        (
            "XSS in the query (shadow)",
            get("/api/orders?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E", &good),
            Some(Response::ok()),
            200,
        ),
        (
            "CSRF: foreign origin",
            post_json("/api/orders", &good, &[order]).set_header("origin", "https://evil.example"),
            None,
            403,
        ),
        ("body too large", post_json("/api/orders", &good, &[&format!("[{}]", "1,".repeat(9000) + "1")]), None, 413),
        (
            "order with trailers",
            post_json("/api/orders", &good, &[&order[..30], &order[30..]]).trailer("x-checksum", "abc"),
            Some(Response::status(201)),
            201,
        ),
        (
            "CORS preflight",
            client(
                Request::new("OPTIONS", "/api/orders")
                    .header("origin", ORIGIN)
                    .header("access-control-request-method", "POST")
                    .header("access-control-request-headers", "content-type"),
            ),
            None,
            204,
        ),
        (
            "CORS preflight, foreign origin",
            client(
                Request::new("OPTIONS", "/api/orders")
                    .header("origin", "https://evil.example")
                    .header("access-control-request-method", "POST"),
            ),
            None,
            403,
        ),
        (
            "encrypted fields, chunked",
            post_json("/users", &good, &[&user[..10], &user[10..]]),
            Some(Response::status(201).header("content-type", "application/json").body(user)),
            201,
        ),
        ("encryption: body not JSON", post_json("/users", &good, &["email=a"]), None, 400),
        ("upstream error decorated", get("/api/orders/2", &good), Some(Response::status(502).body("bad gateway")), 502),
    ];
    for (case, request, response, status) in cases {
        let outcome = twin.same(case, request, response);
        assert_eq!(outcome.status(), status, "{case}: {outcome:?}");
    }

    // A body that trailers end is encrypted at the trailers, in both.
    let trailed = post_json("/users", &good, &[&user[..10], &user[10..]]).trailer("x-checksum", "abc");
    let outcome = twin.same("encrypted fields, chunked, trailers", trailed, Some(Response::status(201)));
    let upstream = outcome.upstream.expect("forwarded");
    let stored = String::from_utf8_lossy(&upstream.body);
    assert!(stored.contains("enc:") && !stored.contains("ann@example.com"), "{stored}");
    assert_eq!(upstream.trailers.get("x-checksum").as_deref(), Some("abc"));

    // Decorations reached local replies: the 401 carries security-headers' headers.
    let denied = twin.same("decorated 401", get("/api/x", "bad"), None);
    let headers = &denied.client.as_ref().unwrap().headers;
    assert!(headers.get("strict-transport-security").is_some(), "{headers:?}");
    assert_eq!(headers.get("access-control-allow-origin").as_deref(), Some(ORIGIN));

    // Rate limited after 3 logins from one client, in both.
    let login = || client(Request::post("/auth/login").header("content-type", "application/x-www-form-urlencoded"));
    let statuses: Vec<u16> =
        (0..5).map(|i| twin.same(&format!("login {i}"), login(), Some(Response::ok())).status()).collect();
    assert_eq!(statuses, [200, 200, 200, 429, 429]);

    twin.assert_same_metrics();
    // The metrics are not all zero: the comparison compares something.
    for name in [
        "palisade.jwt_authn.denied",
        "palisade.authz.denied",
        "palisade.rate_limit.limited",
        "palisade.security_headers.preflights_allowed",
        "palisade.field_encryption.fields_encrypted",
    ] {
        assert!(twin.bundle_host.metric(name).unwrap_or(0) > 0, "{name} is zero");
    }
}

#[test]
fn later_layers_take_the_identity_as_written_without_reading_filter_state() {
    let host = Host::new();
    host.add_cluster("auth_jwks");
    let load = |layers: &[(&str, Value)]| {
        with_env(host.plugin("gateway").config(bundle_config(layers)).vm_id("palisade")).load().unwrap()
    };
    let jwt = ("jwt-authn", jwt_config(json!({"local_jwks": jwks()})));
    let alone = load(std::slice::from_ref(&jwt));
    let with_authz = load(&[jwt, ("authz", authz_config())]);
    let token = token(now(&host), json!({}), &keys().es256);
    let cost = |plugin: &Plugin| {
        // The second request: the token is cached, as on a steady stream of requests.
        let mut last = None;
        for _ in 0..2 {
            let before = plugin.crossings();
            let exchange = host.chain(&[plugin]).send(get("/api/orders", &token));
            assert_eq!(exchange.verdict(), Verdict::Forwarded);
            drop(exchange);
            let after = plugin.crossings();
            last = Some((after.host_calls - before.host_calls, after.guest_calls - before.guest_calls));
        }
        last.unwrap()
    };
    let (alone, with_authz) = (cost(&alone), cost(&with_authz));
    // authz's host calls: the request's header map again (jwt-authn wrote it: the token out,
    // identity headers in), with the host's call into the allocator for its bytes, and two
    // counters (allowed, and policy corp-users' allowed). Its policies read the principal and
    // a claim, yet the identity costs no `get_property` (and no second allocation): reading
    // filter state made this (4, 2).
    assert_eq!((with_authz.0 - alone.0, with_authz.1 - alone.1), (3, 1), "{alone:?} -> {with_authz:?}");
    assert_eq!(host.metric("palisade.authz.policy.corp-users.allowed"), Some(2));
}

#[test]
fn encrypted_fields_decrypt_alike_through_both() {
    let twin = Twin::new(&layers());
    let good = token(now(&twin.chain_host), json!({"roles": ["pii-reader"], "tenant_id": "acme"}), &keys().es256);
    let user = r#"{"id": 7, "email": "ann@example.com", "name": "Ann"}"#;
    let stored_chain = twin.send_chain(post_json("/users", &good, &[user])).upstream().unwrap().body_text();
    let stored_bundle = twin.send_bundle(post_json("/users", &good, &[user])).upstream().unwrap().body_text();
    assert!(!stored_bundle.contains("ann@example.com") && !stored_bundle.contains("Ann"), "{stored_bundle}");
    // Each reads back what it stored, and the other's ciphertexts too (same keys).
    for stored in [&stored_chain, &stored_bundle] {
        let outcome = twin.same("read back", get("/users/7", &good), Some(ok_json(stored)));
        let shown: Value = serde_json::from_slice(&outcome.client.unwrap().body).unwrap();
        assert_eq!(shown, serde_json::from_str::<Value>(user).unwrap());
    }
    // A reader without the role sees the configured redactions, alike.
    let other = token(now(&twin.chain_host), json!({"roles": ["app"], "tenant_id": "acme"}), &keys().es256);
    let outcome = twin.same("redacted", get("/users/7", &other), Some(ok_json(&stored_chain)));
    let shown: Value = serde_json::from_slice(&outcome.client.unwrap().body).unwrap();
    assert_eq!(shown["name"], "[redacted]");
    twin.assert_same_metrics();
}

/// A request waiting for the remote JWKS resumes through the layers after jwt-authn in the
/// bundle too: here authz denies one resumed request and the other reaches the upstream.
#[test]
fn request_paused_for_remote_keys_resumes_through_the_later_layers() {
    let remote = json!({"remote_jwks": {
        "cluster": "auth_jwks", "path": "/.well-known/jwks.json", "authority": "auth.example.com",
        "timeout_ms": 3000, "refresh_interval_seconds": 600, "retry_seconds": 10, "wait_for_keys_ms": 3000
    }});
    let twin = Twin::new(&layers_with(remote));
    let jwt = &twin.chain[1];
    assert_eq!(jwt.http_calls().len(), 1, "the chain's jwt-authn fetches at configure");
    assert_eq!(twin.bundle.http_calls().len(), 1, "the bundle fetches at configure");
    assert_eq!(twin.bundle.tick_period(), jwt.tick_period());

    let now = now(&twin.chain_host);
    let good = get("/api/orders/1", &token(now, json!({}), &keys().es256));
    let no_scope = get("/api/orders/1", &token(now, json!({"scope": "other"}), &keys().es256));
    let mut exchanges = [
        (twin.send_chain(good.clone()), twin.send_bundle(good)),
        (twin.send_chain(no_scope.clone()), twin.send_bundle(no_scope)),
    ];
    for (chain, bundle) in &exchanges {
        assert!(matches!(chain.verdict(), Verdict::Paused { .. }), "{:?}", chain.verdict());
        assert!(matches!(bundle.verdict(), Verdict::Paused { .. }), "{:?}", bundle.verdict());
    }
    let reply = || HttpReply::ok().header("content-type", "application/json").body(jwks().to_string());
    jwt.answer_http_call(jwt.http_calls()[0].token, reply()).unwrap();
    twin.bundle.answer_http_call(twin.bundle.http_calls()[0].token, reply()).unwrap();
    let mut statuses = Vec::new();
    for (chain, bundle) in &mut exchanges {
        for exchange in [&mut *chain, &mut *bundle] {
            exchange.poll();
            if exchange.verdict() == Verdict::Forwarded {
                exchange.respond(Response::ok().body("{}")).unwrap();
            }
        }
        let (chain, bundle) = (Outcome::of(chain), Outcome::of(bundle));
        chain.assert_same(&bundle, "resumed");
        statuses.push(chain.status());
    }
    assert_eq!(statuses, [200, 403]);
    twin.assert_same_metrics();
    assert_eq!(twin.bundle_host.metric("palisade.jwt_authn.waited_for_keys"), Some(2));
}

#[test]
fn unknown_layer_or_bad_layer_config_is_rejected_naming_the_field() {
    let host = Host::new();
    let load = |config: String| with_env(host.plugin("gateway").config(config)).load();
    let err = load(r#"{"layers": [{"filter": "authz", "config": {}}, {"filter": "waf", "config": {}}]}"#.into())
        .err()
        .expect("unknown filter rejected");
    assert!(err.to_string().contains("layers[1].filter: unknown variant `waf`"), "{err}");

    let mut bad = layers();
    bad[2].1["policies"][0]["action"] = json!("MAYBE");
    let err = load(bundle_config(&bad)).err().expect("bad authz config rejected");
    assert!(err.to_string().contains("layers[2].config.policies[0].action"), "{err}");

    let mut bad = layers();
    bad[1].1["providers"]["corp"]["algorithms"] = json!(["none"]);
    let err = load(bundle_config(&bad)).err().expect("bad jwt config rejected");
    assert!(err.to_string().contains("layers[1].config.providers.corp.algorithms"), "{err}");

    for config in [r#"{"layers": []}"#, r#"{"layers": [{"filter": "authz"}], "extra": 1}"#, "", "[1]"] {
        assert!(load(config.to_string()).is_err(), "{config}");
    }
    // A missing secret is an error of the layer that needs it.
    let err = host.plugin("gateway").config(bundle_config(&layers())).load().err().expect("no env");
    assert!(err.to_string().contains("layers[1].config"), "{err}");
    // A layer without config gets an empty one, like a separate filter.
    assert!(load(r#"{"layers": [{"filter": "security-headers"}]}"#.into()).is_ok());
}

#[test]
fn hostile_traffic_never_traps_and_matches_the_chain() {
    let twin = Twin::new(&layers());
    let mut rng = traffic::Rng::new(11);
    for (i, request) in traffic::hostile_requests(10, 200).enumerate() {
        let response = traffic::hostile_response(&mut rng);
        twin.same(&format!("hostile request {i}: {request:?}"), request, Some(response));
    }
    twin.assert_same_metrics();
    traffic::assert_never_traps(&twin.bundle_host.chain(&[&twin.bundle]), 9, 300).unwrap();
}

#[test]
fn example_config_is_the_six_examples_and_loads() {
    let text = std::fs::read_to_string(format!("{}/../envoy-config/examples/gateway.json", env!("CARGO_MANIFEST_DIR")))
        .unwrap();
    let config: Value = serde_json::from_str(&text).unwrap();
    let names: Vec<&str> = config["layers"].as_array().unwrap().iter().map(|l| l["filter"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["security-headers", "jwt-authn", "authz", "rate-limit", "request-validation", "field-encryption"]
    );
    for layer in config["layers"].as_array().unwrap() {
        assert_eq!(layer["config"], example(layer["filter"].as_str().unwrap()), "{}", layer["filter"]);
    }
    let layers: Vec<(&str, Value)> = config["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["filter"].as_str().unwrap(), l["config"].clone()))
        .collect();
    let twin = Twin::new(&layers);
    // The example's remote JWKS provider fetches at configure, and asks for ticks.
    assert_eq!(twin.bundle.http_calls().len(), 1);
    assert_eq!(twin.bundle.tick_period(), twin.chain[1].tick_period());
    assert!(!twin.bundle.tick_period().is_zero());
    let health = Request::get("/healthz").header("x-forwarded-for", "198.51.100.4");
    let outcome = twin.same("example: health", client(health), Some(Response::ok()));
    assert_eq!(outcome.status(), 200, "{outcome:?}");
    let outcome = twin.same("example: no token", client(Request::get("/api/orders")), None);
    assert_eq!(outcome.status(), 401, "{outcome:?}");
}
