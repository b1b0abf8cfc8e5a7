//! The gateway bundle against the chain of the six separate filters on one real Envoy: two
//! listeners (`chain`: six wasm filters; `bundle`: dist/gateway.wasm with the same per-layer
//! configs), the same requests to both, the same responses and upstream views, and the same
//! increase of every `wasmcustom.palisade.*` counter (each listener's run measured apart, since
//! Envoy sums counters of the same name).

// Helpers outside `#[test]` fns unwrap too: a panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jwt_simple::prelude::*;
use palisade_tests::e2e::{
    client, Cluster, EchoServer, Envoy, EnvoyConfig, Listener, PathMatch, Request, Response, Route, WasmFilter,
};
use serde_json::{json, Map, Value};

const ISSUER: &str = "https://auth.example.com";
const HS256_SECRET: &[u8] = b"palisade-gateway-e2e-test-hs256-secret!!";
const ORIGIN: &str = "https://app.example.com";

fn env() -> Vec<(&'static str, String)> {
    vec![
        ("PALISADE_JWT_HS256_SECRET", URL_SAFE_NO_PAD.encode(HS256_SECRET)),
        ("PALISADE_FE_USERS_2026_01", "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=".into()),
        ("PALISADE_FE_USERS_2026_06", "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=".into()),
        ("PALISADE_RATE_LIMIT_SEED", "e2e-gateway-seed".into()),
    ]
}

fn example(name: &str) -> Value {
    let path = format!("{}/../envoy-config/examples/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn jwks(key: &ES256KeyPair) -> Value {
    let mut jwk: Value = serde_json::from_str(&key.public_key().to_jwk()).unwrap();
    jwk["kid"] = json!("ec-1");
    json!({"keys": [jwk]})
}

fn layers(key: &ES256KeyPair) -> Vec<(&'static str, Value)> {
    layers_with(json!({"local_jwks": jwks(key)}))
}

fn layers_with(corp_keys: Value) -> Vec<(&'static str, Value)> {
    let mut corp = json!({"issuer": ISSUER, "audiences": ["api.example.com"], "algorithms": ["ES256"],
                          "claim_to_headers": [{"claim": "email", "header": "x-user-email"}]});
    corp.as_object_mut().unwrap().extend(corp_keys.as_object().unwrap().clone());
    let jwt = json!({
        "providers": {
            "corp": corp,
            "internal": {"issuer": "https://internal.example.com", "algorithms": ["HS256"],
                         "hmac_secret": {"env": "PALISADE_JWT_HS256_SECRET", "encoding": "base64url"},
                         "from_headers": [{"name": "x-internal-token"}]}
        },
        "rules": [
            {"match": {"path": {"prefix": "/healthz"}}, "requires": "none"},
            {"match": {"path": {"prefix": "/auth/"}}, "requires": "none"},
            {"match": {"path": {"prefix": "/"}}, "requires": {"provider": "corp"}}
        ],
        "bypass_cors_preflight": true,
        "identity_headers": true
    });
    let authz = json!({
        "default_action": "deny",
        "policies": [
            {"name": "block-admin", "action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin/*"]}}]}]},
            {"name": "open", "action": "ALLOW", "rules": [{"to": [{"operation": {"paths": ["/healthz", "/auth/*"]}}]}]},
            {"name": "corp", "action": "ALLOW",
             "rules": [{"from": [{"source": {"requestPrincipals": ["https://auth.example.com/*"]}}]}]}
        ]
    });
    let mut rate_limit = example("rate-limit");
    rate_limit["trusted_proxies"] = json!(0);
    rate_limit["limits"]["login"]["rate"] = json!({"tokens": 3, "per": "1h"});
    let mut validation = example("request-validation");
    validation["routes"][0]["csrf"] = json!({"allowed_origins": ["https://shop.example.com"]});
    vec![
        ("security-headers", example("security-headers")),
        ("jwt-authn", jwt),
        ("authz", authz),
        ("rate-limit", rate_limit),
        ("request-validation", validation),
        ("field-encryption", example("field-encryption")),
    ]
}

