//! The authz filter on real Envoy, next to Envoy's native `rbac` filter configured as the
//! README's mapping says: the same requests go through both listeners of one Envoy and must be
//! stopped or passed alike; shadow mode is visible in `/stats`; the guide's policy holds on an
//! mTLS listener with real client certificates (made with `openssl`, sent with `curl`).
//!
//! "Stopped" vs "passed" is compared rather than the status: Palisade answers 400 for a path it
//! cannot normalize safely and 401 when only an identity could help, where RBAC answers 403.
//! Where the two knowingly differ (Envoy resolves `/../x` above the root to `/x` and keeps
//! `%252e` and `..;` segments as they are; Palisade refuses all three with 400) the test asserts
//! that Palisade is the stricter one.

// Test helpers too may panic: a panic here is a failed test (clippy.toml allows it only in #[test]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use palisade_tests::e2e::{
    workspace_root, Cluster, EchoServer, Envoy, EnvoyConfig, HttpFilter, Listener, Mtls, PathMatch, Request, Route,
    WasmFilter,
};
use serde_json::{json, Value};

const ORDER_SERVICE: &str = "spiffe://cluster.local/ns/production/sa/order-service";
const BILLING: &str = "spiffe://cluster.local/ns/production/sa/billing";

/// Connection and operation conditions only (RBAC cannot read a wasm filter's identity).
const POLICIES: &str = r#"{
  "path_normalization": {"forward_normalized": true},
  "policies": [
    {"name": "no-delete", "action": "DENY", "rules": [{"to": [{"operation": {"methods": ["DELETE"], "paths": ["/api/*"]}}]}]},
    {"name": "no-debug", "action": "DENY", "rules": [{"when": [{"key": "request.headers[x-debug]", "values": ["*"]}]}]},
    {"name": "shadow-no-export", "action": "DENY", "shadow": true, "rules": [{"to": [{"operation": {"paths": ["/export/*"]}}]}]},
    {"name": "public-get", "rules": [{"to": [{"operation": {"methods": ["GET", "HEAD"], "paths": ["/public/*", "/export/*", "/healthz"]}}]}]},
    {"name": "api", "rules": [{
      "to": [{"operation": {"methods": ["GET", "POST", "DELETE"], "paths": ["/api/v1/*"]}}],
      "when": [{"key": "request.headers[x-tenant]", "values": ["acme-*"]}]}]},
    {"name": "local-internal", "rules": [{"from": [{"source": {"ipBlocks": ["127.0.0.0/8"]}}], "to": [{"operation": {"paths": ["/internal/*"]}}]}]},
    {"name": "remote-only", "rules": [{"from": [{"source": {"notIpBlocks": ["127.0.0.0/8"]}}], "to": [{"operation": {"paths": ["/remote/*"]}}]}]},
    {"name": "orders", "rules": [{"to": [{"operation": {"paths": [{"glob": "/users/*/orders/**"}]}}]}]},
    {"name": "api-host", "rules": [{"to": [{"operation": {"hosts": ["api.example.com"], "notMethods": ["PUT"], "paths": ["/host/*"]}}]}]}
  ]
}"#;

fn method(name: &str) -> Value {
    json!({"header": {"name": ":method", "string_match": {"exact": name}}})
}

fn prefix(path: &str) -> Value {
    json!({"url_path": {"path": {"prefix": path}}})
}

fn all(rules: Vec<Value>) -> Value {
    json!({"and_rules": {"rules": rules}})
}

fn any(rules: Vec<Value>) -> Value {
    json!({"or_rules": {"rules": rules}})
}

fn loopback() -> Value {
    json!({"direct_remote_ip": {"address_prefix": "127.0.0.0", "prefix_len": 8}})
}

fn rbac_policy(permission: Value, principal: Value) -> Value {
    json!({"permissions": [permission], "principals": [principal]})
}

