//! The security-headers filter under the wasmtime host: config rejection naming the field, the
//! presets on upstream responses, header modes, leaky headers, CORS, preflights answered here
//! (and decorated once), jwt-authn's 401 decorated when security-headers comes first, per-route
//! rules, metrics, audit lines and hostile traffic. The cases shared with the Envoy run
//! (`common/security_headers_cases.rs`) are checked here too.
// Helpers outside `#[test]` fns unwrap too: a panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::panic)]

use crate::common::security_headers_cases as cases;

use palisade_tests::host::{traffic, Host, LogLevel, Plugin, Received, Request, Response, Verdict};

use cases::{Observed, CORS_NAMES, JWT_CONFIG, PERMISSIONS_POLICY, PRESET_NAMES, STRICT, WEB, WEB_CSP};

const DECORATED: &str = "palisade.security_headers.responses_decorated";

fn load(host: &Host, config: &str) -> Plugin {
    host.plugin("security-headers").config(config).load().unwrap()
}

/// Sends `request` through `plugin`, answers it with `response`, returns what the client got.
fn through(plugin: &Plugin, request: Request, response: Response) -> Received {
    let mut exchange = plugin.send(request);
    assert_eq!(exchange.verdict(), Verdict::Forwarded);
    exchange.respond(response).unwrap();
    exchange.client().unwrap().clone()
}

fn values(client: &Received, name: &str) -> Vec<String> {
    client.headers.get_all(name)
}

#[test]
fn shared_cases_hold_on_the_host() {
    let host = Host::new();
    let sh = load(&host, cases::CONFIG);
    let jwt = host.plugin("jwt-authn").config(JWT_CONFIG).load().unwrap();
    let chain = host.chain(&[&sh, &jwt]);
    let all = cases::cases();
    let mut failures = Vec::new();
    for case in &all {
        let mut exchange = chain.send(case.host_request());
        let observed = Observed::from_host(case, &mut exchange);
        let problems = case.check(&observed);
        if !problems.is_empty() {
            failures.push(format!("{}:\n  {}\n  observed: {observed:?}", case.name, problems.join("\n  ")));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), all.len(), failures.join("\n"));
    for (name, expected) in cases::expected_metrics(&all) {
        assert_eq!(host.metric(name), Some(expected), "{name}");
    }
}