fn with_env(mut filter: WasmFilter) -> WasmFilter {
    for (key, value) in env() {
        filter = filter.env(key, &value);
    }
    filter
}

fn config(echo: &EchoServer, layers: &[(&str, Value)]) -> EnvoyConfig {
    listeners(EnvoyConfig::new().cluster(Cluster::new("echo", echo.addr())), layers)
}

/// The `chain` and `bundle` listeners, both routing to the cluster `echo`.
fn listeners(config: EnvoyConfig, layers: &[(&str, Value)]) -> EnvoyConfig {
    let mut chain = Listener::new("chain");
    for (filter, config) in layers {
        chain = chain.filter(with_env(WasmFilter::palisade(filter, &config.to_string()).unwrap()));
    }
    let bundle_config = json!({
        "layers": layers.iter().map(|(filter, config)| json!({"filter": filter, "config": config})).collect::<Vec<_>>()
    });
    let bundle = Listener::new("bundle")
        .filter(with_env(WasmFilter::palisade("gateway", &bundle_config.to_string()).unwrap().vm_id("gateway")));
    config
        .listener(chain.route(Route::to_cluster("default", PathMatch::prefix("/"), "echo")))
        .listener(bundle.route(Route::to_cluster("default", PathMatch::prefix("/"), "echo")))
}

fn token(key: &ES256KeyPair, extra: Value) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let mut claims = json!({"iss": ISSUER, "sub": "alice", "aud": "api.example.com", "iat": now - 10,
                            "exp": now + 3600, "email": "alice@example.com", "tenant_id": "acme"});
    claims.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let claims: JWTClaims<Map<String, Value>> = serde_json::from_value(claims).unwrap();
    key.sign(claims).unwrap()
}

/// Headers that differ between any two requests (time, ids, the listener's own timing).
const VOLATILE: &[&str] = &["date", "x-envoy-upstream-service-time", "x-request-id", "content-length"];

/// A response with volatile headers dropped and an echoed request parsed, ciphertexts of
/// randomized fields masked.
fn normalized(response: &Response) -> Value {
    let headers: Vec<(String, String)> = response
        .headers
        .iter()
        .filter(|(name, _)| !VOLATILE.contains(&name.to_ascii_lowercase().as_str()))
        .map(|(name, value)| (name.clone(), if refills(name) { "<refilling>".to_string() } else { value.clone() }))
        .collect();
    let body = match response.echoed() {
        Ok(echoed) => {
            let seen: Vec<(String, String)> = echoed
                .headers
                .iter()
                .filter(|(name, _)| !VOLATILE.contains(&name.to_ascii_lowercase().as_str()))
                .cloned()
                .collect();
            let body = echoed.body.as_deref().map(|b| serde_json::from_str::<Value>(b).map(mask).unwrap_or(b.into()));
            json!({"method": echoed.method, "path": echoed.path, "headers": seen, "body": body})
        }
        // A 429 tells when to retry: seconds that depend on when the request came.
        Err(_) if response.status == 429 => {
            response.json().map(zero_numbers).unwrap_or_else(|_| json!(response.text()))
        }
        Err(_) => json!(response.text()),
    };
    json!({"status": response.status, "headers": headers, "body": body})
}

/// Rate-limit headers whose values follow the bucket's refill (the two listeners' requests come
/// at different instants); their presence is still compared.
fn refills(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    matches!(
        name.as_str(),
        "ratelimit" | "ratelimit-reset" | "x-ratelimit-remaining" | "x-ratelimit-reset" | "retry-after"
    )
}

fn zero_numbers(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, zero_numbers(v))).collect()),
        Value::Number(_) => json!(0),
        other => other,
    }
}

