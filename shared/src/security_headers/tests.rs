//! Behaviour of the whole filter core: presets, modes, routes, CORS, config errors.

use super::*;
use crate::http::Headers;

const STRICT: [(&str, &str); 12] = [
    ("cache-control", "no-store"),
    ("content-security-policy", "default-src 'none'; frame-ancestors 'none'"),
    ("cross-origin-embedder-policy", "require-corp"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    ("permissions-policy", preset::PERMISSIONS_POLICY),
    ("referrer-policy", "no-referrer"),
    ("strict-transport-security", "max-age=31536000; includeSubDomains"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("x-permitted-cross-domain-policies", "none"),
    ("x-xss-protection", "0"),
];

const WEB: [(&str, &str); 10] = [
    (
        "content-security-policy",
        "default-src 'self'; form-action 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'self'; \
         upgrade-insecure-requests",
    ),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    ("permissions-policy", preset::PERMISSIONS_POLICY),
    ("referrer-policy", "strict-origin-when-cross-origin"),
    ("strict-transport-security", "max-age=31536000; includeSubDomains"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("x-permitted-cross-domain-policies", "none"),
    ("x-xss-protection", "0"),
];

fn filter(json: &str) -> SecurityHeaders {
    SecurityHeaders::from_json(json.as_bytes()).unwrap()
}

fn request(method: &str, path: &str, headers: &[(&str, &str)]) -> RequestView {
    RequestView {
        method: method.into(),
        path: path.into(),
        authority: "api.example.com".into(),
        scheme: "https".into(),
        headers: Headers::from_pairs(headers.iter().copied()),
        ..RequestView::default()
    }
}

/// An upstream response that leaks its stack.
fn upstream(extra: &[(&str, &str)]) -> ResponseView {
    let mut headers = Headers::from_pairs([
        (":status", "200"),
        ("content-type", "application/json"),
        ("content-length", "2"),
        ("server", "gunicorn"),
        ("x-powered-by", "Express"),
        ("x-aspnet-version", "4.0"),
        ("x-envoy-upstream-service-time", "3"),
    ]);
    for (name, value) in extra {
        headers.add(name, *value);
    }
    ResponseView { status: 200, headers }
}

/// The response as the client sees it after the filter.
fn respond(filter: &SecurityHeaders, request: &RequestView, response: ResponseView) -> Headers {
    let decision = filter.on_request(request);
    assert_eq!(decision.verdict, Verdict::pass());
    decorate(&decision.plan, response)
}

fn decorate(plan: &ResponsePlan, mut response: ResponseView) -> Headers {
    let decoration = plan.decorate(&response);
    response.headers.apply(decoration.security);
    response.headers.apply(&decoration.cors);
    response.headers
}

fn pairs(headers: &Headers) -> Vec<(&str, &str)> {
    headers.iter().collect()
}

fn with_base(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut out = vec![(":status", "200"), ("content-type", "application/json"), ("content-length", "2")];
    out.extend_from_slice(extra);
    out
}

#[test]
fn empty_config_is_the_strict_preset_without_leaky_headers() {
    let headers = respond(&filter(""), &request("GET", "/", &[]), upstream(&[]));
    assert_eq!(pairs(&headers), with_base(&STRICT));
}

#[test]
fn web_preset_keeps_an_upstream_csp_and_caching() {
    let filter = filter(r#"{"default":{"preset":"web"}}"#);
    let headers = respond(&filter, &request("GET", "/", &[]), upstream(&[]));
    assert_eq!(pairs(&headers), with_base(&WEB));

    let own_csp = "script-src 'nonce-r4nd0m'";
    let headers = respond(
        &filter,
        &request("GET", "/", &[]),
        upstream(&[("content-security-policy", own_csp), ("cache-control", "max-age=60")]),
    );
    assert_eq!(headers.get("content-security-policy"), Some(own_csp));
    assert_eq!(headers.get("cache-control"), Some("max-age=60"));
}

#[test]
fn none_preset_only_removes_leaky_headers_and_leaky_list_is_configurable() {
    let headers = respond(&filter(r#"{"default":{"preset":"none"}}"#), &request("GET", "/", &[]), upstream(&[]));
    assert_eq!(pairs(&headers), with_base(&[]));

    let filter = filter(r#"{"default":{"preset":"none","leaky_headers":["X-Powered-By","x-debug"]}}"#);
    let headers = respond(&filter, &request("GET", "/", &[]), upstream(&[("x-debug", "1")]));
    assert_eq!(
        pairs(&headers),
        with_base(&[("server", "gunicorn"), ("x-aspnet-version", "4.0"), ("x-envoy-upstream-service-time", "3")])
    );
    let filter = self::filter(r#"{"default":{"preset":"none","leaky_headers":[]}}"#);
    assert_eq!(respond(&filter, &request("GET", "/", &[]), upstream(&[])), upstream(&[]).headers);
}

#[test]
fn every_header_mode() {
    let filter = filter(
        r#"{"default":{"preset":"none","leaky_headers":[],"headers":[
            {"name":"X-Set","value":"ours"},
            {"name":"x-if-absent","value":"ours","mode":"set_if_absent"},
            {"name":"x-if-absent-kept","value":"ours","mode":"set_if_absent"},
            {"name":"link","value":"</a>; rel=preload","mode":"append"},
            {"name":"x-gone","mode":"remove"}]}}"#,
    );
    let response = ResponseView {
        status: 200,
        headers: Headers::from_pairs([
            ("x-set", "theirs"),
            ("x-set", "theirs-2"),
            ("x-if-absent-kept", "theirs"),
            ("link", "</b>; rel=preload"),
            ("x-gone", "1"),
            ("x-gone", "2"),
        ]),
    };
    let headers = respond(&filter, &request("GET", "/", &[]), response);
    assert_eq!(
        pairs(&headers),
        [
            ("x-if-absent-kept", "theirs"),
            ("link", "</b>; rel=preload"),
            ("x-set", "ours"),
            ("x-if-absent", "ours"),
            ("link", "</a>; rel=preload"),
        ]
    );
}

#[test]
fn structured_fields_replace_preset_values_in_place() {
    let filter = filter(
        r#"{"default":{"preset":"strict","hsts":{"max_age":63072000,"preload":true},
            "csp":{"default-src":["'none'"],"frame-ancestors":["'none'"],"report-to":["csp"]},
            "csp_report_only":{"default-src":["'self'"]}}}"#,
    );
    let headers = respond(&filter, &request("GET", "/", &[]), upstream(&[]));
    let mut expected = STRICT.to_vec();
    expected[1].1 = "default-src 'none'; frame-ancestors 'none'; report-to csp";
    expected[7].1 = "max-age=63072000; includeSubDomains; preload";
    expected.push(("content-security-policy-report-only", "default-src 'self'"));
    assert_eq!(pairs(&headers), with_base(&expected));

    let none = self::filter(r#"{"default":{"preset":"none","leaky_headers":[],"hsts":{}}}"#);
    let headers = respond(&none, &request("GET", "/", &[]), ResponseView::default());
    assert_eq!(pairs(&headers), [("strict-transport-security", "max-age=31536000; includeSubDomains")]);
}

#[test]
fn a_rule_replaces_the_preset_entry_and_the_leaky_removal() {
    let filter = filter(
        r#"{"default":{"headers":[{"name":"X-Frame-Options","value":"SAMEORIGIN"},
            {"name":"server","value":"palisade"},{"name":"cache-control","mode":"set_if_absent","value":"no-cache"}]}}"#,
    );
    let headers = respond(&filter, &request("GET", "/", &[]), upstream(&[("cache-control", "max-age=5")]));
    assert_eq!(headers.get_all("x-frame-options").collect::<Vec<_>>(), ["SAMEORIGIN"]);
    assert_eq!(headers.get_all("server").collect::<Vec<_>>(), ["palisade"]);
    assert_eq!(headers.get("cache-control"), Some("max-age=5"));
    assert_eq!(headers.get("x-powered-by"), None);
    assert_eq!(headers.len(), 3 + STRICT.len() + 1, "base, strict (cache-control upstream's), server");
}

#[test]
fn routes_first_match_wins_and_default_applies_otherwise() {
    let filter = filter(
        r#"{"default":{"preset":"strict"},"routes":[
            {"name":"site","match":{"path":{"prefix":"/app/"},"methods":["GET"]},"policy":{"preset":"web"}},
            {"match":{"route_name":"public"},"policy":{"preset":"none"}},
            {"match":{"host":"*.example.org"},"policy":{"preset":"none","leaky_headers":[]}},
            {"match":{"path":{"regex":"/app/.*"}},"policy":{"headers":[{"name":"x-route","value":"4"}]}}]}"#,
    );
    let csp =
        |req: &RequestView| respond(&filter, req, upstream(&[])).get("content-security-policy").map(str::to_string);
    assert_eq!(csp(&request("GET", "/app/x", &[])).as_deref(), Some(WEB[0].1));
    assert_eq!(csp(&request("GET", "/api", &[])).as_deref(), Some(STRICT[1].1));
    let post = respond(&filter, &request("POST", "/app/x", &[]), upstream(&[]));
    assert_eq!(post.get("x-route"), Some("4"));
    let mut named = request("GET", "/api", &[]);
    named.route_name = Some("public".into());
    assert_eq!(pairs(&respond(&filter, &named, upstream(&[]))), with_base(&[]));
    let mut org = request("GET", "/api", &[]);
    org.authority = "www.example.org:443".into();
    assert_eq!(respond(&filter, &org, upstream(&[])), upstream(&[]).headers);
}