/// `POLICIES` as Envoy RBAC, per the README mapping: a DENY filter (with the shadow DENY in its
/// `shadow_rules`) followed by an ALLOW filter.
fn rbac_filters() -> [HttpFilter; 2] {
    let everyone = json!({"any": true});
    let deny = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
        "rules": {"action": "DENY", "policies": {
            "no-delete": rbac_policy(all(vec![method("DELETE"), prefix("/api/")]), everyone.clone()),
            "no-debug": rbac_policy(json!({"header": {"name": "x-debug", "present_match": true}}), everyone.clone()),
        }},
        "shadow_rules": {"action": "DENY", "policies": {
            "shadow-no-export": rbac_policy(prefix("/export/"), everyone.clone()),
        }},
        "shadow_rules_stat_prefix": "palisade_cmp_",
    });
    let authority =
        |exact: &str| json!({"header": {"name": ":authority", "string_match": {"exact": exact, "ignore_case": true}}});
    let authority_port = |host: &str| json!({"header": {"name": ":authority", "string_match": {"prefix": format!("{host}:"), "ignore_case": true}}});
    let allow = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
        "rules": {"action": "ALLOW", "policies": {
            "public-get": rbac_policy(all(vec![
                any(vec![method("GET"), method("HEAD")]),
                any(vec![prefix("/public/"), prefix("/export/"), json!({"url_path": {"path": {"exact": "/healthz"}}})]),
            ]), everyone.clone()),
            "api": rbac_policy(all(vec![
                any(vec![method("GET"), method("POST"), method("DELETE")]),
                prefix("/api/v1/"),
                json!({"header": {"name": "x-tenant", "string_match": {"prefix": "acme-"}}}),
            ]), everyone.clone()),
            "local-internal": rbac_policy(prefix("/internal/"), loopback()),
            "remote-only": rbac_policy(prefix("/remote/"), json!({"not_id": loopback()})),
            "orders": rbac_policy(
                json!({"url_path": {"path": {"safe_regex": {"regex": "/users/[^/]*/orders/.*"}}}}),
                everyone.clone(),
            ),
            "api-host": rbac_policy(all(vec![
                any(vec![authority("api.example.com"), authority_port("api.example.com")]),
                json!({"not_rule": method("PUT")}),
                prefix("/host/"),
            ]), everyone),
        }},
    });
    [HttpFilter::native("rbac-deny", deny), HttpFilter::native("rbac-allow", allow)]
}

/// Envoy's path normalization for the RBAC listener, as the README recommends for native RBAC.
fn normalizing(listener: Listener) -> Listener {
    listener
        .hcm_field("normalize_path", json!(true))
        .hcm_field("merge_slashes", json!(true))
        .hcm_field("path_with_escaped_slashes_action", json!("REJECT_REQUEST"))
}

fn passed(status: u16) -> bool {
    status == 200
}