/// Long strings that are not plain text (ciphertexts) become a placeholder.
fn mask(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, mask(v))).collect()),
        Value::Array(items) => Value::Array(items.into_iter().map(mask).collect()),
        Value::String(s) if s.len() > 40 && !s.contains(' ') => Value::String(format!("<ciphertext of {}>", s.len())),
        other => other,
    }
}

fn palisade_counters(envoy: &Envoy) -> BTreeMap<String, u64> {
    envoy
        .stats()
        .unwrap()
        .with_prefix("wasmcustom.palisade.")
        .filter_map(|(name, value)| Some((name.to_string(), value.parse().ok()?)))
        .collect()
}

fn increase(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(name, value)| (name.clone(), value - before.get(name).copied().unwrap_or(0)))
        .filter(|(_, delta)| *delta > 0)
        .collect()
}

#[test]
fn bundle_and_chain_answer_alike_on_real_envoy() {
    let key = ES256KeyPair::generate().with_key_id("ec-1");
    let echo = EchoServer::start().unwrap();
    let envoy = Envoy::start("e2e_gateway", &config(&echo, &layers(&key))).unwrap();
    let good = format!("Bearer {}", token(&key, json!({})));
    let order = r#"{"customer": {"email": "bob@example.com"}, "items": [{"sku": "ABC-123", "qty": 2}]}"#;
    let user = r#"{"id": 7, "email": "ann@example.com", "name": "Ann"}"#;
    let json_post = |path: &str, body: &str| {
        Request::post(path, body).header("authorization", &good).header("content-type", "application/json")
    };
    let pause = Duration::from_millis(20);
    let cases: Vec<(&str, Request, u16)> = vec![
        ("health", Request::get("/healthz"), 200),
        ("token missing", Request::get("/api/orders/1").header("origin", ORIGIN), 401),
        ("bad token", Request::get("/api/orders/1").header("authorization", "Bearer a.b.c"), 401),
        ("valid token", Request::get("/api/orders/1").header("authorization", &good).header("origin", ORIGIN), 200),
        ("authz denies", Request::get("/admin/users").header("authorization", &good), 403),
        ("valid order, chunked", json_post("/api/orders", "").chunked([&order[..25], &order[25..]], pause), 200),
        ("invalid JSON, chunked", json_post("/api/orders", "").chunked(["{\"customer\": ", "[1,"], pause), 400),
        ("SQL injection", Request::get("/api/orders?id=1'%20OR%20'1'%3D'1").header("authorization", &good), 400),
        (
            "CORS preflight",
            Request::new("OPTIONS", "/api/orders")
                .header("origin", ORIGIN)
                .header("access-control-request-method", "POST"),
            204,
        ),
        ("encrypted fields, chunked", json_post("/users", "").chunked([&user[..12], &user[12..]], pause), 200),
        ("login 1", Request::post("/auth/login", ""), 200),
        ("login 2", Request::post("/auth/login", ""), 200),
        ("login 3", Request::post("/auth/login", ""), 200),
        ("login 4: limited", Request::post("/auth/login", ""), 429),
    ];

    let mut seen: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    let mut counted = Vec::new();
    for listener in ["chain", "bundle"] {
        let before = palisade_counters(&envoy);
        let responses: Vec<Value> = cases
            .iter()
            .map(|(case, request, status)| {
                let response = envoy.send_to(listener, request).unwrap();
                assert_eq!(response.status, *status, "{listener}: {case}: {}", response.text());
                normalized(&response)
            })
            .collect();
        seen.insert(listener, responses);
        counted.push(increase(&before, &palisade_counters(&envoy)));
    }
    for (i, (case, _, _)) in cases.iter().enumerate() {
        assert_eq!(seen["chain"][i], seen["bundle"][i], "{case}");
    }
    // What the echo saw of the encrypted request: ciphertexts, never the plaintext.
    let stored = &seen["bundle"][9]["body"]["body"];
    assert!(stored["email"].as_str().unwrap().starts_with("<ciphertext"), "{stored}");
    assert_eq!(counted[0], counted[1], "counter increases: chain vs bundle");
    for name in [
        "wasmcustom.palisade.jwt_authn.denied",
        "wasmcustom.palisade.authz.denied",
        "wasmcustom.palisade.rate_limit.limited",
        "wasmcustom.palisade.field_encryption.fields_encrypted",
        "wasmcustom.palisade.security_headers.preflights_allowed",
    ] {
        assert!(counted[1].get(name).copied().unwrap_or(0) > 0, "{name}: {:?}", counted[1]);
    }
}