const CORS: &str = r#"{"default":{"preset":"strict","cors":{
    "allow_origins":["https://app.example.com","https://*.example.org"],
    "allow_origin_regexes":["https://pr-[0-9]+\\.preview\\.example\\.net"],
    "allow_methods":["GET","POST","PUT"],"allow_headers":["authorization","content-type"],
    "expose_headers":["x-request-id"],"allow_credentials":true,"max_age":600}},
    "routes":[{"match":{"path":{"prefix":"/public/"}},"policy":{"cors":{"allow_origins":["*"]}}},
              {"match":{"path":{"prefix":"/nocors/"}},"policy":{}}]}"#;

type CorsCase<'a> = (&'a str, &'a str, Option<&'a str>, CorsOutcome, Option<&'a str>, Option<&'a str>);

#[test]
fn cors_matrix_for_actual_requests() {
    let filter = filter(CORS);
    // path, origin, credentials, outcome, allow-origin, vary
    let cases: [CorsCase; 9] = [
        (
            "/api",
            "https://app.example.com",
            Some("true"),
            CorsOutcome::Allowed,
            Some("https://app.example.com"),
            Some("Origin"),
        ),
        (
            "/api",
            "https://a.b.example.org",
            Some("true"),
            CorsOutcome::Allowed,
            Some("https://a.b.example.org"),
            Some("Origin"),
        ),
        (
            "/api",
            "https://pr-7.preview.example.net",
            Some("true"),
            CorsOutcome::Allowed,
            Some("https://pr-7.preview.example.net"),
            Some("Origin"),
        ),
        ("/api", "https://example.org", None, CorsOutcome::Denied, None, Some("Origin")),
        ("/api", "https://evil.test", None, CorsOutcome::Denied, None, Some("Origin")),
        ("/api", "null", None, CorsOutcome::Denied, None, Some("Origin")),
        ("/public/x", "https://evil.test", None, CorsOutcome::Allowed, Some("*"), None),
        ("/public/x", "null", None, CorsOutcome::Allowed, Some("*"), None),
        ("/nocors/x", "https://app.example.com", None, CorsOutcome::NotCors, None, None),
    ];
    for (path, origin, credentials, outcome, allow_origin, vary) in cases {
        let req = request("GET", path, &[("origin", origin)]);
        let decision = filter.on_request(&req);
        assert_eq!(decision.cors, outcome, "{path} {origin}");
        assert_eq!(decision.verdict, Verdict::pass());
        let headers = decorate(&decision.plan, upstream(&[]));
        assert_eq!(headers.get("access-control-allow-origin"), allow_origin, "{path} {origin}");
        assert_eq!(headers.get("access-control-allow-credentials"), credentials, "{path} {origin}");
        assert_eq!(headers.get("vary"), vary, "{path} {origin}");
        if allow_origin.is_none() {
            assert!(!headers.iter().any(|(name, _)| name.starts_with("access-control-")), "{path} {origin}");
        }
        assert_eq!(headers.get("x-frame-options"), Some("DENY"), "security headers on every CORS response");
    }
}

