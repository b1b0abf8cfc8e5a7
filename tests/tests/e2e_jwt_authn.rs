//! jwt-authn on a real Envoy, side by side with Envoy's native `envoy.filters.http.jwt_authn`
//! configured alike (same issuer, audiences, inline JWKS, rules) on a second listener of the
//! same Envoy: every token gets the same decision from both. Then a remote JWKS served by a
//! direct-response route of a second listener, fetched by the filter's root context.
//!
//! Intended differences (also in the README, "Differences from Envoy's `jwt_authn`"):
//! - `WWW-Authenticate` realm: Envoy sends the request URL, Palisade the host (or `realm`);
//!   both send `error="invalid_token"` exactly when a token was present and invalid.
//! - A token longer than `max_token_bytes` (8 KiB by default) is a 401 `token_too_large`;
//!   Envoy verifies it and lets it pass.
//! - Array claims reach headers joined with `,`; Envoy does not forward arrays.
//! - A 403 (audience or subject not allowed) has no `WWW-Authenticate`; Envoy sends one with
//!   `error="invalid_token"`.
// Helpers outside `#[test]` fns unwrap too: a panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::net::TcpListener;
use std::time::{SystemTime, UNIX_EPOCH};

use jwt_simple::prelude::*;
use palisade_tests::e2e::{
    Cluster, EchoServer, Envoy, EnvoyConfig, HttpFilter, Listener, PathMatch, Request, Response, Route, WasmFilter,
};
use serde_json::{json, Map, Value};

const ISSUER: &str = "https://auth.example.com";
const INTERNAL: &str = "https://internal.example.com";
const SECRET_VAR: &str = "PALISADE_JWT_HS256_SECRET";
const SECRET: &[u8; 64] = b"palisade-e2e-hmac-secret-0123456789abcdefghijklmnopqrstuvwxyz!!!";
const JWKS_PATH: &str = "/.well-known/jwks.json";

struct Keys {
    rsa: RS256KeyPair,
    es256: ES256KeyPair,
    ed: Ed25519KeyPair,
    stranger: ES256KeyPair,
}

impl Keys {
    fn new() -> Self {
        Keys {
            rsa: RS256KeyPair::generate(2048).unwrap().with_key_id("rsa-1"),
            es256: ES256KeyPair::generate().with_key_id("ec-1"),
            ed: Ed25519KeyPair::generate().with_key_id("ed-1"),
            stranger: ES256KeyPair::generate().with_key_id("ec-1"),
        }
    }

    fn jwks(&self) -> Value {
        let jwk = |json: String, kid: &str, alg: &str| {
            let mut value: Value = serde_json::from_str(&json).unwrap();
            value["kid"] = json!(kid);
            value["alg"] = json!(alg);
            value
        };
        json!({"keys": [
            jwk(self.rsa.public_key().to_jwk(), "rsa-1", "RS256"),
            jwk(self.es256.public_key().to_jwk(), "ec-1", "ES256"),
            jwk(self.ed.public_key().to_jwk(), "ed-1", "EdDSA"),
        ]})
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn claims_of(value: Value) -> JWTClaims<Map<String, Value>> {
    serde_json::from_value(value).unwrap()
}

fn claims() -> Value {
    let now = now();
    json!({"iss": ISSUER, "sub": "alice", "aud": ["api"], "iat": now - 10, "exp": now + 3600,
           "realm_access": {"roles": ["admin", "ops"]}})
}

fn with(key: &str, value: Value) -> Value {
    let mut c = claims();
    match value {
        Value::Null => drop(c.as_object_mut().unwrap().remove(key)),
        value => c[key] = value,
    }
    c
}

fn b64(bytes: &[u8]) -> String {
    Base64UrlSafeNoPadding::encode_to_string(bytes).unwrap()
}

/// The filter's config: provider `corp` (inline JWKS) and `internal` (HS256 from the env).
fn palisade_config(jwks: &Value) -> String {
    json!({
        "providers": {
            "corp": {"issuer": ISSUER, "audiences": ["api"], "algorithms": ["RS256", "ES256", "EdDSA"],
                     "local_jwks": jwks,
                     "claim_to_headers": [{"claim": "sub", "header": "x-sub"},
                                          {"claim": "realm_access.roles", "header": "x-roles"}]},
            "internal": {"issuer": INTERNAL, "algorithms": ["HS256"],
                         "hmac_secret": {"env": SECRET_VAR, "encoding": "raw"}}
        },
        "rules": [
            {"match": {"path": {"prefix": "/healthz"}}, "requires": "none"},
            {"match": {"path": {"prefix": "/internal/"}}, "requires": {"provider": "internal"}},
            {"match": {"path": {"prefix": "/"}}, "requires": {"provider": "corp"}}
        ]
    })
    .to_string()
}

/// Envoy's native filter configured alike (the HMAC key as an inline `oct` JWK: Envoy has no
/// other way to take it).
fn native_config(jwks: &Value) -> Value {
    let oct = json!({"keys": [{"kty": "oct", "alg": "HS256", "k": b64(SECRET)}]});
    json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
        "providers": {
            "corp": {"issuer": ISSUER, "audiences": ["api"], "require_expiration": true,
                     "local_jwks": {"inline_string": jwks.to_string()},
                     "claim_to_headers": [{"header_name": "x-sub", "claim_name": "sub"}]},
            "internal": {"issuer": INTERNAL, "require_expiration": true,
                         "local_jwks": {"inline_string": oct.to_string()},
                         "from_headers": [{"name": "authorization", "value_prefix": "Bearer "}]}
        },
        "rules": [
            {"match": {"prefix": "/healthz"}},
            {"match": {"prefix": "/internal/"}, "requires": {"provider_name": "internal"}},
            {"match": {"prefix": "/"}, "requires": {"provider_name": "corp"}}
        ]
    })
}