/// A JWKS server that holds every request until released: requests the filters get meanwhile
/// wait for the keys. Serves on its own thread until dropped.
struct HeldJwks {
    addr: SocketAddr,
    release: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl HeldJwks {
    fn start(jwks: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (release, stop) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        let (held, stopped) = (release.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stopped.load(Ordering::SeqCst) {
                let Ok((mut stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let (held, stopped, jwks) = (held.clone(), stopped.clone(), jwks.clone());
                std::thread::spawn(move || {
                    stream.set_nonblocking(false).unwrap();
                    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    while !held.load(Ordering::SeqCst) && !stopped.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        jwks.len()
                    );
                    let _ = stream.write_all(head.as_bytes());
                    let _ = stream.write_all(jwks.as_bytes());
                });
            }
        });
        Self { addr, release, stop }
    }
}

impl Drop for HeldJwks {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Requests waiting for a remote JWKS resume through the layers after jwt-authn, on real Envoy:
/// the one authz then denies is denied by both, the other reaches the upstream through both.
#[test]
fn requests_waiting_for_remote_keys_resume_through_the_later_layers() {
    let key = ES256KeyPair::generate().with_key_id("ec-1");
    let echo = EchoServer::start().unwrap();
    let jwks = HeldJwks::start(jwks(&key).to_string());
    let remote = json!({"remote_jwks": {
        "cluster": "auth_jwks", "path": "/.well-known/jwks.json", "authority": "auth.example.com",
        "timeout_ms": 20000, "wait_for_keys_ms": 20000
    }});
    let config = listeners(
        EnvoyConfig::new().cluster(Cluster::new("echo", echo.addr())).cluster(Cluster::new("auth_jwks", jwks.addr)),
        &layers_with(remote),
    );
    let envoy = Envoy::start("e2e_gateway_resume", &config).unwrap();
    let good = format!("Bearer {}", token(&key, json!({})));
    let requests = [
        ("allowed", Request::get("/api/orders/1").header("authorization", &good), 200),
        ("denied by authz", Request::get("/admin/users").header("authorization", &good), 403),
    ];
    let seen: Vec<(String, Value)> = std::thread::scope(|scope| {
        let mut waiting = Vec::new();
        for listener in ["chain", "bundle"] {
            let addr = envoy.listener_addr(listener).unwrap();
            for (case, request, _) in &requests {
                let request = request.clone().timeout(Duration::from_secs(30));
                waiting.push((format!("{listener}: {case}"), scope.spawn(move || client::send(addr, &request))));
            }
        }
        let name = "wasmcustom.palisade.jwt_authn.waited_for_keys";
        assert_eq!(envoy.wait_for_counter(name, 4, Duration::from_secs(20)).unwrap(), Some(4), "{}", envoy.log());
        jwks.release.store(true, Ordering::SeqCst);
        waiting.into_iter().map(|(case, thread)| (case, normalized(&thread.join().unwrap().unwrap()))).collect()
    });
    for (i, (case, _, status)) in requests.iter().enumerate() {
        let (chain, bundle) = (&seen[i].1, &seen[i + requests.len()].1);
        assert_eq!(chain["status"], json!(status), "{case}: {chain}");
        assert_eq!(chain, bundle, "{case}");
    }
}
