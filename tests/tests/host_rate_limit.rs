//! The rate-limit filter under the wasmtime host: two workers (two VMs with one vm_id) sharing
//! one shared-data store, 429 replies with their headers, tiers from jwt-authn's filter state,
//! config rejection, metrics, audit lines, and hostile traffic.
// Helpers outside `#[test]` fns unwrap too: a panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use palisade_tests::host::{traffic, Host, LogLevel, Plugin, Request, Response, Verdict};

const CONFIG: &str = r#"{
  "domain": "api", "hash_seed_env": "PALISADE_RATE_LIMIT_SEED", "trusted_proxies": 1,
  "headers": {"legacy": true, "on_allowed": true},
  "limits": {
    "minute": {"key": ["client_ip"], "rate": {"tokens": 5, "per": "1m"}},
    "hourly": {"key": ["subject"], "on_missing_key": {"fallback": ["client_ip"]},
               "rate": {"tokens": 100, "per": "1h"},
               "tiers": {"premium": {"tokens": 10000, "per": "1h"}}}
  },
  "routes": [
    {"match": {"path": {"prefix": "/api/"}}, "limits": ["minute"]},
    {"match": {"path": {"prefix": "/tiered/"}}, "limits": ["hourly"]}
  ]
}"#;

fn worker(host: &Host, config: &str) -> Plugin {
    host.plugin("rate-limit")
        .config(config)
        .vm_id("palisade")
        .env("PALISADE_RATE_LIMIT_SEED", "host-test")
        .load()
        .unwrap()
}

fn from(ip: &str, path: &str) -> Request {
    Request::get(path).header("x-forwarded-for", ip).property(&["source", "address"], "10.0.0.1:5555")
}

#[test]
fn two_workers_share_one_bucket_exactly() {
    let host = Host::new();
    let (a, b) = (worker(&host, CONFIG), worker(&host, CONFIG));
    let mut admitted = 0;
    for i in 0..20 {
        let plugin = if i % 2 == 0 { &a } else { &b };
        let mut exchange = plugin.send(from("192.0.2.1", "/api/items"));
        if exchange.verdict() == Verdict::Forwarded {
            admitted += 1;
            exchange.respond(Response::ok().body("ok")).unwrap();
            let client = exchange.client().unwrap();
            assert_eq!(client.status(), 200);
            // t: seconds until the bucket is full again, 12 s per token spent.
            let expected = format!("\"minute\";r={};t={}", 5 - admitted, 12 * admitted);
            assert_eq!(client.header("ratelimit"), Some(expected));
            assert_eq!(client.header("x-ratelimit-limit").as_deref(), Some("5"));
        }
    }
    assert_eq!(admitted, 5, "one bucket for both workers");
    assert_eq!(host.metric("palisade.rate_limit.allowed"), Some(5));
    assert_eq!(host.metric("palisade.rate_limit.limited"), Some(15));
    // Another client is not affected; after 12 s one more token is back.
    assert_eq!(a.send(from("192.0.2.2", "/api/items")).verdict(), Verdict::Forwarded);
    host.advance(Duration::from_secs(12));
    assert_eq!(b.send(from("192.0.2.1", "/api/items")).verdict(), Verdict::Forwarded);
    assert!(matches!(a.send(from("192.0.2.1", "/api/items")).verdict(), Verdict::LocalReply(_)));
}

