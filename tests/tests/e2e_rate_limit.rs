//! The rate-limit filter on a real Envoy with two workers and concurrent clients: for a limit of
//! N per hour (a long window, so refill cannot interfere) exactly N requests per key are
//! admitted, whichever worker serves them; the same traffic through Envoy's native
//! `local_ratelimit` (one bucket shared by the workers) in the same run, for comparison; the
//! 429's headers and body; the `wasmcustom.palisade.rate_limit.*` counters.

// Helpers outside `#[test]` fns unwrap too: a panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Barrier;

use palisade_tests::e2e::client;
use palisade_tests::e2e::{
    Cluster, EchoServer, Envoy, EnvoyConfig, HttpFilter, Listener, PathMatch, Request, Route, WasmFilter,
};
use serde_json::json;

/// Tokens per hour, per key (Palisade) and for the one shared bucket (native).
const LIMIT: usize = 12;
const THREADS: usize = 6;
/// Requests per thread to each listener.
const PER_THREAD: usize = 10;
const KEYS: [&str; 2] = ["alpha", "beta"];

fn palisade_config() -> String {
    json!({
        "domain": "e2e",
        "hash_seed_env": "PALISADE_RATE_LIMIT_SEED",
        "headers": {"ietf": true, "legacy": true},
        "limits": {"hourly": {"key": [{"header": "x-client"}], "rate": {"tokens": LIMIT, "per": "1h"}}},
        "routes": [{"match": {"path": {"prefix": "/"}}, "limits": ["hourly"]}]
    })
    .to_string()
}

fn native_config() -> serde_json::Value {
    let percent =
        |key: &str| json!({"runtime_key": key, "default_value": {"numerator": 100, "denominator": "HUNDRED"}});
    json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
        "stat_prefix": "native_rl",
        "token_bucket": {"max_tokens": LIMIT, "tokens_per_fill": LIMIT, "fill_interval": "3600s"},
        "filter_enabled": percent("native_rl.enabled"),
        "filter_enforced": percent("native_rl.enforced"),
        "local_rate_limit_per_downstream_connection": false
    })
}

fn config(echo: &EchoServer) -> EnvoyConfig {
    EnvoyConfig::new()
        .concurrency(2)
        .cluster(Cluster::new("echo", echo.addr()))
        .listener(
            Listener::new("palisade")
                .filter(
                    WasmFilter::palisade("rate-limit", &palisade_config())
                        .unwrap()
                        .env("PALISADE_RATE_LIMIT_SEED", "e2e-rate-limit-seed-0123456789abcdef"),
                )
                .route(Route::to_cluster("default", PathMatch::prefix("/"), "echo")),
        )
        .listener(
            Listener::new("native")
                .filter(HttpFilter::native("envoy.filters.http.local_ratelimit", native_config()))
                .route(Route::to_cluster("default", PathMatch::prefix("/"), "echo")),
        )
}

/// What one client thread saw: per listener and key, the statuses of its requests.
type Seen = BTreeMap<(&'static str, &'static str), Vec<u16>>;

/// Each thread alternates keys and listeners; every request is a new connection, so the
/// kernel spreads them over both workers' listen sockets. The barrier starts each round in
/// every thread at once, so workers race for the same bucket.
fn client_thread(thread: usize, palisade: SocketAddr, native: SocketAddr, barrier: &Barrier) -> Seen {
    let mut seen = Seen::new();
    for i in 0..PER_THREAD {
        barrier.wait();
        let key = KEYS[(thread + i) % KEYS.len()];
        for (listener, addr) in [("palisade", palisade), ("native", native)] {
            let request = Request::get(&format!("/items/{thread}/{i}")).header("x-client", key);
            let response = client::send(addr, &request).unwrap();
            seen.entry((listener, key)).or_default().push(response.status);
        }
    }
    seen
}

