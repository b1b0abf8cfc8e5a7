//! Does Envoy select the route again after authz rewrites `:path` (`forward_normalized`)?
//!
//! One Envoy, HCM `normalize_path` off (Envoy's default), two listeners with the same routes:
//! `/admin` is answered by Envoy itself (`direct_response` 403, "blocked at the edge"),
//! `/public/` goes to the echo upstream, anything else gets a direct 404. The authz filter allows
//! everything, so only routing decides; one listener forwards the normalized path, the other not.
//!
//! `/public/../admin` first matches `public` on its raw path. The test asserts what Envoy 1.40
//! really does once the filter has rewritten `:path` to `/admin`: it clears the route cache when a
//! wasm filter changes a request header and the router picks the route for the new path, so the
//! request is answered by the `admin` route, not sent upstream. The control listener (no rewrite)
//! shows the raw path reaching the upstream through `public`.
//!
//! The consequence for the filters before authz: they matched their rules on the raw path. With
//! jwt-authn first (`/public/` allow_missing, `/admin` requires a token), `GET /public/../admin`
//! passes jwt-authn as a `/public/` request, authz rewrites it to `/admin`, Envoy routes it to the
//! admin upstream: a request without a token reaches a route that requires one. HCM
//! `normalize_path` + `merge_slashes` (Envoy normalizes before any filter) closes that, and the
//! second test asserts both.

// Test helpers too may panic: a panic here is a failed test (clippy.toml allows it only in #[test]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use palisade_tests::e2e::{Cluster, EchoServer, Envoy, EnvoyConfig, Listener, PathMatch, Request, Route, WasmFilter};
use serde_json::json;

const ADMIN_BODY: &str = "admin is blocked at the edge";
const NO_ROUTE_BODY: &str = "no route";

fn listener(name: &str, forward_normalized: bool) -> Listener {
    let config = format!(
        r#"{{"default_action": "allow", "path_normalization": {{"forward_normalized": {forward_normalized}}}}}"#
    );
    Listener::new(name)
        .filter(WasmFilter::palisade("authz", &config).unwrap())
        .route(Route::direct("admin", PathMatch::prefix("/admin"), 403, ADMIN_BODY))
        .route(Route::to_cluster("public", PathMatch::prefix("/public/"), "echo"))
        .route(Route::direct("fallback", PathMatch::prefix("/"), 404, NO_ROUTE_BODY))
}

/// Which route answered: the upstream (with the path it saw), or one of the direct responses.
#[derive(Debug, PartialEq)]
enum Served {
    Upstream(String),
    Admin,
    NoRoute,
}

fn served(envoy: &Envoy, listener: &str, path: &str) -> Served {
    let response = envoy.send_to(listener, &Request::get(path).timeout(Duration::from_secs(10))).unwrap();
    match (response.status, response.text().as_str()) {
        (200, _) => Served::Upstream(response.echoed().unwrap().path),
        (403, ADMIN_BODY) => Served::Admin,
        (404, NO_ROUTE_BODY) => Served::NoRoute,
        (status, body) => panic!("{listener} {path}: unexpected {status} {body}"),
    }
}