#[test]
fn config_errors_name_the_field_and_refuse_the_plugin() {
    let cases = [
        (r#"{"default": {"presets": "strict"}}"#, "default.presets: unknown field `presets`"),
        (r#"{"default": {"preset": "paranoid"}}"#, "default.preset: unknown variant `paranoid`"),
        (
            r#"{"default": {"hsts": {"max_age": 63072000, "include_subdomains": false, "preload": true}}}"#,
            "default.hsts.preload: requires include_subdomains",
        ),
        (
            r#"{"routes": [{"match": {}, "policy": {"cors": {"allow_origins": ["*"], "allow_credentials": true}}}]}"#,
            "routes[0].policy.cors.allow_credentials: cannot be combined with allow_origins \"*\"",
        ),
        (r#"{"default": {"csp": {"default-src": ["self"]}}}"#, "default.csp"),
        (
            r#"{"default": {"headers": [{"name": "content-length", "value": "0"}]}}"#,
            "default.headers[0].name: content-length frames the message",
        ),
        (r#"{"default": {"headers": [{"name": "x-a", "value": "a\r\nset-cookie: x=1"}]}}"#, "default.headers[0].value"),
        (r#"{"default": {"headers": [{"name": "x-a", "value": "1", "mode": "remove"}]}}"#, "default.headers[0].value"),
        (
            r#"{"default": {"headers": [{"name": "access-control-allow-origin", "value": "*"}]}}"#,
            "default.headers[0].name: access-control-allow-origin is managed by the cors block",
        ),
        (
            r#"{"default": {"hsts": {}, "headers": [{"name": "Strict-Transport-Security", "value": "max-age=1"}]}}"#,
            "default.headers[0].name: strict-transport-security is already set by hsts",
        ),
        (r#"{"default": {"cors": {"allow_origins": ["null"]}}}"#, "default.cors.allow_origins[0]: must not be null"),
        (r#"{"routes": [{"match": {"path": {"prefix": "api"}}}]}"#, "routes[0].match.path.prefix: must start with /"),
        (r#"{"default": {}} trailing"#, "config: trailing characters"),
    ];
    for (config, field) in cases {
        let Err(err) = Host::new().plugin("security-headers").config(config).load() else {
            panic!("{config}: the plugin accepted it");
        };
        let expected = "palisade security-headers: invalid configuration: ";
        let line = err.logs.iter().find(|e| e.level == LogLevel::Error && e.message.starts_with(expected));
        let line = line.unwrap_or_else(|| panic!("{config}: no config error logged: {err}"));
        assert!(line.message[expected.len()..].starts_with(field), "{config}: got {}", line.message);
    }
}

#[test]
fn strict_preset_on_every_upstream_response_by_default() {
    let host = Host::new();
    for plugin in [load(&host, "{}"), host.plugin("security-headers").load().unwrap()] {
        let body = "x".repeat(1000);
        let client = through(
            &plugin,
            Request::get("/api"),
            Response::status(201)
                .header("content-type", "text/plain")
                .header("content-length", "1000")
                .header("cache-control", "public")
                .header("x-frame-options", "SAMEORIGIN")
                .body(&body),
        );
        assert_eq!(client.status(), 201);
        for (name, value) in STRICT {
            assert_eq!(values(&client, name), [value], "{name}");
        }
        // Never touches the body nor its framing; no CORS without a cors block.
        assert_eq!(client.body_text(), body);
        assert_eq!(client.header("content-length").as_deref(), Some("1000"));
        assert_eq!(client.header("content-type").as_deref(), Some("text/plain"));
        assert!(CORS_NAMES.iter().chain(&["vary"]).all(|name| !client.headers.contains(name)));
    }
    assert_eq!(host.metric(DECORATED), Some(2));
}

#[test]
fn web_and_none_presets() {
    let host = Host::new();
    let web = load(&host, r#"{"default": {"preset": "web"}}"#);
    let client = through(&web, Request::get("/"), Response::ok().header("cache-control", "max-age=60"));
    for (name, value) in WEB {
        assert_eq!(values(&client, name), [value], "{name}");
    }
    assert_eq!(client.header("cache-control").as_deref(), Some("max-age=60"), "pages keep their caching");
    assert!(!client.headers.contains("cross-origin-embedder-policy"));
    // An upstream CSP with a nonce wins over the web preset's (set_if_absent).
    let nonce = "script-src 'nonce-abc'";
    let client = through(&web, Request::get("/"), Response::ok().header("content-security-policy", nonce));
    assert_eq!(values(&client, "content-security-policy"), [nonce]);
    assert_ne!(nonce, WEB_CSP);

    let none = load(&host, r#"{"default": {"preset": "none"}}"#);
    let client = through(&none, Request::get("/"), Response::ok().header("server", "x").header("x-custom", "1"));
    assert!(PRESET_NAMES.iter().all(|name| !client.headers.contains(name)));
    assert!(!client.headers.contains("server"), "leaky headers are still removed");
    assert_eq!(client.header("x-custom").as_deref(), Some("1"));
}

#[test]
fn header_modes_set_set_if_absent_append_remove() {
    let host = Host::new();
    let config = r#"{"default": {"preset": "none", "headers": [
        {"name": "X-Set", "value": "ours"},
        {"name": "x-if-absent", "value": "default", "mode": "set_if_absent"},
        {"name": "x-if-absent-2", "value": "default", "mode": "set_if_absent"},
        {"name": "x-append", "value": "ours", "mode": "append"},
        {"name": "x-remove", "mode": "remove"},
        {"name": "permissions-policy", "value": "camera=(self)"}
    ]}}"#;
    let plugin = load(&host, config);
    let client = through(
        &plugin,
        Request::get("/"),
        Response::ok()
            .header("x-set", "theirs-1")
            .header("x-set", "theirs-2")
            .header("x-if-absent", "theirs")
            .header("x-append", "theirs")
            .header("x-remove", "a")
            .header("x-remove", "b"),
    );
    assert_eq!(values(&client, "x-set"), ["ours"], "set replaces every upstream value");
    assert_eq!(values(&client, "x-if-absent"), ["theirs"]);
    assert_eq!(values(&client, "x-if-absent-2"), ["default"]);
    assert_eq!(values(&client, "x-append"), ["theirs", "ours"]);
    assert!(!client.headers.contains("x-remove"));
    assert_eq!(values(&client, "permissions-policy"), ["camera=(self)"]);
    assert_ne!(PERMISSIONS_POLICY, "camera=(self)");
}

#[test]
fn leaky_headers_removed_unless_listed_otherwise() {
    let host = Host::new();
    let leaky = [
        "server",
        "x-powered-by",
        "x-aspnet-version",
        "x-aspnetmvc-version",
        "x-php-version",
        "x-generator",
        "x-generated-by",
        "x-cf-powered-by",
        "x-server-powered-by",
        "x-powered-cms",
        "x-sourcemap",
        "sourcemap",
        "x-envoy-upstream-service-time",
    ];
    let upstream =
        || leaky.iter().fold(Response::ok().header("x-keep", "1"), |r, name| r.header(&name.to_ascii_uppercase(), "v"));
    let default = load(&host, "{}");
    let client = through(&default, Request::get("/"), upstream());
    for name in leaky {
        assert!(!client.headers.contains(name), "{name} not removed");
    }
    assert_eq!(client.header("x-keep").as_deref(), Some("1"));

    let custom = load(&host, r#"{"default": {"leaky_headers": ["x-keep"]}}"#);
    let client = through(&custom, Request::get("/"), upstream());
    assert!(!client.headers.contains("x-keep"));
    assert_eq!(client.header("server").as_deref(), Some("v"), "a custom list replaces the built-in one");

    let keep_all = load(&host, r#"{"default": {"preset": "none", "leaky_headers": []}}"#);
    let client = through(&keep_all, Request::get("/"), upstream());
    assert!(leaky.iter().all(|name| client.headers.contains(name)));
    assert_eq!(host.metric(DECORATED), Some(2), "nothing to change is not counted");

    // A rule for a leaky name replaces its removal.
    let ruled = load(&host, r#"{"default": {"headers": [{"name": "server", "value": "palisade"}]}}"#);
    let client = through(&ruled, Request::get("/"), upstream());
    assert_eq!(values(&client, "server"), ["palisade"]);
    assert!(!client.headers.contains("x-powered-by"));
}

#[test]
fn cors_any_origin_answers_star_without_vary_even_to_null() {
    let host = Host::new();
    let plugin = load(&host, r#"{"default": {"cors": {"allow_origins": ["*"], "expose_headers": ["etag"]}}}"#);
    for origin in ["null", "https://anyone.test"] {
        let client = through(&plugin, Request::get("/").header("origin", origin), Response::ok());
        assert_eq!(client.header("access-control-allow-origin").as_deref(), Some("*"), "{origin}");
        assert_eq!(client.header("access-control-expose-headers").as_deref(), Some("etag"));
        assert!(!client.headers.contains("access-control-allow-credentials"));
        assert!(!client.headers.contains("vary"));
    }
    let client = through(&plugin, Request::get("/"), Response::ok());
    assert!(!client.headers.contains("access-control-allow-origin"), "no Origin, no CORS header");
    assert_eq!(host.metric("palisade.security_headers.cors_requests_allowed"), Some(2));
}

#[test]
fn preflights_are_answered_here_and_decorated_once() {
    let host = Host::new();
    let plugin = load(
        &host,
        r#"{"routes": [{"name": "api", "match": {"path": {"prefix": "/api/"}},
            "policy": {"cors": {"allow_origins": ["https://app.example.com"], "allow_methods": ["GET", "PUT"],
                                "allow_headers": ["content-type"], "max_age": 60}}}]}"#,
    );
    let preflight = |origin: &str, method: &str| {
        Request::new("OPTIONS", "/api/items")
            .header("origin", origin)
            .header("access-control-request-method", method)
            .header("x-request-id", "req-1")
            .property(&["source", "address"], "192.0.2.7:5000")
    };

    let exchange = plugin.send(preflight("https://app.example.com", "PUT"));
    assert_eq!(exchange.verdict(), Verdict::LocalReply(204));
    assert!(exchange.upstream().is_none(), "a preflight never reaches the upstream");
    let reply = exchange.local_reply().unwrap();
    assert_eq!((reply.sent_by.as_str(), reply.details.as_str()), ("security-headers", "palisade_cors_preflight"));
    let client = exchange.client().unwrap();
    assert_eq!(client.status(), 204);
    assert!(client.body.is_empty());
    // The response phase ran on the filter's own answer: the preset once, CORS and Vary once.
    for (name, value) in STRICT {
        assert_eq!(values(client, name), [value], "{name}");
    }
    for (name, value) in [
        ("access-control-allow-origin", "https://app.example.com"),
        ("access-control-allow-methods", "GET, PUT"),
        ("access-control-allow-headers", "content-type"),
        ("access-control-max-age", "60"),
        ("vary", cases::PREFLIGHT_VARY),
    ] {
        assert_eq!(values(client, name), [value], "{name}");
    }
    assert!(exchange.logs().iter().all(|e| !e.message.contains("\"audit\"")), "allowed preflights are not audited");

    let exchange = plugin.send(preflight("https://evil.example", "GET"));
    assert_eq!(exchange.verdict(), Verdict::LocalReply(403));
    assert!(exchange.upstream().is_none());
    assert_eq!(exchange.local_reply().unwrap().details, "palisade_cors_preflight_denied");
    let client = exchange.client().unwrap();
    let body: serde_json::Value = serde_json::from_slice(&client.body).unwrap();
    assert_eq!(body, serde_json::json!({"error": "cors_preflight_denied", "message": "origin not allowed"}));
    assert_eq!(client.header("content-type").as_deref(), Some("application/json"));
    assert!(CORS_NAMES.iter().all(|name| !client.headers.contains(name)));
    assert_eq!(values(client, "strict-transport-security"), ["max-age=31536000; includeSubDomains"]);
    let audit = exchange.logs().into_iter().find(|e| e.message.contains("\"audit\":\"palisade\"")).unwrap();
    assert_eq!(audit.level, LogLevel::Info);
    let audit: serde_json::Value = serde_json::from_str(&audit.message).unwrap();
    for (field, value) in [
        ("filter", "security-headers"),
        ("decision", "deny"),
        ("reason", "cors_origin_not_allowed"),
        ("rule", "api"),
        ("method", "OPTIONS"),
        ("path", "/api/items"),
        ("source", "192.0.2.7"),
        ("request_id", "req-1"),
    ] {
        assert_eq!(audit[field], value, "{field}");
    }
    assert_eq!(audit["status"], 403);

    let reason = |method: &str, extra: Option<&str>| {
        let mut request = preflight("https://app.example.com", method);
        if let Some(headers) = extra {
            request = request.header("access-control-request-headers", headers);
        }
        let exchange = plugin.send(request);
        let line = exchange.logs().into_iter().find(|e| e.message.contains("\"audit\"")).unwrap();
        serde_json::from_str::<serde_json::Value>(&line.message).unwrap()["reason"].clone()
    };
    assert_eq!(reason("DELETE", None), "cors_method_not_allowed");
    assert_eq!(reason("GET", Some("Content-Type, x-admin")), "cors_headers_not_allowed");

    // A preflight outside the cors route goes to the upstream untouched.
    let exchange = plugin.send(
        Request::new("OPTIONS", "/other")
            .header("origin", "https://evil.example")
            .header("access-control-request-method", "GET"),
    );
    assert_eq!(exchange.verdict(), Verdict::Forwarded);
    assert_eq!(exchange.upstream().unwrap().header(":method").as_deref(), Some("OPTIONS"));

    assert_eq!(host.metric("palisade.security_headers.preflights_allowed"), Some(1));
    assert_eq!(host.metric("palisade.security_headers.preflights_denied"), Some(3));
    assert_eq!(host.metric(DECORATED), Some(4), "every local answer is decorated; the forwarded one got no response");
}

#[test]
fn a_later_filters_local_reply_carries_the_headers_only_when_security_headers_is_first() {
    let host = Host::new();
    let sh = load(
        &host,
        r#"{"default": {"cors": {"allow_origins": ["https://app.example.com"], "allow_credentials": true}}}"#,
    );
    let jwt = host.plugin("jwt-authn").config(JWT_CONFIG).load().unwrap();
    let request = || Request::get("/private/orders").header("origin", "https://app.example.com");

    let exchange = host.chain(&[&sh, &jwt]).send(request());
    assert_eq!(exchange.verdict(), Verdict::LocalReply(401));
    assert_eq!(exchange.local_reply().unwrap().sent_by, "jwt-authn");
    let client = exchange.client().unwrap();
    assert_eq!(client.status(), 401);
    for (name, value) in STRICT {
        assert_eq!(values(client, name), [value], "{name}");
    }
    assert_eq!(client.header("access-control-allow-origin").as_deref(), Some("https://app.example.com"));
    assert_eq!(client.header("access-control-allow-credentials").as_deref(), Some("true"));
    assert_eq!(values(client, "vary"), ["Origin"]);
    assert_eq!(client.header("www-authenticate").as_deref(), Some("Bearer realm=\"api.example.com\""));
    let body: serde_json::Value = serde_json::from_slice(&client.body).unwrap();
    assert_eq!(body["error"], "unauthorized");
    assert_eq!(host.metric(DECORATED), Some(1));
    assert_eq!(host.metric("palisade.security_headers.cors_requests_allowed"), Some(1));

    // After jwt-authn, security-headers never sees the 401 (Envoy runs the response callbacks
    // of the replying filter and those before it only): hence "place it first".
    let exchange = host.chain(&[&jwt, &sh]).send(request());
    let client = exchange.client().unwrap();
    assert_eq!(client.status(), 401);
    assert!(PRESET_NAMES.iter().chain(&CORS_NAMES).all(|name| !client.headers.contains(name)));
    assert_eq!(host.metric(DECORATED), Some(1));

    // A request jwt-authn lets through is decorated on the way back as usual.
    let mut exchange = host.chain(&[&sh, &jwt]).send(Request::get("/public"));
    assert_eq!(exchange.verdict(), Verdict::Forwarded);
    exchange.respond(Response::ok().header("server", "x")).unwrap();
    let client = exchange.client().unwrap();
    assert!(!client.headers.contains("server"));
    assert_eq!(values(client, "x-frame-options"), ["DENY"]);
}

#[test]
fn per_route_rules_first_match_wins_and_nothing_is_inherited() {
    let host = Host::new();
    let plugin = load(
        &host,
        r#"{"default": {"preset": "strict", "headers": [{"name": "x-policy", "value": "default"}],
                        "cors": {"allow_origins": ["https://app.example.com"]}},
            "routes": [
              {"name": "put", "match": {"path": {"prefix": "/api/"}, "methods": ["PUT"]},
               "policy": {"preset": "none", "headers": [{"name": "x-policy", "value": "put"}]}},
              {"name": "api", "match": {"path": {"prefix": "/api/"}},
               "policy": {"preset": "web", "headers": [{"name": "x-policy", "value": "api"}]}},
              {"name": "by-route", "match": {"route_name": "admin"},
               "policy": {"preset": "none", "headers": [{"name": "x-policy", "value": "by-route"}]}},
              {"name": "hosts", "match": {"host": "*.example.net"},
               "policy": {"preset": "none", "headers": [{"name": "x-policy", "value": "hosts"}]}},
              {"name": "exact", "match": {"path": {"exact": "/health"}},
               "policy": {"preset": "none", "headers": [{"name": "x-policy", "value": "exact"}]}},
              {"name": "regex", "match": {"path": {"regex": "/v[0-9]+/.*"}},
               "policy": {"preset": "none", "headers": [{"name": "x-policy", "value": "regex"}]}}
            ]}"#,
    );
    let policy = |request: Request| {
        let client = through(&plugin, request.header("origin", "https://app.example.com"), Response::ok());
        (client.header("x-policy").unwrap(), client)
    };
    assert_eq!(policy(Request::new("PUT", "/api/x")).0, "put");
    let (name, client) = policy(Request::get("/api/x"));
    assert_eq!(name, "api");
    assert_eq!(client.header("referrer-policy").as_deref(), Some("strict-origin-when-cross-origin"));
    assert!(!client.headers.contains("access-control-allow-origin"), "a route inherits no cors from default");
    assert!(!client.headers.contains("vary"));
    assert_eq!(policy(Request::get("/x").property(&["xds", "route_name"], "admin")).0, "by-route");
    assert_eq!(policy(Request::get("/x").set_header(":authority", "a.b.example.net:8443")).0, "hosts");
    assert_eq!(policy(Request::get("/x").set_header(":authority", "example.net")).0, "default");
    assert_eq!(policy(Request::get("/health?full=1")).0, "exact");
    assert_eq!(policy(Request::get("/health/x")).0, "default");
    assert_eq!(policy(Request::get("/v2/items")).0, "regex");
    assert_eq!(policy(Request::get("/v2")).0, "default");
    let (name, client) = policy(Request::get("/other"));
    assert_eq!(name, "default");
    assert_eq!(client.header("access-control-allow-origin").as_deref(), Some("https://app.example.com"));
    assert_eq!(host.metric("palisade.security_headers.cors_requests_allowed"), Some(4));
    assert_eq!(host.metric(DECORATED), Some(10));
}

#[test]
fn hostile_traffic_never_traps() {
    let host = Host::new();
    let example = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../envoy-config/examples/security-headers.json"),
    )
    .unwrap();
    let documented = load(&host, &example);
    traffic::assert_never_traps(&host.chain(&[&documented]), 7, 300).unwrap();
    let differential = load(&host, cases::CONFIG);
    let jwt = host.plugin("jwt-authn").config(JWT_CONFIG).load().unwrap();
    traffic::assert_never_traps(&host.chain(&[&differential, &jwt]), 11, 300).unwrap();
    assert!(documented.broken().is_none() && differential.broken().is_none());
}