#[test]
fn upstream_cors_headers_never_reach_a_disallowed_origin() {
    let filter = filter(CORS);
    let sneaky =
        [("access-control-allow-origin", "*"), ("access-control-allow-credentials", "true"), ("vary", "Accept")];
    let denied = respond(&filter, &request("GET", "/api", &[("origin", "https://evil.test")]), upstream(&sneaky));
    assert!(!denied.iter().any(|(name, _)| name.starts_with("access-control-")));
    assert_eq!(denied.get_all("vary").collect::<Vec<_>>(), ["Accept", "Origin"]);

    let no_origin = respond(&filter, &request("GET", "/api", &[]), upstream(&sneaky));
    assert!(!no_origin.iter().any(|(name, _)| name.starts_with("access-control-")));
    assert_eq!(no_origin.get_all("vary").collect::<Vec<_>>(), ["Accept", "Origin"], "vary even without Origin");

    let allowed = respond(
        &filter,
        &request("GET", "/api", &[("origin", "https://app.example.com")]),
        upstream(&[("vary", "origin"), ("access-control-allow-origin", "*")]),
    );
    assert_eq!(allowed.get_all("access-control-allow-origin").collect::<Vec<_>>(), ["https://app.example.com"]);
    assert_eq!(allowed.get("access-control-expose-headers"), Some("x-request-id"));
    assert_eq!(allowed.get_all("vary").collect::<Vec<_>>(), ["origin"], "no duplicate Vary");
}

