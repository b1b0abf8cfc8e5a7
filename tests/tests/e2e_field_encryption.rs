//! field-encryption on a real Envoy (1 worker), after jwt-authn: the echo upstream never sees a
//! configured field in plaintext (it reports what it received), the client gets the fields back
//! decrypted when its token allows and redacted when not (the echo's `x-echo-raw: 1` plays an
//! upstream returning stored ciphertexts), chunked uploads, refusals with JSON bodies that never
//! complete an upstream request, record binding, and the counters on `/stats`.

// Helpers outside `#[test]` fns unwrap too: a panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use palisade_tests::e2e::{
    Cluster, EchoServer, Envoy, EnvoyConfig, Listener, PathMatch, Request, Response, Route, WasmFilter,
};
use serde_json::{json, Value};

const K1: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="; // 32 x 0x01
const K2: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI="; // 32 x 0x02
const SECRET: &[u8] = b"palisade-fe-e2e-test-hs256-secret!!!";

const JWT: &str = r#"{
  "providers": {"internal": {
    "issuer": "https://internal.example.com", "algorithms": ["HS256"],
    "hmac_secret": {"env": "PALISADE_JWT_HS256_SECRET", "encoding": "base64url", "kid": "internal-1"}}},
  "rules": [{"match": {"path": {"prefix": "/"}}, "requires": {"provider": "internal"}}]
}"#;

/// The README's example, plus an `/accounts` route whose `owner` is bound to its record id.
fn encryption_config() -> String {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../envoy-config/examples/field-encryption.json"))
            .unwrap();
    let mut config: Value = serde_json::from_str(&text).unwrap();
    config["max_body_bytes"] = 4096.into();
    config["fields"]["account.owner"] = json!({"readers": [{"claim": "roles", "any_of": ["pii-reader"]}],
                                              "undecryptable": {"marker": "[undecryptable]"}});
    let routes = config["routes"].as_array_mut().unwrap();
    routes.push(json!({
        "match": {"path": {"prefix": "/accounts"}, "methods": ["POST"]},
        "encrypt": [{"path": "/accounts/*/owner", "field": "account.owner", "record": "1/id"}]
    }));
    routes.push(json!({
        "match": {"path": {"prefix": "/accounts"}, "methods": ["GET"]},
        "decrypt": [{"path": "/accounts/*/owner", "field": "account.owner", "record": "1/id"}]
    }));
    config.to_string()
}

/// An HS256 token for the `internal` provider with these claims, valid for ten minutes.
fn bearer(claims: Value) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let mut claims = claims;
    claims["iss"] = "https://internal.example.com".into();
    claims["sub"] = "alice".into();
    claims["exp"] = (now + 600).into();
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT","kid":"internal-1"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signature = URL_SAFE_NO_PAD.encode(hmac_sha256(format!("{header}.{payload}").as_bytes()));
    format!("Bearer {header}.{payload}.{signature}")
}

/// HMAC-SHA256 with `SECRET` by the `openssl` CLI, so the tests crate needs no crypto dependency.
fn hmac_sha256(message: &[u8]) -> Vec<u8> {
    let key: String = SECRET.iter().map(|b| format!("{b:02x}")).collect();
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-mac", "HMAC", "-macopt", &format!("hexkey:{key}"), "-binary"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl is installed");
    child.stdin.take().unwrap().write_all(message).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success() && output.stdout.len() == 32, "openssl dgst failed");
    output.stdout
}

fn writer() -> String {
    bearer(json!({"tenant_id": "acme", "roles": ["app"]}))
}

fn reader() -> String {
    bearer(json!({"tenant_id": "acme", "roles": ["pii-reader"]}))
}

/// The body the echo upstream received, as JSON text.
fn upstream_body(response: &Response) -> String {
    assert_eq!(response.status, 200, "{}", response.text());
    response.echoed().unwrap().body.expect("a UTF-8 body reached the upstream")
}

/// Sends `body` to be echoed back verbatim: the upstream answers with stored ciphertexts.
fn echoed_back(envoy: &Envoy, method: &str, path: &str, body: &str, token: &str) -> Value {
    let request = Request::new(method, path)
        .header("authorization", token)
        .header("x-echo-raw", "1")
        .header("content-type", "application/json")
        .body(body);
    let response = envoy.send(&request).unwrap();
    assert_eq!(response.status, 200, "never 5xx: {}", response.text());
    response.json().unwrap()
}