#[test]
fn two_workers_admit_exactly_the_limit_like_envoys_shared_bucket() {
    let echo = EchoServer::start().unwrap();
    let envoy = Envoy::start("two_workers_admit_exactly_the_limit", &config(&echo)).unwrap();
    let palisade = envoy.listener_addr("palisade").unwrap();
    let native = envoy.listener_addr("native").unwrap();

    let barrier = Barrier::new(THREADS);
    let barrier = &barrier;
    let seen: Vec<Seen> = std::thread::scope(|scope| {
        let handles: Vec<_> =
            (0..THREADS).map(|t| scope.spawn(move || client_thread(t, palisade, native, barrier))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut total = Seen::new();
    for part in seen {
        for (k, statuses) in part {
            total.entry(k).or_default().extend(statuses);
        }
    }
    let count = |listener: &'static str, key: &'static str, status: u16| {
        total.get(&(listener, key)).map_or(0, |s| s.iter().filter(|&&x| x == status).count())
    };
    let sent_per_key = THREADS * PER_THREAD / KEYS.len();
    for key in KEYS {
        let (ok, limited) = (count("palisade", key, 200), count("palisade", key, 429));
        eprintln!("palisade rate-limit, key {key}: {ok} admitted, {limited} limited of {sent_per_key}");
        assert_eq!((ok, limited), (LIMIT, sent_per_key - LIMIT), "palisade, key {key}: {total:?}");
    }
    let native_ok: usize = KEYS.iter().map(|k| count("native", k, 200)).sum();
    let native_limited: usize = KEYS.iter().map(|k| count("native", k, 429)).sum();
    eprintln!(
        "native local_ratelimit (one bucket): {native_ok} admitted, {native_limited} limited of {}",
        2 * sent_per_key
    );
    // Envoy documents the token bucket as shared by all workers when
    // local_rate_limit_per_downstream_connection is false.
    assert_eq!((native_ok, native_limited), (LIMIT, 2 * sent_per_key - LIMIT), "native: {total:?}");

    let stats = envoy.stats().unwrap();
    // Both workers served connections, so both VMs took tokens from the same buckets.
    let per_worker: Vec<u64> = (0..2)
        .map(|w| {
            stats
                .with_prefix("listener.")
                .filter(|(name, _)| name.ends_with(&format!(".worker_{w}.downstream_cx_total")))
                .filter_map(|(_, v)| v.parse::<u64>().ok())
                .sum()
        })
        .collect();
    eprintln!("downstream connections per worker: {per_worker:?}");
    assert!(per_worker.iter().all(|&n| n > 0), "one worker took every connection: {per_worker:?}");
    let admitted = (LIMIT * KEYS.len()) as u64;
    let limited = (THREADS * PER_THREAD) as u64 - admitted;
    assert_eq!(stats.wasmcustom("palisade.rate_limit.allowed"), Some(admitted));
    assert_eq!(stats.wasmcustom("palisade.rate_limit.limited"), Some(limited));
    eprintln!("palisade CAS retries: {:?}", stats.wasmcustom("palisade.rate_limit.cas_retries"));
    for name in ["cas_exhausted", "failed_closed", "failed_open", "store_errors", "refunds_lost", "table_overflow"] {
        assert_eq!(stats.wasmcustom(&format!("palisade.rate_limit.{name}")), Some(0), "{name}");
    }
    assert_eq!(stats.counter("native_rl.http_local_rate_limit.ok"), Some(LIMIT as u64));
    assert_eq!(stats.counter("native_rl.http_local_rate_limit.rate_limited"), Some(native_limited as u64));
}

#[test]
fn limited_requests_get_429_with_ratelimit_headers_and_json() {
    let echo = EchoServer::start().unwrap();
    let envoy = Envoy::start("limited_requests_get_429_with_headers", &config(&echo)).unwrap();
    let send = |key: &str| envoy.send_to("palisade", &Request::get("/items").header("x-client", key)).unwrap();
    for _ in 0..LIMIT {
        let response = send("gamma");
        assert_eq!(response.status, 200);
        assert_eq!(response.echoed().unwrap().path, "/items");
    }
    let response = send("gamma");
    assert_eq!(response.status, 429, "{}", response.text());
    assert_eq!(response.header("content-type"), Some("application/json"));
    let body = response.json().unwrap();
    assert_eq!(body["error"], "rate_limited", "{body}");
    // One token every 3600 / 12 = 300 s; a few seconds may have passed since the first request.
    let retry_after: u64 = response.header("retry-after").unwrap().parse().unwrap();
    assert!((290..=300).contains(&retry_after), "retry-after {retry_after}");
    assert_eq!(response.header("ratelimit"), Some(format!("\"hourly\";r=0;t={retry_after}").as_str()));
    assert_eq!(response.header("ratelimit-policy"), Some(format!("\"hourly\";q={LIMIT};w=3600").as_str()));
    assert_eq!(response.header("x-ratelimit-limit"), Some(LIMIT.to_string().as_str()));
    assert_eq!(response.header("x-ratelimit-remaining"), Some("0"));
    // Another key is unaffected.
    assert_eq!(send("delta").status, 200);
    let stats = envoy.stats().unwrap();
    assert_eq!(stats.wasmcustom("palisade.rate_limit.allowed"), Some(LIMIT as u64 + 1));
    assert_eq!(stats.wasmcustom("palisade.rate_limit.limited"), Some(1));
    assert_eq!(stats.counter("http.palisade.downstream_rq_4xx"), Some(1));
}

/// A `client_ip` limit keyed from `X-Forwarded-For` (one trusted proxy: the rightmost entry):
/// an IPv6 client is its /64, so rotating addresses inside it gains nothing, and an
/// IPv4-mapped IPv6 address is the IPv4 client it maps.
#[test]
fn client_ip_keys_are_networks_not_addresses() {
    let echo = EchoServer::start().unwrap();
    let palisade = json!({
        "domain": "e2e-ip",
        "hash_seed_env": "PALISADE_RATE_LIMIT_SEED",
        "trusted_proxies": 1,
        "limits": {"per-client": {"key": ["client_ip"], "rate": {"tokens": 2, "per": "1h"}}},
        "routes": [{"match": {"path": {"prefix": "/"}}, "limits": ["per-client"]}]
    });
    let config = EnvoyConfig::new().cluster(Cluster::new("echo", echo.addr())).listener(
        Listener::new("palisade")
            .filter(
                WasmFilter::palisade("rate-limit", &palisade.to_string())
                    .unwrap()
                    .env("PALISADE_RATE_LIMIT_SEED", "e2e-rate-limit-seed-0123456789abcdef"),
            )
            .route(Route::to_cluster("default", PathMatch::prefix("/"), "echo")),
    );
    let envoy = Envoy::start("client_ip_keys_are_networks", &config).unwrap();
    let from = |client: &str| {
        let forwarded = format!("198.18.0.1, {client}");
        envoy.send_to("palisade", &Request::get("/").header("x-forwarded-for", &forwarded)).unwrap().status
    };
    let statuses: Vec<u16> =
        ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3", "2001:db8:1:3::1"].map(from).into();
    assert_eq!(statuses, [200, 200, 429, 200], "a third address of one /64 is the same client");
    let statuses: Vec<u16> = ["198.51.100.7", "198.51.100.8", "::ffff:198.51.100.7", "198.51.100.7"].map(from).into();
    assert_eq!(statuses, [200, 200, 200, 429], "::ffff:198.51.100.7 spends 198.51.100.7's tokens");
    let stats = envoy.stats().unwrap();
    assert_eq!(stats.wasmcustom("palisade.rate_limit.allowed"), Some(6));
    assert_eq!(stats.wasmcustom("palisade.rate_limit.limited"), Some(2));
}