#[test]
fn preflights_are_answered_locally_and_not_decorated_twice() {
    let filter = filter(CORS);
    let preflight = |path: &str, origin: &str, method: &str, headers: &str| {
        let mut pairs = vec![("origin", origin), ("access-control-request-method", method)];
        if !headers.is_empty() {
            pairs.push(("access-control-request-headers", headers));
        }
        filter.on_request(&request("OPTIONS", path, &pairs))
    };

    let allowed = preflight("/api", "https://app.example.com", "PUT", "Authorization");
    assert_eq!(allowed.cors, CorsOutcome::PreflightAllowed);
    let Verdict::Respond(reply) = &allowed.verdict else { panic!("expected a reply") };
    assert_eq!(reply.status, 204);
    assert_eq!(allowed.audit_event(&request("OPTIONS", "/api", &[])), None);
    // Envoy runs this filter's response phase on its own reply: security headers only.
    let mut response = ResponseView { status: 204, headers: Headers::from_pairs(reply.headers.clone()) };
    response.headers.add(":status", "204");
    let decoration = allowed.plan.decorate(&response);
    assert!(decoration.cors.is_empty());
    let headers = decorate(&allowed.plan, response);
    assert_eq!(headers.get_all("access-control-allow-origin").collect::<Vec<_>>(), ["https://app.example.com"]);
    assert_eq!(headers.get_all("vary").count(), 1);
    assert_eq!(headers.get("x-content-type-options"), Some("nosniff"));

    let cases = [
        ("/api", "https://evil.test", "GET", "", PreflightDenial::Origin),
        ("/api", "null", "GET", "", PreflightDenial::Origin),
        ("/api", "https://app.example.com", "DELETE", "", PreflightDenial::Method),
        ("/api", "https://app.example.com", "POST", "x-admin", PreflightDenial::Headers),
    ];
    for (path, origin, method, headers, denial) in cases {
        let decision = preflight(path, origin, method, headers);
        assert_eq!(decision.cors, CorsOutcome::PreflightDenied(denial), "{origin} {method} {headers}");
        let Verdict::Respond(reply) = &decision.verdict else { panic!("expected a reply") };
        assert_eq!(reply.status, 403);
        let event = decision.audit_event(&request("OPTIONS", path, &[("x-request-id", "r1")])).unwrap();
        assert_eq!(event.reason, denial.reason());
        assert_eq!(event.status, Some(403));
        assert_eq!(event.filter, "security-headers");
        assert_eq!(event.request_id.as_deref(), Some("r1"));
    }

    let star = preflight("/public/x", "null", "GET", "");
    assert_eq!(star.cors, CorsOutcome::PreflightAllowed);
    // A preflight on a route without cors goes to the upstream.
    let passed = preflight("/nocors/x", "https://app.example.com", "GET", "");
    assert_eq!((passed.verdict, passed.cors), (Verdict::pass(), CorsOutcome::NotCors));
    // OPTIONS without Access-Control-Request-Method is an ordinary request.
    let plain = filter.on_request(&request("OPTIONS", "/api", &[("origin", "https://app.example.com")]));
    assert_eq!((plain.verdict, plain.cors), (Verdict::pass(), CorsOutcome::Allowed));
}