#[test]
fn agrees_with_native_rbac_and_counts_shadow_denials() {
    let echo = EchoServer::start().unwrap();
    let [deny, allow] = rbac_filters();
    let config = EnvoyConfig::new()
        .cluster(Cluster::new("echo", echo.addr()))
        .listener(
            Listener::new("palisade")
                .filter(WasmFilter::palisade("authz", POLICIES).unwrap())
                .route(Route::to_cluster("all", PathMatch::prefix("/"), "echo")),
        )
        .listener(normalizing(Listener::new("rbac")).filter(deny).filter(allow).route(Route::to_cluster(
            "all",
            PathMatch::prefix("/"),
            "echo",
        )));
    let envoy = Envoy::start("authz_agrees_with_native_rbac", &config).unwrap();

    let get = Request::get;
    let tenant = |r: Request, t: &str| r.header("x-tenant", t);
    let host = |r: Request, h: &str| r.header("host", h);
    // (request, expected to pass)
    let cases: Vec<(Request, bool)> = vec![
        (get("/public/index.html"), true),
        (get("/public/a?q=1"), true),
        (Request::post("/public/x", "x"), false),
        (get("/healthz"), true),
        (get("/healthz/"), false),
        (get("/public"), false),
        (get("/private"), false),
        (tenant(get("/api/v1/items"), "acme-1"), true),
        (tenant(Request::post("/api/v1/items", "{}"), "acme-eu"), true),
        (tenant(get("/api/v1/items"), "other"), false),
        (get("/api/v1/items"), false),
        // Repeated values: a value list holds when any value matches, as in Envoy's rbac.
        (tenant(tenant(get("/api/v1/items"), "other"), "acme-1"), true),
        (tenant(tenant(get("/api/v1/items"), "other"), "other-2"), false),
        (tenant(Request::new("DELETE", "/api/v1/items/1"), "acme-1"), false),
        (get("/public/x").header("x-debug", "1"), false),
        // `*` on a header is presence, as Envoy's `present_match`: an empty value counts.
        (get("/public/x").header("x-debug", ""), false),
        (get("/internal/metrics"), true),
        (get("/remote/x"), false),
        (get("/users/42/orders/7"), true),
        (get("/users/42/orders/7/items"), true),
        (get("/users/42/x/orders/7"), false),
        (host(get("/host/a"), "api.example.com"), true),
        (host(get("/host/a"), "API.Example.com:8080"), true),
        (host(Request::new("PUT", "/host/a"), "api.example.com"), false),
        (host(get("/host/a"), "other.example.com"), false),
        (host(get("/host/a"), "api.example.com.evil"), false),
        (get("/export/report"), true),
        (get("/export/other"), true),
        // Path tricks: both normalize before matching.
        (get("/public/../private"), false),
        (get("/private/../public/x"), true),
        (get("//public/x"), true),
        (get("/public/./x"), true),
        (get("/public/%2e%2e/private"), false),
        (get("/public%2Fx"), false),
        (get("/admin%2fx"), false),
        (get("/internal/../remote/x"), false),
    ];
    let mut disagreements = Vec::new();
    for (request, expected) in &cases {
        let ours = envoy.send_to("palisade", request).unwrap();
        let theirs = envoy.send_to("rbac", request).unwrap();
        let line = format!(
            "{} {} {:?}: palisade {} rbac {} (expected {})",
            request.method, request.path, request.headers, ours.status, theirs.status, expected
        );
        if passed(ours.status) != *expected || passed(theirs.status) != *expected {
            disagreements.push(line);
            continue;
        }
        if *expected {
            // The upstream sees the same (normalized) path from both.
            assert_eq!(ours.echoed().unwrap().path, theirs.echoed().unwrap().path, "{line}");
        } else {
            assert!(matches!(ours.status, 400 | 403), "{line}");
            assert!(matches!(theirs.status, 400 | 403), "{line}");
        }
    }
    assert!(disagreements.is_empty(), "disagreements:\n{}", disagreements.join("\n"));

    // Known, documented differences: Palisade refuses what Envoy's normalization lets through.
    for path in ["/../public/x", "/public/%252e%252e/x"] {
        let ours = envoy.send_to("palisade", &get(path)).unwrap();
        let theirs = envoy.send_to("rbac", &get(path)).unwrap();
        assert_eq!((ours.status, theirs.status), (400, 200), "{path}");
    }
    // `..;` (Tomcat path parameter): Palisade refuses it; Envoy's normalization does not match
    // `/public/` here either, so both stop it (with 400 and 403).
    let ours = envoy.send_to("palisade", &get("/public/..;/x")).unwrap();
    let theirs = envoy.send_to("rbac", &get("/public/..;/x")).unwrap();
    assert_eq!((ours.status, theirs.status), (400, 403));

    // Both filters' shadow DENY saw the two /export requests and stopped nothing.
    let stats = envoy.stats().unwrap();
    assert_eq!(stats.wasmcustom("palisade.authz.shadow_denied"), Some(2));
    assert_eq!(stats.wasmcustom("palisade.authz.policy.shadow-no-export.shadow_denied"), Some(2));
    // Envoy names it `http.<listener>.rbac.<shadow_rules_stat_prefix>.shadow_denied`.
    assert_eq!(stats.counter("http.rbac.rbac.palisade_cmp_.shadow_denied"), Some(2), "rbac shadow_denied");
    let stopped = cases.iter().filter(|(_, e)| !e).count() as u64 + 3;
    assert_eq!(stats.wasmcustom("palisade.authz.denied"), Some(stopped));
    assert_eq!(stats.wasmcustom("palisade.authz.policy.no-delete.denied"), Some(1));
    assert_eq!(stats.wasmcustom("palisade.authz.policy.orders.allowed"), Some(2));
}