/// One worker running the filter alone with `config` (the HMAC secret in its environment), in
/// front of `echo`.
fn start_alone(name: &str, echo: &EchoServer, config: &Value) -> Envoy {
    let envoy_config = EnvoyConfig::new().concurrency(1).cluster(Cluster::new("echo", echo.addr())).listener(
        Listener::new("main")
            .filter(
                WasmFilter::palisade("jwt-authn", &config.to_string())
                    .unwrap()
                    .env(SECRET_VAR, std::str::from_utf8(SECRET).unwrap()),
            )
            .route(Route::to_cluster("default", PathMatch::prefix("/"), "echo")),
    );
    Envoy::start(name, &envoy_config).unwrap()
}

fn bearer(path: &str, token: &str) -> Request {
    Request::get(path).header("authorization", &format!("Bearer {token}"))
}

fn invalid_token(response: &Response) -> bool {
    response.header("www-authenticate").is_some_and(|v| v.contains(r#"error="invalid_token""#))
}

#[test]
fn decisions_match_envoys_native_jwt_authn() {
    let keys = Keys::new();
    let jwks = keys.jwks();
    let echo = EchoServer::start().unwrap();
    let config = EnvoyConfig::new()
        .concurrency(1)
        .cluster(Cluster::new("echo", echo.addr()))
        .listener(
            Listener::new("palisade")
                .filter(
                    WasmFilter::palisade("jwt-authn", &palisade_config(&jwks))
                        .unwrap()
                        .env(SECRET_VAR, std::str::from_utf8(SECRET).unwrap()),
                )
                .route(Route::to_cluster("default", PathMatch::prefix("/"), "echo")),
        )
        .listener(
            Listener::new("native")
                .filter(HttpFilter::native("envoy.filters.http.jwt_authn", native_config(&jwks)))
                .route(Route::to_cluster("default", PathMatch::prefix("/"), "echo")),
        );
    let envoy = Envoy::start("decisions_match_envoys_native_jwt_authn", &config).unwrap();

    let good = keys.es256.sign(claims_of(claims())).unwrap();
    let parts: Vec<&str> = good.split('.').collect();
    let rsa_pem = keys.rsa.public_key().to_pem().unwrap();
    let hs = |c: Value| HS256Key::from_bytes(SECRET).authenticate(claims_of(c)).unwrap();
    let now = now();
    // (name, path, token, expected status)
    let cases: Vec<(&str, &str, Option<String>, u16)> = vec![
        ("ES256", "/api/items", Some(good.clone()), 200),
        ("RS256", "/api/items", Some(keys.rsa.sign(claims_of(claims())).unwrap()), 200),
        ("EdDSA", "/api/items", Some(keys.ed.sign(claims_of(claims())).unwrap()), 200),
        ("no auth route", "/healthz", None, 200),
        ("missing", "/api/items", None, 401),
        ("expired", "/api/items", Some(keys.es256.sign(claims_of(with("exp", json!(now - 3600)))).unwrap()), 401),
        ("not yet valid", "/api/items", Some(keys.es256.sign(claims_of(with("nbf", json!(now + 3600)))).unwrap()), 401),
        ("no exp", "/api/items", Some(keys.es256.sign(claims_of(with("exp", Value::Null))).unwrap()), 401),
        (
            "wrong issuer",
            "/api/items",
            Some(keys.es256.sign(claims_of(with("iss", json!("https://evil.example.com")))).unwrap()),
            401,
        ),
        ("wrong audience", "/api/items", Some(keys.es256.sign(claims_of(with("aud", json!(["web"])))).unwrap()), 403),
        ("bad signature", "/api/items", Some(keys.stranger.sign(claims_of(claims())).unwrap()), 401),
        (
            "unknown kid",
            "/api/items",
            Some(ES256KeyPair::generate().with_key_id("ghost").sign(claims_of(claims())).unwrap()),
            401,
        ),
        ("alg none", "/api/items", Some(format!("{}.{}.", b64(br#"{"alg":"none","typ":"JWT"}"#), parts[1])), 401),
        (
            "HS256 signed with the RSA public key",
            "/api/items",
            Some(
                HS256Key::from_bytes(rsa_pem.as_bytes())
                    .with_key_id("rsa-1")
                    .authenticate(claims_of(claims()))
                    .unwrap(),
            ),
            401,
        ),
        (
            "RS256 naming the EC key",
            "/api/items",
            Some(keys.rsa.clone().with_key_id("ec-1").sign(claims_of(claims())).unwrap()),
            401,
        ),
        ("truncated", "/api/items", Some(good[..good.len() / 2].to_string()), 401),
        ("not a JWT", "/api/items", Some("not-a-jwt".into()), 401),
        ("non-JSON payload", "/api/items", Some(format!("{}.{}.{}", parts[0], b64(b"not json"), parts[2])), 401),
        ("HS256 internal", "/internal/jobs", Some(hs(json!({"iss": INTERNAL, "sub": "job", "exp": now + 60}))), 200),
        ("HS256 expired", "/internal/jobs", Some(hs(json!({"iss": INTERNAL, "exp": now - 3600}))), 401),
        (
            "HS256 other secret",
            "/internal/jobs",
            Some(
                HS256Key::from_bytes(&[7u8; 64])
                    .authenticate(claims_of(json!({"iss": INTERNAL, "exp": now + 60})))
                    .unwrap(),
            ),
            401,
        ),
        ("ES256 on the HS256 route", "/internal/jobs", Some(good.clone()), 401),
    ];

    for (name, path, token, expected) in &cases {
        let request = match token {
            Some(token) => bearer(path, token),
            None => Request::get(path),
        };
        let ours = envoy.send_to("palisade", &request).unwrap();
        let native = envoy.send_to("native", &request).unwrap();
        assert_eq!(native.status, *expected, "{name}: native decision: {}", native.text());
        assert_eq!(ours.status, native.status, "{name}: palisade {} vs native {}", ours.text(), native.text());
        if ours.status == 403 {
            // Envoy adds `WWW-Authenticate: ... error="invalid_token"` to its 403; the filter sends none.
            assert_eq!(ours.header("www-authenticate"), None, "{name}");
        } else {
            let shown = ours.header("www-authenticate");
            assert_eq!(invalid_token(&ours), invalid_token(&native), "{name}: {shown:?}");
        }
        match ours.status {
            200 => {
                let (a, b) = (ours.echoed().unwrap(), native.echoed().unwrap());
                assert_eq!(a.header("authorization"), None, "{name}: token stripped");
                assert_eq!(b.header("authorization"), None, "{name}: native strips it too");
                assert_eq!(a.header("x-sub"), b.header("x-sub"), "{name}");
            }
            401 => {
                let body = ours.json().unwrap();
                assert_eq!(body["error"], "unauthorized", "{name}");
                assert!(ours.header("www-authenticate").is_some(), "{name}");
                if let Some(token) = token {
                    for part in token.split('.').filter(|p| p.len() > 8) {
                        assert!(!ours.text().contains(part), "{name}: body echoes the token");
                    }
                }
            }
            _ => {}
        }
    }
    // Array claims: joined by the filter, not forwarded by Envoy (documented difference).
    let ours = envoy.send_to("palisade", &bearer("/api/items", &good)).unwrap().echoed().unwrap();
    let native = envoy.send_to("native", &bearer("/api/items", &good)).unwrap().echoed().unwrap();
    assert_eq!(ours.header("x-roles"), Some("admin,ops"));
    assert_eq!(native.header("x-sub"), Some("alice"));
    // Oversized but validly signed: the filter refuses it, Envoy lets it pass (documented).
    let big = keys.es256.sign(claims_of(with("pad", json!("x".repeat(9000))))).unwrap();
    let ours = envoy.send_to("palisade", &bearer("/api/items", &big)).unwrap();
    let native = envoy.send_to("native", &bearer("/api/items", &big)).unwrap();
    assert_eq!((ours.status, native.status), (401, 200));
    assert!(invalid_token(&ours));

    // Several credentials: every one must verify, in both. A bad token in the `access_token`
    // parameter beside a good header token is a 401, not a pass that forwards the bad one.
    let forged = keys.stranger.sign(claims_of(claims())).unwrap();
    let beside = bearer(&format!("/api/items?access_token={forged}"), &good);
    let (ours, native) = (envoy.send_to("palisade", &beside).unwrap(), envoy.send_to("native", &beside).unwrap());
    assert_eq!((ours.status, native.status), (401, 401), "{}", ours.text());
    assert!(invalid_token(&ours) && invalid_token(&native));
    // The parameter's name percent-encoded is the same parameter to Envoy and to the upstream.
    let encoded = bearer(&format!("/api/items?acc%65ss_token={forged}"), &good);
    let (ours, native) = (envoy.send_to("palisade", &encoded).unwrap(), envoy.send_to("native", &encoded).unwrap());
    assert_eq!((ours.status, native.status), (401, 401), "{}", ours.text());
    let encoded_good = Request::get(&format!("/api/items?page=1&access%5Ftoken={good}"));
    let ours = envoy.send_to("palisade", &encoded_good).unwrap();
    let native = envoy.send_to("native", &encoded_good).unwrap();
    assert_eq!((ours.status, native.status), (200, 200), "{}", ours.text());
    assert_eq!(ours.echoed().unwrap().path, "/api/items?page=1", "the token is cut under its encoded name");
    let twice = bearer(&format!("/api/items?access_token={good}&page=2"), &good);
    let (ours, native) = (envoy.send_to("palisade", &twice).unwrap(), envoy.send_to("native", &twice).unwrap());
    assert_eq!((ours.status, native.status), (200, 200), "{}", ours.text());
    let echoed = ours.echoed().unwrap();
    assert_eq!((echoed.path.as_str(), echoed.header("authorization")), ("/api/items?page=2", None));
    // Two `Authorization` values, the second not a token: refused by both.
    let two = bearer("/api/items", &good).header("authorization", "Bearer not-a-jwt");
    let (ours, native) = (envoy.send_to("palisade", &two).unwrap(), envoy.send_to("native", &two).unwrap());
    assert_eq!((ours.status, native.status), (401, 401));

    let stats = envoy.stats().unwrap();
    // Every 200 above (the no-auth route too), the array-claim request, the token under an
    // encoded name and the token sent twice.
    let allowed = cases.iter().filter(|c| c.3 == 200).count() as u64 + 3;
    assert_eq!(stats.wasmcustom("palisade.jwt_authn.allowed"), Some(allowed));
    assert_eq!(stats.wasmcustom("palisade.jwt_authn.denied.audience_not_allowed"), Some(1));
    assert_eq!(stats.wasmcustom("palisade.jwt_authn.denied.token_too_large"), Some(1));
}

/// A free port on 127.0.0.1 (for a listener a cluster must point at before Envoy starts).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn remote_jwks_from_a_second_listener() {
    let keys = Keys::new();
    let echo = EchoServer::start().unwrap();
    let jwks_port = free_port();
    let mut jwk: Value = serde_json::from_str(&keys.es256.public_key().to_jwk()).unwrap();
    jwk["kid"] = json!("ec-1");
    let set = json!({ "keys": [jwk] });
    let filter = json!({
        "providers": {"remote": {
            "issuer": ISSUER, "audiences": ["api"], "algorithms": ["ES256"],
            "remote_jwks": {"cluster": "auth_jwks", "path": JWKS_PATH, "authority": "auth.example.com",
                            "timeout_ms": 2000, "wait_for_keys_ms": 5000}
        }},
        "rules": [{"match": {}, "requires": {"provider": "remote"}}]
    });
    let config = EnvoyConfig::new()
        .concurrency(1)
        .cluster(Cluster::new("echo", echo.addr()))
        .cluster(Cluster::new("auth_jwks", std::net::SocketAddr::from(([127, 0, 0, 1], jwks_port))))
        .listener(
            Listener::new("main")
                .filter(WasmFilter::palisade("jwt-authn", &filter.to_string()).unwrap())
                .route(Route::to_cluster("default", PathMatch::prefix("/"), "echo")),
        )
        .listener(Listener::new("jwks").port(jwks_port).route(Route::direct(
            "jwks",
            PathMatch::exact(JWKS_PATH),
            200,
            &set.to_string(),
        )));
    let envoy = Envoy::start("remote_jwks_from_a_second_listener", &config).unwrap();

    // The first request may arrive before the first fetch: it waits for it, then verifies.
    let good = keys.es256.sign(claims_of(claims())).unwrap();
    let response = envoy.send(&bearer("/api/items", &good)).unwrap();
    assert_eq!(response.status, 200, "{}\n{}", response.text(), envoy.log());
    assert_eq!(response.echoed().unwrap().header("authorization"), None);
    let stats = envoy.stats().unwrap();
    assert!(stats.wasmcustom("palisade.jwt_authn.jwks_fetch_ok").is_some_and(|n| n >= 1));
    assert_eq!(stats.wasmcustom("palisade.jwt_authn.jwks_fetch_failed"), Some(0));
    assert_eq!(stats.counter("cluster.auth_jwks.upstream_rq_200").map(|n| n >= 1), Some(true));
    // The fetched keys decide: a token of another key is refused, a missing one is a 401.
    let stranger = keys.stranger.sign(claims_of(claims())).unwrap();
    let response = envoy.send(&bearer("/api/items", &stranger)).unwrap();
    assert_eq!(response.status, 401);
    assert!(invalid_token(&response));
    assert_eq!(envoy.send(&Request::get("/api/items")).unwrap().status, 401);
    let wrong_aud = keys.es256.sign(claims_of(with("aud", json!(["web"])))).unwrap();
    assert_eq!(envoy.send(&bearer("/api/items", &wrong_aud)).unwrap().status, 403);
}

#[test]
fn a_claim_holding_cr_lf_writes_no_header_upstream() {
    // Signed is not header-safe: an IdP may let users shape `sub` or the consumer claim.
    let echo = EchoServer::start().unwrap();
    let config = json!({
        "providers": {"internal": {"issuer": INTERNAL, "algorithms": ["HS256"],
                                   "hmac_secret": {"env": SECRET_VAR, "encoding": "raw"},
                                   "consumer_claim": "client",
                                   "claim_to_headers": [{"claim": "sub", "header": "x-sub"}]}},
        "rules": [{"match": {"path": {"prefix": "/"}}, "requires": {"provider": "internal"}}],
        "identity_headers": true
    });
    let envoy = start_alone("jwt_authn_crlf_claims", &echo, &config);
    let claims = json!({"iss": INTERNAL, "sub": "alice\r\nx-injected: sub", "client": "web\r\nx-injected: client",
                        "exp": now() + 60});
    let token = HS256Key::from_bytes(SECRET).authenticate(claims_of(claims)).unwrap();
    let response = envoy.send(&bearer("/api/items", &token)).unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    let echoed = response.echoed().unwrap();
    assert_eq!(echoed.header("x-injected"), None, "{:?}", echoed.headers);
    for name in ["x-sub", "x-palisade-subject", "x-palisade-consumer"] {
        assert_eq!(echoed.header(name), None, "{name}: {:?}", echoed.headers);
    }
    assert_eq!(echoed.header("x-palisade-issuer"), Some(INTERNAL));
}

#[test]
fn a_host_rule_holds_for_the_host_with_a_trailing_dot() {
    // `admin.example.com.` is `admin.example.com` to DNS and to an nginx behind Envoy; Envoy
    // passes it as sent (without `strip_trailing_host_dot`), so the rule must hold for it too.
    let echo = EchoServer::start().unwrap();
    let config = json!({
        "providers": {"internal": {"issuer": INTERNAL, "algorithms": ["HS256"],
                                   "hmac_secret": {"env": SECRET_VAR, "encoding": "raw"}}},
        "rules": [{"match": {"host": "admin.example.com"}, "requires": {"provider": "internal"}},
                  {"match": {}, "requires": "none"}]
    });
    let envoy = start_alone("jwt_authn_trailing_dot_host", &echo, &config);
    let token = HS256Key::from_bytes(SECRET)
        .authenticate(claims_of(json!({"iss": INTERNAL, "sub": "ops", "exp": now() + 60})))
        .unwrap();
    let status = |host: &str, token: Option<&str>| {
        let request = Request::get("/users").header("host", host);
        let request = match token {
            Some(token) => request.header("authorization", &format!("Bearer {token}")),
            None => request,
        };
        envoy.send(&request).unwrap().status
    };
    for host in ["admin.example.com", "admin.example.com.", "ADMIN.Example.com.:8080"] {
        assert_eq!(status(host, None), 401, "{host} without a token");
        assert_eq!(status(host, Some(&token)), 200, "{host} with a token");
    }
    assert_eq!(status("www.example.com.", None), 200, "another host needs no token");
}