#[test]
fn local_replies_of_later_filters_are_decorated_like_upstream_responses() {
    let filter = filter(CORS);
    let decision = filter.on_request(&request("GET", "/api", &[("origin", "https://app.example.com")]));
    let unauthorized = ResponseView {
        status: 401,
        headers: Headers::from_pairs([(":status", "401"), ("www-authenticate", "Bearer")]),
    };
    let headers = decorate(&decision.plan, unauthorized);
    assert_eq!(headers.get("strict-transport-security"), Some("max-age=31536000; includeSubDomains"));
    assert_eq!(headers.get("access-control-allow-origin"), Some("https://app.example.com"));

    let fallback = decorate(&filter.fallback_plan(), ResponseView::default());
    assert_eq!(fallback.get("x-frame-options"), Some("DENY"));
    assert_eq!(fallback.get("vary"), Some("Origin"));
    assert!(!fallback.iter().any(|(name, _)| name.starts_with("access-control-")));
}

#[test]
fn config_errors_name_the_field() {
    let cases = [
        (r#"{"defaults":{}}"#, "defaults: unknown field `defaults`, expected `default` or `routes`"),
        (r#"{"default":{"preset":"paranoid"}}"#, "default.preset: unknown variant `paranoid`, expected one of `strict`, `web`, `none`"),
        (r#"{"default":{"headers":[{"name":"x-a"}]}}"#, "default.headers[0].value: required unless mode is remove"),
        (r#"{"default":{"headers":[{"name":"x-a","value":"1","mode":"remove"}]}}"#, "default.headers[0].value: not allowed with mode remove"),
        (r#"{"default":{"headers":[{"name":"x-a","value":"1","mode":"replace"}]}}"#, "default.headers[0].mode: unknown variant `replace`, expected one of `set`, `set_if_absent`, `append`, `remove`"),
        (r#"{"default":{"headers":[{"name":"x-a","value":"a\r\nset-cookie: x"}]}}"#, "default.headers[0].value: must be visible ASCII (no control characters, CR or LF)"),
        (r#"{"default":{"headers":[{"name":"Content-Length","value":"0"}]}}"#, "default.headers[0].name: content-length frames the message; this filter never changes bodies"),
        (r#"{"default":{"headers":[{"name":"access-control-allow-origin","value":"*"}]}}"#, "default.headers[0].name: access-control-allow-origin is managed by the cors block"),
        (r#"{"default":{"headers":[{"name":":status","value":"200"}]}}"#, "default.headers[0].name: must be an HTTP header name (a token, no pseudo-header)"),
        (r#"{"default":{"hsts":{},"headers":[{"name":"Strict-Transport-Security","value":"max-age=1"}]}}"#, "default.headers[0].name: strict-transport-security is already set by hsts"),
        (r#"{"default":{"csp":{"default-src":["'self'"]},"headers":[{"name":"content-security-policy","mode":"remove"}]}}"#, "default.headers[0].name: content-security-policy is already set by csp"),
        (r#"{"default":{"hsts":{"max_age":600,"preload":true}}}"#, "default.hsts.preload: requires max_age of at least 31536000 (one year)"),
        (r#"{"default":{"hsts":{"include_subdomains":false,"preload":true}}}"#, "default.hsts.preload: requires include_subdomains"),
        (r#"{"default":{"hsts":{"max_age":-1}}}"#, "default.hsts.max_age: invalid value: integer `-1`, expected u64"),
        (r#"{"default":{"csp":{"script-src":["unsafe-inline"]}}}"#, "default.csp.script-src[0]: must be quoted: 'unsafe-inline'"),
        (r#"{"default":{"csp_report_only":{}}}"#, "default.csp_report_only: must list at least one directive"),
        (r#"{"default":{"leaky_headers":["transfer-encoding"]}}"#, "default.leaky_headers[0]: transfer-encoding frames the message; this filter never changes bodies"),
        (r#"{"default":{"cors":{"allow_origins":["*"],"allow_credentials":true}}}"#, "default.cors.allow_credentials: cannot be combined with allow_origins \"*\""),
        (r#"{"routes":[{"policy":{}}]}"#, "routes[0]: missing field `match`"),
        (r#"{"routes":[{"match":{"path":{"prefix":"api"}}}]}"#, "routes[0].match.path.prefix: must start with /"),
        (r#"{"routes":[{"match":{},"policy":{"cors":{"allow_origins":["https://*.com"]}}}]}"#, "routes[0].policy.cors.allow_origins[0]: wildcard must be scheme://*.domain.tld[:port]"),
        (r#"{"routes":[{"match":{},"policy":{"preset":"web","presets":1}}]}"#, "routes[0].policy.presets: unknown field `presets`"),
    ];
    for (json, expected) in cases {
        let err = SecurityHeaders::from_json(json.as_bytes()).unwrap_err().to_string();
        assert!(err.starts_with(expected), "{json}\n got: {err}\nwant: {expected}");
    }
}

#[test]
fn the_example_config_compiles_and_routes_as_documented() {
    let filter = filter(include_str!("../../../envoy-config/examples/security-headers.json"));
    let asset =
        respond(&filter, &request("GET", "/static/app.js", &[("origin", "https://anyone.test")]), upstream(&[]));
    assert_eq!(asset.get("access-control-allow-origin"), Some("*"));
    assert_eq!(asset.get("cross-origin-resource-policy"), Some("cross-origin"));
    assert_eq!(asset.get("cache-control"), Some("public, max-age=86400"));
    let api = respond(&filter, &request("GET", "/v1/x", &[("origin", "https://ops.admin.example.com")]), upstream(&[]));
    assert_eq!(api.get("access-control-allow-origin"), Some("https://ops.admin.example.com"));
    assert_eq!(api.get("strict-transport-security"), Some("max-age=63072000; includeSubDomains; preload"));
}

#[test]
fn hostile_request_headers_never_panic_and_never_get_cors() {
    let filter = filter(CORS);
    let odd = [
        "",
        " ",
        "https://",
        "https://[",
        "https://[]",
        "https://]",
        "https://[::1]x",
        "://",
        "https://a:b:c",
        "https://\u{e9}.example.org",
        "https://a.example.org:",
        "https://a.example.org:65536",
        "https://*.example.org",
        "https://a.example.org/../",
        "https://a.example.org\0",
        "null null",
        "HTTPS://X.EXAMPLE.ORG:0",
    ];
    for origin in odd {
        for method in ["GET", "OPTIONS"] {
            let req = request(method, "/api", &[("origin", origin), ("access-control-request-method", "GET")]);
            let decision = filter.on_request(&req);
            assert!(matches!(decision.cors, CorsOutcome::Denied | CorsOutcome::PreflightDenied(_)), "{origin:?}");
            let response = match &decision.verdict {
                // The filter's own 403: exactly what it sent comes back through the response phase.
                Verdict::Respond(reply) => {
                    ResponseView { status: 403, headers: Headers::from_pairs(reply.headers.clone()) }
                }
                Verdict::Continue(_) => upstream(&[("access-control-allow-origin", origin)]),
            };
            let headers = decorate(&decision.plan, response);
            assert!(!headers.iter().any(|(name, _)| name.starts_with("access-control-")), "{origin:?}");
        }
    }
    let weird =
        request("OPTIONS", "/api", &[("origin", "https://app.example.com"), ("access-control-request-method", "")]);
    assert_eq!(filter.on_request(&weird).cors, CorsOutcome::PreflightDenied(PreflightDenial::Method));
}

#[test]
fn facts_the_filter_reads_follow_the_config() {
    assert!(!filter("{}").needs_route_name());
    assert!(!filter(r#"{"routes":[{"match":{"path":{"prefix":"/a"}},"policy":{}}]}"#).needs_route_name());
    assert!(filter(r#"{"routes":[{"match":{"route_name":"r"},"policy":{}}]}"#).needs_route_name());
    // Presets, leaky removals and rules name each header once, unless rules repeat a name.
    let plain = filter(r#"{"default":{"preset":"web","headers":[{"name":"x-a","value":"1"}]}}"#);
    assert!(plain.fallback_plan().decorate(&upstream(&[])).independent);
    let repeated = filter(
        r#"{"default":{"headers":[{"name":"x-a","value":"1","mode":"append"},{"name":"x-a","mode":"remove"}]}}"#,
    );
    assert!(!repeated.fallback_plan().decorate(&upstream(&[])).independent);
    // Appends only add: repeating a name in them keeps the operations independent.
    let appends = filter(
        r#"{"default":{"headers":[{"name":"x-a","value":"1","mode":"append"},{"name":"x-a","value":"2","mode":"append"}]}}"#,
    );
    assert!(appends.fallback_plan().decorate(&upstream(&[])).independent);
}

#[test]
fn only_refused_preflights_write_audit_lines() {
    let f = filter(r#"{"default":{"cors":{"allow_origins":["https://app.example.com"]}}}"#);
    let cases = [
        request("GET", "/", &[("origin", "https://app.example.com")]),
        request("GET", "/", &[("origin", "https://evil.example")]),
        request("OPTIONS", "/", &[("origin", "https://app.example.com"), ("access-control-request-method", "GET")]),
        request("OPTIONS", "/", &[("origin", "https://evil.example"), ("access-control-request-method", "GET")]),
    ];
    for request in cases {
        let decision = f.on_request(&request);
        assert_eq!(decision.writes_audit(), decision.audit_event(&request).is_some(), "{request:?}");
    }
    let denied = f.on_request(&request(
        "OPTIONS",
        "/",
        &[("origin", "https://evil.example"), ("access-control-request-method", "GET")],
    ));
    assert!(denied.writes_audit());
}