#[test]
fn whole_filter_shadow_mode_passes_everything_and_counts_in_stats() {
    let echo = EchoServer::start().unwrap();
    let shadow = format!(r#"{{"shadow": true, {}"#, &POLICIES.trim_start()[1..]);
    let config = EnvoyConfig::new().cluster(Cluster::new("echo", echo.addr())).listener(
        Listener::new("shadow").filter(WasmFilter::palisade("authz", &shadow).unwrap()).route(Route::to_cluster(
            "all",
            PathMatch::prefix("/"),
            "echo",
        )),
    );
    let envoy = Envoy::start("authz_whole_filter_shadow", &config).unwrap();
    let requests = [
        Request::get("/public/x"),
        Request::get("/private"),
        Request::new("DELETE", "/api/v1/items/1").header("x-tenant", "acme-1"),
        Request::get("/../etc/passwd"),
    ];
    for request in &requests {
        let response = envoy.send(request).unwrap();
        assert_eq!(response.status, 200, "{} must pass in shadow mode", request.path);
    }
    let name = "wasmcustom.palisade.authz.allowed";
    assert_eq!(envoy.wait_for_counter(name, 4, Duration::from_secs(5)).unwrap(), Some(4));
    let stats = envoy.stats().unwrap();
    assert_eq!(stats.wasmcustom("palisade.authz.shadow_denied"), Some(3));
    assert_eq!(stats.wasmcustom("palisade.authz.denied"), Some(0));
    assert_eq!(stats.wasmcustom("palisade.authz.policy.no-delete.shadow_denied"), Some(1));
    assert_eq!(stats.wasmcustom("palisade.authz.policy.no-delete.denied"), Some(0));
    assert!(envoy.log().contains(r#""decision":"shadow_deny","reason":"invalid_path""#), "{}", envoy.log());
}

/// A CA, a server certificate for 127.0.0.1 and two client certificates (order-service, billing).
const MAKE_CERTS: &str = r#"set -e
ec="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
openssl req -x509 $ec -days 2 -subj "/CN=palisade test ca" -keyout ca.key -out ca.pem
for pair in "server IP:127.0.0.1" "order URI:$ORDER" "billing URI:$BILLING"; do
  set -- $pair
  openssl req $ec -subj "/CN=palisade test $1" -addext "subjectAltName=$2" -keyout $1.key -out $1.csr
  openssl x509 -req -in $1.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -copy_extensions copyall -out $1.pem
done
"#;

/// The status curl got, or 0 when the exchange failed (e.g. no client certificate).
fn curl(dir: &Path, method: &str, url: &str, client: Option<&str>) -> u16 {
    let mut args =
        vec!["-sS", "--path-as-is", "--max-time", "10", "--cacert", "ca.pem", "-o", "/dev/null", "-w", "%{http_code}"];
    let (cert, key) = client.map(|c| (format!("{c}.pem"), format!("{c}.key"))).unzip();
    if let (Some(cert), Some(key)) = (&cert, &key) {
        args.extend(["--cert", cert.as_str(), "--key", key.as_str()]);
    }
    args.extend(["-X", method]);
    if method == "POST" {
        args.extend(["--data-binary", "{}"]);
    }
    args.push(url);
    let output = Command::new("curl").args(&args).current_dir(dir).output().expect("curl is installed");
    String::from_utf8_lossy(&output.stdout).trim().parse().unwrap_or(0)
}

#[test]
fn guide_policy_on_the_mtls_listener() {
    let dir = workspace_root().join(format!("target/palisade-e2e/authz-certs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let made = Command::new("sh")
        .args(["-c", MAKE_CERTS])
        .env("ORDER", ORDER_SERVICE)
        .env("BILLING", BILLING)
        .current_dir(&dir)
        .output()
        .expect("openssl and sh are installed");
    assert!(made.status.success(), "making certificates: {}", String::from_utf8_lossy(&made.stderr));

    let guide = r#"{"policies": [{"name": "service-access", "action": "ALLOW", "rules": [{
      "from": [{"source": {"principals": ["cluster.local/ns/production/sa/order-service"]}}],
      "to": [{"operation": {"methods": ["POST"], "paths": ["/api/v1/payments/*"]}}]}]}]}"#;
    let rbac = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
        "rules": {"action": "ALLOW", "policies": {"service-access": {
            "permissions": [all(vec![method("POST"), prefix("/api/v1/payments/")])],
            "principals": [{"authenticated": {"principal_name": {"exact": ORDER_SERVICE}}}],
        }}},
    });
    let tls = || Mtls {
        cert_chain: dir.join("server.pem"),
        private_key: dir.join("server.key"),
        client_ca: dir.join("ca.pem"),
    };
    let echo = EchoServer::start().unwrap();
    let config = EnvoyConfig::new()
        .cluster(Cluster::new("echo", echo.addr()))
        .listener(
            Listener::new("palisade_mtls")
                .mtls(tls())
                .filter(WasmFilter::palisade("authz", guide).unwrap())
                .route(Route::to_cluster("all", PathMatch::prefix("/"), "echo")),
        )
        .listener(
            normalizing(Listener::new("rbac_mtls"))
                .mtls(tls())
                .filter(HttpFilter::native("rbac", rbac))
                .route(Route::to_cluster("all", PathMatch::prefix("/"), "echo")),
        );
    let envoy = Envoy::start("authz_guide_policy_on_mtls", &config).unwrap();
    let base = |listener: &str| format!("https://{}", envoy.listener_addr(listener).unwrap());
    let (ours, theirs) = (base("palisade_mtls"), base("rbac_mtls"));

    let cases = [
        ("POST", "/api/v1/payments/1", Some("order"), 200),
        ("POST", "/api/v1/payments/1/capture", Some("order"), 200),
        ("GET", "/api/v1/payments/1", Some("order"), 403),
        ("POST", "/api/v1/refunds/1", Some("order"), 403),
        ("POST", "/api/v1/payments/1", Some("billing"), 403),
        ("POST", "/api/v1/payments/../admin", Some("order"), 403),
    ];
    let mut results = Vec::new();
    for (method, path, client, expected) in cases {
        let palisade = curl(&dir, method, &format!("{ours}{path}"), client);
        let native = curl(&dir, method, &format!("{theirs}{path}"), client);
        results.push((method, path, client, expected, palisade, native));
    }
    // Without a client certificate the handshake fails on both: no HTTP status at all.
    let no_cert = (
        curl(&dir, "POST", &format!("{ours}/api/v1/payments/1"), None),
        curl(&dir, "POST", &format!("{theirs}/api/v1/payments/1"), None),
    );
    std::fs::remove_dir_all(&dir).unwrap();

    for (method, path, client, expected, palisade, native) in results {
        assert_eq!((palisade, native), (expected, expected), "{method} {path} as {client:?}");
    }
    assert_eq!(no_cert, (0, 0));
    let stats = envoy.stats().unwrap();
    assert_eq!(stats.wasmcustom("palisade.authz.policy.service-access.allowed"), Some(2));
    assert_eq!(stats.wasmcustom("palisade.authz.denied"), Some(4));
}