#[test]
fn envoy_reselects_the_route_after_authz_rewrites_the_path() {
    let echo = EchoServer::start().unwrap();
    let config = EnvoyConfig::new()
        .cluster(Cluster::new("echo", echo.addr()))
        .listener(listener("rewrite", true))
        .listener(listener("raw", false));
    let envoy = Envoy::start("authz_reroute", &config).unwrap();

    // Plain paths: both listeners route them the same way.
    for listener in ["rewrite", "raw"] {
        assert_eq!(served(&envoy, listener, "/public/a"), Served::Upstream("/public/a".into()), "{listener}");
        assert_eq!(served(&envoy, listener, "/admin"), Served::Admin, "{listener}");
    }

    // Without the rewrite, Envoy routes on the raw path and the upstream sees the dot segments.
    assert_eq!(served(&envoy, "raw", "/public/../admin"), Served::Upstream("/public/../admin".into()));
    assert_eq!(served(&envoy, "raw", "/admin/../public/a"), Served::Admin);

    // With the rewrite, the route is selected again for the normalized path: the request for
    // /public/../admin is answered by the admin route and never reaches the upstream ...
    assert_eq!(served(&envoy, "rewrite", "/public/../admin"), Served::Admin);
    assert_eq!(served(&envoy, "rewrite", "/public/%2e%2e/admin"), Served::Admin);
    // ... and a path that normalizes into /public/ reaches it through the public route.
    assert_eq!(served(&envoy, "rewrite", "/admin/../public/a"), Served::Upstream("/public/a".into()));
    assert_eq!(served(&envoy, "rewrite", "/public/x/../../elsewhere"), Served::NoRoute);
    // The query string is kept by the rewrite.
    assert_eq!(served(&envoy, "rewrite", "/admin/../public/a?q=1"), Served::Upstream("/public/a?q=1".into()));
}

const JWT_SECRET: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I";

/// jwt-authn (token required on `/admin`, optional on `/public/`) then authz with
/// `forward_normalized`; both routes go to the upstream.
fn authn_chain(name: &str, envoy_normalizes: bool) -> Listener {
    let jwt = r#"{
      "providers": {"internal": {"issuer": "https://internal.example.com", "algorithms": ["HS256"],
        "hmac_secret": {"env": "PALISADE_JWT_HS256_SECRET", "encoding": "base64url"}}},
      "rules": [
        {"match": {"path": {"prefix": "/public/"}}, "requires": "allow_missing"},
        {"match": {"path": {"prefix": "/admin"}}, "requires": {"provider": "internal"}}
      ]
    }"#;
    let authz = r#"{"default_action": "allow", "path_normalization": {"forward_normalized": true}}"#;
    let listener = Listener::new(name)
        .filter(WasmFilter::palisade("jwt-authn", jwt).unwrap().env("PALISADE_JWT_HS256_SECRET", JWT_SECRET))
        .filter(WasmFilter::palisade("authz", authz).unwrap())
        .route(Route::to_cluster("admin", PathMatch::prefix("/admin"), "echo"))
        .route(Route::to_cluster("public", PathMatch::prefix("/public/"), "echo"));
    if envoy_normalizes {
        listener.hcm_field("normalize_path", json!(true)).hcm_field("merge_slashes", json!(true))
    } else {
        listener
    }
}

#[test]
fn filters_before_authz_match_the_raw_path() {
    let echo = EchoServer::start().unwrap();
    let config = EnvoyConfig::new()
        .cluster(Cluster::new("echo", echo.addr()))
        .listener(authn_chain("raw_paths", false))
        .listener(authn_chain("envoy_normalizes", true));
    let envoy = Envoy::start("authz_reroute_authn", &config).unwrap();
    let get = |listener: &str, path: &str| envoy.send_to(listener, &Request::get(path)).unwrap();

    for listener in ["raw_paths", "envoy_normalizes"] {
        assert_eq!(get(listener, "/admin").status, 401, "{listener}: /admin needs a token");
        assert_eq!(get(listener, "/public/a").status, 200, "{listener}");
    }

    // jwt-authn saw /public/../admin (allow_missing); authz made it /admin; Envoy routed it to
    // the admin upstream: no token, and the upstream serves /admin.
    let bypass = get("raw_paths", "/public/../admin");
    assert_eq!(bypass.status, 200, "{}", bypass.text());
    assert_eq!(bypass.echoed().unwrap().path, "/admin");
    assert!(bypass.echoed().unwrap().header("authorization").is_none());

    // With Envoy normalizing first, every filter sees /admin: the token is required.
    assert_eq!(get("envoy_normalizes", "/public/../admin").status, 401);
    assert_eq!(get("envoy_normalizes", "/public/%2e%2e/admin").status, 401);
}
