//! field-encryption through the wasmtime test host: chunked bodies, refusals, tampered
//! responses, hostile traffic.
// Helpers outside `#[test]` fns unwrap too: a panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use palisade_tests::host::traffic::assert_never_traps;
use palisade_tests::host::{Host, Plugin, Request, Response, Verdict};

const K1: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="; // 32 x 0x01
const K2: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI="; // 32 x 0x02

fn plugin(host: &Host) -> Plugin {
    let config =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../envoy-config/examples/field-encryption.json"))
            .unwrap()
            .replace("262144", "4096");
    host.plugin("field-encryption")
        .config(config)
        .env("PALISADE_FE_USERS_2026_01", K1)
        .env("PALISADE_FE_USERS_2026_06", K2)
        .load()
        .unwrap()
}

fn identity(roles: &[&str], tenant: &str) -> String {
    serde_json::json!({"provider": "corp", "subject": "alice", "claims": {"roles": roles, "tenant_id": tenant}})
        .to_string()
}

fn post(body_chunks: &[&str], who: &str) -> Request {
    Request::post("/users")
        .header("content-type", "application/json")
        .header("content-length", &body_chunks.concat().len().to_string())
        .property(&["palisade.identity"], who)
        .body_chunks(body_chunks.iter().map(|c| c.as_bytes().to_vec()))
}

#[test]
fn chunked_request_is_encrypted_and_response_decrypted_for_readers_only() {
    let host = Host::new();
    let plugin = plugin(&host);
    let reader = identity(&["pii-reader"], "acme");
    let mut exchange =
        plugin.send(post(&[r#"{"id":7,"email":"alice@exa"#, r#"mple.com","name":"Alice","n":1}"#], &reader));
    assert_eq!(exchange.verdict(), Verdict::Forwarded);
    let upstream = exchange.upstream().unwrap().clone();
    let stored = upstream.body_text();
    assert!(!stored.contains("alice@example.com") && !stored.contains("Alice"), "{stored}");
    assert!(stored.contains("\"email\":\"enc:d1:users-2026-06:"), "{stored}");
    assert_eq!(upstream.header("content-length"), None);
    // The upstream echoes what it stored.
    exchange.respond(Response::ok().header("content-length", &stored.len().to_string()).body(&stored)).unwrap();
    let client = exchange.client().unwrap();
    let shown: serde_json::Value = serde_json::from_slice(&client.body).unwrap();
    assert_eq!(shown, serde_json::json!({"id":7,"email":"alice@example.com","name":"Alice","n":1}));
    assert_eq!(client.header("content-length"), None);
    assert_eq!(host.metric("palisade.field_encryption.fields_encrypted"), Some(2));
    assert_eq!(host.metric("palisade.field_encryption.fields_decrypted"), Some(2));

    // Another caller of the same tenant without the role; then a reader of another tenant.
    let listing = format!("{{\"users\":[{stored}]}}");
    for (who, email, name) in [
        (identity(&["support"], "acme"), serde_json::json!("alice@example.com"), serde_json::json!("[redacted]")),
        (identity(&["pii-reader"], "evil"), serde_json::json!("[undecryptable]"), serde_json::json!("[undecryptable]")),
    ] {
        let mut exchange = plugin.send(Request::get("/users").property(&["palisade.identity"], who.as_str()));
        exchange.respond(Response::ok().body_chunks([&listing[..10], &listing[10..]])).unwrap();
        let shown: serde_json::Value = serde_json::from_slice(&exchange.client().unwrap().body).unwrap();
        assert_eq!(shown["users"][0]["email"], email);
        assert_eq!(shown["users"][0]["name"], name);
    }
    assert_eq!(host.metric("palisade.field_encryption.decrypt_failed.authentication_failed"), Some(2));
}

#[test]
fn bad_requests_are_refused_and_never_forwarded() {
    let host = Host::new();
    let plugin = plugin(&host);
    let who = identity(&[], "acme");
    let big = format!("{{\"email\":\"a\",\"name\":\"{}\"}}", "x".repeat(5000));
    let cases = [
        (vec!["{\"email\": \"a\""], 400, "invalid_json"),
        (vec!["{\"name\": \"n\"}"], 400, "missing_field"),
        (vec![&big[..3000], &big[3000..]], 413, "body_too_large"),
    ];
    for (chunks, status, code) in cases {
        let exchange = plugin.send(post(&chunks, &who));
        assert_eq!(exchange.verdict(), Verdict::LocalReply(status), "{code}");
        let client = exchange.client().unwrap();
        assert!(client.body_text().contains(code), "{}", client.body_text());
        let upstream_body = exchange.upstream().map(|u| u.body_text()).unwrap_or_default();
        assert!(upstream_body.is_empty(), "forwarded: {upstream_body}");
    }
    // No identity: the tenant context is missing.
    let exchange = plugin.send(Request::post("/users").body("{\"email\":\"a\",\"name\":\"b\"}"));
    assert_eq!(exchange.verdict(), Verdict::LocalReply(403));
    assert_eq!(host.metric("palisade.field_encryption.refused"), Some(4));
}

#[test]
fn hostile_traffic_never_traps() {
    let host = Host::new();
    let plugin = plugin(&host);
    let chain = host.chain(&[&plugin]);
    assert_never_traps(&chain, 6, 400).unwrap();
}
