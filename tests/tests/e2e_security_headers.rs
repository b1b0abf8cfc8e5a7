//! security-headers on a real Envoy, differentially against the wasmtime host: every case of
//! `common/security_headers_cases.rs` goes through Envoy (security-headers first, then jwt-authn,
//! then the router to the echo) and through the host with the same chain and configs, and both
//! must give the client the same status, headers (normalised as that module documents) and
//! local-reply bodies, and each must meet the case's expectations. The counters Envoy shows as
//! `wasmcustom.palisade.security_headers.*` must equal the host's and the cases' totals. Also:
//! the filter order matters the same way in both (after jwt-authn, its 401 is not decorated),
//! and Envoy refuses a bad configuration with the message naming the field.
// Helpers outside `#[test]` fns unwrap too: a panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::panic)]

use crate::common::security_headers_cases as cases;

use std::time::Duration;

use palisade_tests::e2e::{Cluster, EchoServer, Envoy, EnvoyConfig, Listener, PathMatch, Request, Route, WasmFilter};
use palisade_tests::host::{Host, Plugin};
use serde_json::json;

use cases::{Case, Observed, CONFIG, ENVOY_ROUTES, JWT_CONFIG, PRESET_NAMES};

/// Envoy in front of the echo with `filters` in order and the cases' routes. `server:` is passed
/// through (else Envoy writes `server: envoy` after the filters ran), as the README requires.
fn envoy_config(echo: &EchoServer, filters: Vec<WasmFilter>) -> EnvoyConfig {
    let mut listener = Listener::new("main").hcm_field("server_header_transformation", json!("PASS_THROUGH"));
    for filter in filters {
        listener = listener.filter(filter);
    }
    for (name, prefix) in ENVOY_ROUTES {
        listener = listener.route(Route::to_cluster(name, PathMatch::prefix(prefix), "echo"));
    }
    EnvoyConfig::new().cluster(Cluster::new("echo", echo.addr())).listener(listener)
}

fn security_headers() -> WasmFilter {
    WasmFilter::palisade("security-headers", CONFIG).unwrap()
}

fn jwt_authn() -> WasmFilter {
    WasmFilter::palisade("jwt-authn", JWT_CONFIG).unwrap()
}

fn envoy_request(case: &Case) -> Request {
    let request = Request::new(case.method, case.path).header("host", case.host);
    case.request_headers().iter().fold(request, |request, (name, value)| request.header(name, value))
}

fn through_envoy(envoy: &Envoy, case: &Case) -> Observed {
    let response = envoy.send(&envoy_request(case)).unwrap_or_else(|err| panic!("{}: {err}", case.name));
    let reached = response.echoed().is_ok_and(|seen| seen.method == case.method);
    Observed::new(response.status, &response.headers, reached, &response.body)
}

fn through_host(plugins: &[&Plugin], host: &Host, case: &Case) -> Observed {
    let mut exchange = host.chain(plugins).send(case.host_request());
    Observed::from_host(case, &mut exchange)
}

#[test]
fn envoy_and_the_host_give_every_case_the_same_result() {
    let echo = EchoServer::start().unwrap();
    let config = envoy_config(&echo, vec![security_headers(), jwt_authn()]);
    let envoy = Envoy::start("security_headers_differential", &config).unwrap();
    let host = Host::new();
    let sh = host.plugin("security-headers").config(CONFIG).load().unwrap();
    let jwt = host.plugin("jwt-authn").config(JWT_CONFIG).load().unwrap();

    let all = cases::cases();
    let mut failures = Vec::new();
    for case in &all {
        let on_envoy = through_envoy(&envoy, case);
        let on_host = through_host(&[&sh, &jwt], &host, case);
        let mut problems: Vec<String> = case.check(&on_envoy).into_iter().map(|p| format!("envoy: {p}")).collect();
        problems.extend(case.check(&on_host).into_iter().map(|p| format!("host: {p}")));
        if on_envoy != on_host {
            problems.push(format!("envoy and host differ:\n    envoy: {on_envoy:?}\n    host:  {on_host:?}"));
        }
        if !problems.is_empty() {
            failures.push(format!("{}:\n  {}", case.name, problems.join("\n  ")));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), all.len(), failures.join("\n"));

    let expected = cases::expected_metrics(&all);
    let (decorated, total) = expected[0];
    let seen =
        envoy.wait_for_counter(&format!("wasmcustom.{decorated}"), total as u64, Duration::from_secs(5)).unwrap();
    assert_eq!(seen, Some(total as u64), "{decorated}");
    let stats = envoy.stats().unwrap();
    for (name, value) in expected {
        assert!(value > 0, "{name}: the cases exercise every counter");
        assert_eq!(stats.wasmcustom(name), Some(value as u64), "envoy {name}");
        assert_eq!(host.metric(name), Some(value), "host {name}");
    }
}

#[test]
fn after_jwt_authn_its_401_is_not_decorated_on_envoy_nor_on_the_host() {
    let echo = EchoServer::start().unwrap();
    let config = envoy_config(&echo, vec![jwt_authn(), security_headers()]);
    let envoy = Envoy::start("security_headers_after_jwt", &config).unwrap();
    let host = Host::new();
    let sh = host.plugin("security-headers").config(CONFIG).load().unwrap();
    let jwt = host.plugin("jwt-authn").config(JWT_CONFIG).load().unwrap();
    let case = cases::cases().into_iter().find(|c| c.status == 401).unwrap();

    let on_envoy = through_envoy(&envoy, &case);
    let on_host = through_host(&[&jwt, &sh], &host, &case);

    assert_eq!(on_envoy, on_host);
    assert_eq!(on_envoy.status, 401);
    assert!(on_envoy.headers.contains_key("www-authenticate"));
    let decorated: Vec<&str> = PRESET_NAMES
        .iter()
        .chain(&["access-control-allow-origin", "vary"])
        .copied()
        .filter(|name| on_envoy.headers.contains_key(*name))
        .collect();
    assert!(decorated.is_empty(), "security-headers after jwt-authn decorated its 401: {decorated:?}");
    // A response from the upstream is still decorated in this order.
    let response = envoy.send(&Request::get("/api/items")).unwrap();
    assert_eq!(response.header("x-frame-options"), Some("DENY"));
    let stats = envoy.stats().unwrap();
    assert_eq!(stats.wasmcustom("palisade.security_headers.responses_decorated"), Some(1));
}

#[test]
fn envoy_refuses_an_invalid_configuration_naming_the_field() {
    let echo = EchoServer::start().unwrap();
    let bad = r#"{"default": {"hsts": {"include_subdomains": false, "preload": true}}}"#;
    let config = envoy_config(&echo, vec![WasmFilter::palisade("security-headers", bad).unwrap()]);
    let err = match Envoy::start("security_headers_invalid_config", &config) {
        Ok(_) => panic!("Envoy accepted an invalid security-headers configuration"),
        Err(err) => err.to_string(),
    };
    assert!(
        err.contains(
            "palisade security-headers: invalid configuration: default.hsts.preload: requires include_subdomains"
        ),
        "{err}"
    );
}