fn assert_refused(response: &Response, status: u16, code: &str) {
    assert_eq!(response.status, status, "{}", response.text());
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(response.json().unwrap()["error"], code, "{}", response.text());
}

/// jwt-authn then field-encryption in front of the echo upstream.
fn listener() -> Listener {
    Listener::new("main")
        .filter(
            WasmFilter::palisade("jwt-authn", JWT)
                .unwrap()
                .env("PALISADE_JWT_HS256_SECRET", &URL_SAFE_NO_PAD.encode(SECRET)),
        )
        .filter(
            WasmFilter::palisade("field-encryption", &encryption_config())
                .unwrap()
                .env("PALISADE_FE_USERS_2026_01", K1)
                .env("PALISADE_FE_USERS_2026_06", K2),
        )
        .route(Route::to_cluster("default", PathMatch::prefix("/"), "echo"))
}

#[test]
fn fields_are_encrypted_before_the_upstream_and_decrypted_for_readers_only() {
    let echo = EchoServer::start().unwrap();
    let config = EnvoyConfig::new().concurrency(1).cluster(Cluster::new("echo", echo.addr())).listener(listener());
    let envoy = Envoy::start("field_encryption_end_to_end", &config).unwrap();
    let user_text =
        r#"{"id": 7, "email": "alice@example.com", "name": {"first": "Alice", "n": 12345678901234567890123}}"#;
    let user: Value = serde_json::from_str(user_text).unwrap();

    // 1. The upstream receives ciphertexts only; the rest of the body byte for byte.
    let response = envoy
        .send(
            &Request::post("/users", user_text)
                .header("authorization", &writer())
                .header("content-type", "application/json"),
        )
        .unwrap();
    let stored_text = upstream_body(&response);
    for secret in ["alice@example.com", "Alice", "12345678901234567890123"] {
        assert!(!stored_text.contains(secret), "{secret} reached the upstream: {stored_text}");
    }
    assert!(stored_text.starts_with(r#"{"id": 7, "email": "enc:d1:users-2026-06:"#), "{stored_text}");
    assert!(stored_text.contains(r#", "name": "enc:v1:users-2026-06:"#), "{stored_text}");
    let echoed = response.echoed().unwrap();
    assert_eq!(echoed.header("content-length"), None, "the stale length was dropped");
    let stored: Value = serde_json::from_str(&stored_text).unwrap();

    // 2. Chunked upload: encrypted whole, forwarded whole.
    let chunks: Vec<Vec<u8>> = user_text.as_bytes().chunks(9).map(<[u8]>::to_vec).collect();
    let request = Request::new("POST", "/users")
        .header("authorization", &writer())
        .header("content-type", "application/json")
        .chunked(chunks, Duration::from_millis(10));
    let chunked = upstream_body(&envoy.send(&request).unwrap());
    let chunked: Value = serde_json::from_str(&chunked).unwrap();
    assert_eq!(chunked["email"], stored["email"], "deterministic: the same ciphertext");
    assert_ne!(chunked["name"], stored["name"], "randomized: a new nonce");
    assert!(!chunked.to_string().contains("Alice"));

    // 3. The upstream returns the stored record: readers see it, others do not.
    let listing = json!({"users": [stored.clone(), chunked]}).to_string();
    let shown = echoed_back(&envoy, "GET", "/users", &listing, &reader());
    assert_eq!(shown["users"][0]["email"], "alice@example.com");
    assert_eq!(shown["users"][1]["name"], user["name"]);
    // Exact digits come back: the decrypted JSON text is spliced in as it was sent.
    let raw = envoy
        .send(
            &Request::new("GET", "/users/7")
                .header("authorization", &reader())
                .header("x-echo-raw", "1")
                .body(stored_text.clone()),
        )
        .unwrap();
    assert_eq!(raw.text(), user_text);
    // The stale length was dropped: Envoy sends the new body chunked, or with its own length.
    assert!(raw.header("content-length").is_none_or(|n| n == user_text.len().to_string()));
    let scoped = bearer(json!({"tenant_id": "acme", "scope": "openid users:pii"}));
    let cases = [
        (writer(), json!(null), json!("[redacted]")),
        (bearer(json!({"tenant_id": "acme", "roles": ["support"]})), json!("alice@example.com"), json!("[redacted]")),
        (scoped, json!(null), user["name"].clone()),
        (
            bearer(json!({"tenant_id": "globex", "roles": ["pii-reader"]})),
            json!("[undecryptable]"),
            json!("[undecryptable]"),
        ),
    ];
    for (token, email, name) in cases {
        let shown = echoed_back(&envoy, "GET", "/users/7", &stored_text, &token);
        assert_eq!((&shown["email"], &shown["name"]), (&email, &name));
        assert_eq!(shown["id"], 7);
    }

    // 4. Tampered and swapped values: markers, 200, counted.
    let email = stored["email"].as_str().unwrap();
    let at = "enc:d1:users-2026-06:".len() + 3;
    let tampered = format!("{}{}{}", &email[..at], if &email[at..=at] == "Q" { "R" } else { "Q" }, &email[at + 1..]);
    let forged = json!({"id": 7, "email": tampered, "name": stored["email"]}).to_string();
    let shown = echoed_back(&envoy, "GET", "/users/7", &forged, &reader());
    assert_eq!(shown, json!({"id": 7, "email": "[undecryptable]", "name": "[undecryptable]"}));

    // 5. Refusals: JSON bodies, and no upstream request completes.
    let before = envoy.stats().unwrap().counter("cluster.echo.upstream_rq_200").unwrap_or(0);
    let bad = |body: &str| Request::post("/users", body.to_string()).header("authorization", &writer());
    assert_refused(&envoy.send(&bad(r#"{"email": "a@x.io", "name": "#)).unwrap(), 400, "invalid_json");
    assert_refused(&envoy.send(&bad(r#"{"name": "Plain Name"}"#)).unwrap(), 400, "missing_field");
    let big = format!(r#"{{"email": "a@x.io", "name": "{}"}}"#, "x".repeat(5000));
    let chunks: Vec<Vec<u8>> = big.as_bytes().chunks(1000).map(<[u8]>::to_vec).collect();
    let oversized =
        Request::new("POST", "/users").header("authorization", &writer()).chunked(chunks, Duration::from_millis(5));
    assert_refused(&envoy.send(&oversized).unwrap(), 413, "body_too_large");
    let no_tenant = Request::post("/users", r#"{"email": "a@x.io", "name": "N"}"#)
        .header("authorization", &bearer(json!({"roles": ["app"]})));
    assert_refused(&envoy.send(&no_tenant).unwrap(), 403, "encryption_context_missing");
    let stats = envoy.stats().unwrap();
    assert_eq!(
        stats.counter("cluster.echo.upstream_rq_200").unwrap_or(0),
        before,
        "a refused body never completed upstream"
    );

    // 6. Record binding: an owner copied to another account does not decrypt.
    let accounts = r#"{"accounts": [{"id": "a-1", "owner": "Alice"}, {"id": "a-2", "owner": "Bob"}]}"#;
    let request = Request::post("/accounts", accounts).header("authorization", &writer());
    let sealed: Value = serde_json::from_str(&upstream_body(&envoy.send(&request).unwrap())).unwrap();
    assert!(!sealed.to_string().contains("Alice") && !sealed.to_string().contains("Bob"));
    let swapped = json!({"accounts": [
        {"id": "a-1", "owner": sealed["accounts"][0]["owner"]},
        {"id": "a-2", "owner": sealed["accounts"][0]["owner"]},
    ]});
    let shown = echoed_back(&envoy, "GET", "/accounts", &swapped.to_string(), &reader());
    assert_eq!(shown["accounts"], json!([{"id": "a-1", "owner": "Alice"}, {"id": "a-2", "owner": "[undecryptable]"}]));
    let orphan = Request::post("/accounts", r#"{"accounts": [{"owner": "Carol"}]}"#).header("authorization", &writer());
    assert_refused(&envoy.send(&orphan).unwrap(), 400, "record_id_missing");

    // 7. The counters on /stats.
    let stats = envoy.stats().unwrap();
    let counter = |name: &str| stats.wasmcustom(&format!("palisade.field_encryption.{name}")).unwrap_or(0);
    assert_eq!(
        counter("fields_encrypted"),
        2 + 2 + 2,
        "{:?}",
        stats.with_prefix("wasmcustom.palisade.field_encryption").collect::<Vec<_>>()
    );
    assert_eq!(counter("fields_decrypted"), 4 + 2 + 1 + 1 + 1);
    assert_eq!(counter("fields_redacted"), 2 + 1 + 1);
    assert_eq!(counter("decrypt_failed.authentication_failed"), 2 + 2 + 1);
    assert_eq!(counter("decrypt_failed"), 5);
    for code in ["invalid_json", "missing_field", "body_too_large", "encryption_context_missing", "record_id_missing"] {
        assert_eq!(counter(&format!("refused.{code}")), 1, "{code}");
    }
    assert_eq!(counter("refused"), 5);
    assert_eq!(counter("key.users-2026-06.encryptions"), 6);
    // Audit lines reach Envoy's log without values.
    let log = envoy.log();
    assert!(log.contains(r#""reason":"decrypt_authentication_failed""#), "no audit line in the log");
    assert!(!log.contains("alice@example.com") && !log.contains("Plain Name"), "a value reached the log");
}

#[test]
fn a_body_followed_by_trailers_reaches_the_upstream_encrypted() {
    // With trailers enabled, Envoy ends a chunked body with the trailers callback rather than
    // an end-of-stream body chunk.
    let echo = EchoServer::start().unwrap();
    let listener = listener().hcm_field("http_protocol_options", json!({"enable_trailers": true}));
    let config = EnvoyConfig::new().concurrency(1).cluster(Cluster::new("echo", echo.addr())).listener(listener);
    let envoy = Envoy::start("field_encryption_trailers", &config).unwrap();
    let user_text = r#"{"id": 7, "email": "alice@example.com", "name": "Alice"}"#;
    let request = Request::new("POST", "/users")
        .header("authorization", &writer())
        .header("content-type", "application/json")
        .chunked(user_text.as_bytes().chunks(9).map(<[u8]>::to_vec).collect::<Vec<_>>(), Duration::from_millis(10))
        .trailer("x-checksum", "abc");
    let stored = upstream_body(&envoy.send(&request).unwrap());
    for secret in ["alice@example.com", "Alice"] {
        assert!(!stored.contains(secret), "{secret} reached the upstream: {stored}");
    }
    assert!(stored.starts_with(r#"{"id": 7, "email": "enc:d1:users-2026-06:"#), "{stored}");
    // A body too large for the filter is refused before the trailers, as without them.
    let big = format!(r#"{{"id": 1, "email": "{}"}}"#, "a".repeat(5000));
    let request = Request::new("POST", "/users")
        .header("authorization", &writer())
        .header("content-type", "application/json")
        .chunked(big.as_bytes().chunks(2000).map(<[u8]>::to_vec).collect::<Vec<_>>(), Duration::from_millis(10))
        .trailer("x-checksum", "abc");
    assert_refused(&envoy.send(&request).unwrap(), 413, "body_too_large");
    let stats = envoy.stats().unwrap();
    assert_eq!(stats.wasmcustom("palisade.field_encryption.fields_encrypted"), Some(2));
    assert_eq!(stats.wasmcustom("palisade.field_encryption.refused.body_too_large"), Some(1));
}

#[test]
fn coded_bodies_are_refused_and_uncoded_responses_asked_for() {
    let echo = EchoServer::start().unwrap();
    let config = EnvoyConfig::new().concurrency(1).cluster(Cluster::new("echo", echo.addr())).listener(listener());
    let envoy = Envoy::start("field_encryption_content_coding", &config).unwrap();
    // A gzip body hides its fields: refused, never forwarded (the upstream might inflate it).
    let gzip = Request::new("POST", "/users")
        .header("authorization", &writer())
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(vec![0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03]);
    assert_refused(&envoy.send(&gzip).unwrap(), 415, "unsupported_content_encoding");
    // A decrypting route asks the upstream for a response it can read.
    let get = Request::get("/users/7").header("authorization", &reader()).header("accept-encoding", "gzip, br");
    let response = envoy.send(&get).unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.echoed().unwrap().header("accept-encoding"), None);
    let stats = envoy.stats().unwrap();
    assert_eq!(stats.wasmcustom("palisade.field_encryption.refused.unsupported_content_encoding"), Some(1));
    assert_eq!(stats.counter("cluster.echo.upstream_rq_total"), Some(1));
}