#[test]
fn limited_requests_get_429_with_headers_json_and_audit() {
    let host = Host::new();
    let plugin = worker(&host, CONFIG);
    for _ in 0..5 {
        assert_eq!(plugin.send(from("192.0.2.3", "/api/x")).verdict(), Verdict::Forwarded);
    }
    host.advance(Duration::from_millis(1500));
    let exchange = plugin.send(
        from("192.0.2.3", "/api/x").header("x-request-id", "req-7").property(&["xds", "route_name"], "api-route"),
    );
    let reply = exchange.local_reply().unwrap();
    assert_eq!(reply.status, 429);
    assert_eq!(reply.details, "palisade_rate_limited");
    // 5 per minute: one token every 12 s, 1.5 s already elapsed: 10.5 s, rounded up.
    assert_eq!(reply.headers.get("retry-after").as_deref(), Some("11"));
    assert_eq!(reply.headers.get("ratelimit").as_deref(), Some(r#""minute";r=0;t=11"#));
    assert_eq!(reply.headers.get("ratelimit-policy").as_deref(), Some(r#""minute";q=5;w=60"#));
    assert_eq!(reply.headers.get("x-ratelimit-remaining").as_deref(), Some("0"));
    let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["error"], "rate_limited");
    assert!(plugin.logged(LogLevel::Info, r#""filter":"rate-limit","decision":"deny","reason":"rate_limited""#));
    assert!(plugin.logged(LogLevel::Info, r#""request_id":"req-7""#));
    // Deciding does not read the route name; the audit line does, with the peer's address.
    assert!(plugin.logged(LogLevel::Info, r#""route":"api-route""#));
    assert!(plugin.logged(LogLevel::Info, r#""source":"10.0.0.1""#));
    // Unmatched paths are not limited.
    assert_eq!(plugin.send(from("192.0.2.3", "/health")).verdict(), Verdict::Forwarded);
    assert_eq!(host.metric("palisade.rate_limit.unlimited"), Some(1));
}

#[test]
fn tables_are_created_at_configure_and_bounded() {
    let host = Host::new();
    let _plugin = worker(&host, CONFIG);
    // 4096 slots / 8 ways = 512 groups per limit, plus overflow buckets (1 and 2 rates).
    assert_eq!(host.shared_data("palisade", "palisade.rl.api.minute.0").map(|(v, _)| v), Some(Vec::new()));
    assert!(host.shared_data("palisade", "palisade.rl.api.minute.511").is_some());
    assert!(host.shared_data("palisade", "palisade.rl.api.minute.512").is_none());
    assert!(host.shared_data("palisade", "palisade.rl.api.hourly.overflow.1").is_some());
}

#[test]
fn tiers_come_from_the_identity_in_filter_state() {
    let host = Host::new();
    let plugin = worker(&host, CONFIG);
    let premium = r#"{"provider":"corp","subject":"zoe","tier":"premium","claims":{}}"#;
    let exchange = plugin.send(from("192.0.2.4", "/tiered/x").property(&["palisade.identity"], premium));
    assert_eq!(exchange.verdict(), Verdict::Forwarded);
    let mut exchange = plugin.send(from("192.0.2.4", "/tiered/x").property(&["palisade.identity"], premium));
    exchange.respond(Response::ok()).unwrap();
    let client = exchange.client().unwrap();
    assert_eq!(client.header("ratelimit-policy").as_deref(), Some(r#""hourly";q=10000;w=3600"#));
    assert_eq!(client.header("ratelimit").as_deref(), Some(r#""hourly";r=9998;t=1"#));
    // Without identity: the anonymous default rate, keyed by IP.
    let mut exchange = plugin.send(from("192.0.2.4", "/tiered/x"));
    exchange.respond(Response::ok()).unwrap();
    assert_eq!(exchange.client().unwrap().header("ratelimit").as_deref(), Some(r#""hourly";r=99;t=36"#));
    // A malformed identity is counted and treated as anonymous.
    let exchange = plugin.send(from("192.0.2.5", "/tiered/x").property(&["palisade.identity"], "not json"));
    assert_eq!(exchange.verdict(), Verdict::Forwarded);
    assert_eq!(host.metric("palisade.rate_limit.identity_malformed"), Some(1));
}

#[test]
fn identity_is_read_only_when_a_limit_needs_it_or_for_an_audit_line() {
    let host = Host::new();
    // Keyed by client IP, no tiers: deciding never needs the identity.
    let config = r#"{"domain": "ip", "hash_seed_env": "PALISADE_RATE_LIMIT_SEED",
        "limits": {"ip": {"key": ["client_ip"], "rate": {"tokens": 1, "per": "1h"}}},
        "routes": [{"match": {}, "limits": ["ip"]}]}"#;
    let plugin = worker(&host, config);
    let zoe = r#"{"provider":"corp","subject":"zoe","claims":{}}"#;
    // Allowed: a malformed identity is not even read, so not counted.
    let exchange = plugin.send(from("192.0.2.8", "/a").property(&["palisade.identity"], "not json"));
    assert_eq!(exchange.verdict(), Verdict::Forwarded);
    assert_eq!(host.metric("palisade.rate_limit.identity_malformed"), Some(0));
    // Limited: the audit line still names the caller from the identity.
    let exchange = plugin.send(from("192.0.2.8", "/a").property(&["palisade.identity"], zoe));
    assert_eq!(exchange.local_reply().unwrap().status, 429);
    assert!(plugin.logged(LogLevel::Info, r#""reason":"rate_limited""#));
    assert!(plugin.logged(LogLevel::Info, r#""principal":"zoe""#), "{:?}", plugin.logs());
    // With tiers, deciding reads it on every request.
    let tiered =
        config.replace(r#""per": "1h"}}}"#, r#""per": "1h"}, "tiers": {"gold": {"tokens": 5, "per": "1h"}}}}"#);
    let plugin = worker(&host, &tiered.replace(r#""domain": "ip""#, r#""domain": "tiered""#));
    let exchange = plugin.send(from("192.0.2.9", "/a").property(&["palisade.identity"], "not json"));
    assert_eq!(exchange.verdict(), Verdict::Forwarded);
    assert_eq!(host.metric("palisade.rate_limit.identity_malformed"), Some(1));
}

#[test]
fn shadow_mode_never_blocks() {
    let host = Host::new();
    let plugin = worker(&host, &CONFIG.replace(r#""domain": "api""#, r#""domain": "api", "shadow": true"#));
    for _ in 0..8 {
        assert_eq!(plugin.send(from("192.0.2.6", "/api/x")).verdict(), Verdict::Forwarded);
    }
    assert_eq!(host.metric("palisade.rate_limit.shadow_limited"), Some(3));
    assert!(plugin.logged(LogLevel::Info, r#""decision":"shadow_deny""#));
}

#[test]
fn bad_config_is_rejected_naming_the_field() {
    let host = Host::new();
    let bad = CONFIG.replace(r#""per": "1m""#, r#""per": "1 minute""#);
    let Err(err) = host.plugin("rate-limit").config(&bad).env("PALISADE_RATE_LIMIT_SEED", "host-test").load() else {
        panic!("a bad config must be rejected")
    };
    assert!(
        err.logs.iter().any(|e| e.message.contains("limits.minute.rate.per: must be a whole number of s, m, h or d")),
        "{:?}",
        err.logs
    );
    // The hash seed comes from the VM environment: a missing variable is a config error.
    let Err(err) = host.plugin("rate-limit").config(CONFIG).load() else { panic!("no seed must be rejected") };
    assert!(
        err.logs.iter().any(|e| e.message
            == "palisade rate-limit: invalid configuration: hash_seed_env: environment variable PALISADE_RATE_LIMIT_SEED is not set"),
        "{:?}",
        err.logs
    );
}

#[test]
fn hostile_traffic_never_traps() {
    let host = Host::new();
    let plugin = worker(&host, CONFIG);
    traffic::assert_never_traps(&host.chain(&[&plugin]), 4, 300).unwrap();
}
