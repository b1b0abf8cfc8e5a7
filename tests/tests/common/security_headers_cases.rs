//! The security-headers cases written once, as data, and run both through the wasmtime test host
//! (`host_security_headers.rs`) and through a real Envoy (`e2e_security_headers.rs`). Envoy and the
//! host must give every case the same client-visible result: that is how we know the host is
//! faithful.
//!
//! Both runs use the same chain: `security-headers` first, then `jwt-authn` (which answers 401
//! on `/private/` without a token), with [`CONFIG`] and [`JWT_CONFIG`]. A case is a request
//! (method, path, `Host`, headers), what the upstream answers (set through the echo's
//! `x-echo-status` / `x-echo-header` controls, which the host run reproduces), and what the
//! client must see: status, headers, body of local replies, whether the upstream was reached.
//!
//! Normalisation ([`Observed`]): header names lower-cased; values of one name kept in order;
//! dropped are the headers that frame the message or that Envoy's codec adds after the filters
//! ([`FRAMING_AND_CODEC`]: `date`, `content-length`, `transfer-encoding`, `connection`,
//! `keep-alive`); the value of `x-envoy-upstream-service-time` (added by Envoy's router to
//! upstream responses *before* the filters see them, which the host run reproduces) is masked,
//! since it is a duration. Bodies are compared for local replies only (an upstream response's
//! body is the echo's report, which holds Envoy's own request headers).
// Each test binary uses part of this module; a panic here is a failed assertion.
#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;

use palisade_tests::host::{Exchange, Request, Response, Verdict};

/// The security-headers configuration of the differential run: a `strict` default with CORS,
/// and routes by path prefix + method, host, Envoy route name, exact path and regex path.
pub const CONFIG: &str = r#"{
  "default": {
    "preset": "strict",
    "cors": {
      "allow_origins": ["https://app.example.com", "https://*.example.org"],
      "allow_origin_regexes": ["https://pr-[0-9]+\\.preview\\.example\\.com"],
      "allow_methods": ["GET", "POST", "PUT", "DELETE"],
      "allow_headers": ["authorization", "content-type"],
      "expose_headers": ["x-request-id"],
      "allow_credentials": true,
      "max_age": 600
    }
  },
  "routes": [
    {"name": "assets", "match": {"path": {"prefix": "/static/"}, "methods": ["GET"]},
     "policy": {"preset": "web",
                "headers": [{"name": "cache-control", "value": "public, max-age=86400", "mode": "set_if_absent"},
                            {"name": "cross-origin-resource-policy", "value": "cross-origin"}],
                "cors": {"allow_origins": ["*"], "allow_methods": ["GET"], "max_age": 86400}}},
    {"name": "site", "match": {"host": "www.example.com"},
     "policy": {"preset": "web",
                "hsts": {"max_age": 63072000, "preload": true},
                "csp": {"default-src": ["'self'"], "script-src": ["'self'", "https://cdn.example.com"],
                        "upgrade-insecure-requests": []},
                "csp_report_only": {"default-src": ["'self'"], "report-uri": ["/csp-reports"]},
                "headers": [{"name": "x-debug-token", "mode": "remove"},
                            {"name": "link", "value": "</site.css>; rel=preload", "mode": "append"},
                            {"name": "x-frame-options", "value": "SAMEORIGIN"}]}},
    {"name": "legacy", "match": {"route_name": "legacy"},
     "policy": {"preset": "none", "leaky_headers": ["x-powered-by"],
                "headers": [{"name": "x-legacy", "value": "1"}]}},
    {"name": "raw", "match": {"path": {"exact": "/raw"}}, "policy": {"preset": "none", "leaky_headers": []}},
    {"name": "reports", "match": {"path": {"regex": "/reports/[0-9]+"}},
     "policy": {"hsts": {"max_age": 0, "include_subdomains": false}}}
  ]
}"#;

/// jwt-authn after security-headers: a token is required under `/private/`, nowhere else.
pub const JWT_CONFIG: &str = r#"{
  "providers": {
    "mesh": {
      "issuer": "https://spiffe.example.com",
      "algorithms": ["ES256"],
      "local_jwks": {"keys": [{"kty": "EC", "crv": "P-256", "kid": "mesh-2026", "use": "sig",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}
    }
  },
  "rules": [
    {"match": {"path": {"prefix": "/private/"}}, "requires": {"provider": "mesh"}},
    {"match": {}, "requires": "none"}
  ],
  "realm": "api.example.com"
}"#;

/// The Envoy routes of the differential run, in order: (name, path prefix). Every route goes to
/// the echo; the host run sets `xds.route_name` to the name Envoy would match.
pub const ENVOY_ROUTES: [(&str, &str); 2] = [("legacy", "/legacy/"), ("default", "/")];

/// The `Host` sent when a case names none (the e2e client's default).
pub const DEFAULT_HOST: &str = "localhost";

/// Headers dropped before comparing: framing, and what Envoy's codec adds after the filters.
pub const FRAMING_AND_CODEC: [&str; 5] = ["date", "content-length", "transfer-encoding", "connection", "keep-alive"];

/// Added by Envoy's router to upstream responses; its value (milliseconds) is masked.
pub const UPSTREAM_SERVICE_TIME: &str = "x-envoy-upstream-service-time";

/// The `Permissions-Policy` of both presets (OWASP's list).
pub const PERMISSIONS_POLICY: &str = "accelerometer=(), autoplay=(), camera=(), cross-origin-isolated=(), \
display-capture=(), encrypted-media=(), fullscreen=(), geolocation=(), gyroscope=(), keyboard-map=(), \
magnetometer=(), microphone=(), midi=(), payment=(), picture-in-picture=(), publickey-credentials-get=(), \
screen-wake-lock=(), sync-xhr=(self), usb=(), web-share=(), xr-spatial-tracking=(), clipboard-read=(), \
clipboard-write=(), gamepad=(), hid=(), idle-detection=(), interest-cohort=(), serial=(), unload=()";

/// The `strict` preset as the client sees it.
pub const STRICT: [(&str, &str); 12] = [
    ("cache-control", "no-store"),
    ("content-security-policy", "default-src 'none'; frame-ancestors 'none'"),
    ("cross-origin-embedder-policy", "require-corp"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    ("permissions-policy", PERMISSIONS_POLICY),
    ("referrer-policy", "no-referrer"),
    ("strict-transport-security", "max-age=31536000; includeSubDomains"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("x-permitted-cross-domain-policies", "none"),
    ("x-xss-protection", "0"),
];

/// The `web` preset's CSP (set only when the upstream sent none).
pub const WEB_CSP: &str = "default-src 'self'; form-action 'self'; object-src 'none'; frame-ancestors 'none'; \
base-uri 'self'; upgrade-insecure-requests";

/// The `web` preset as the client sees it when the upstream sent no CSP.
pub const WEB: [(&str, &str); 10] = [
    ("content-security-policy", WEB_CSP),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    ("permissions-policy", PERMISSIONS_POLICY),
    ("referrer-policy", "strict-origin-when-cross-origin"),
    ("strict-transport-security", "max-age=31536000; includeSubDomains"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("x-permitted-cross-domain-policies", "none"),
    ("x-xss-protection", "0"),
];

/// Every header either preset may set.
pub const PRESET_NAMES: [&str; 12] = [
    "cache-control",
    "content-security-policy",
    "cross-origin-embedder-policy",
    "cross-origin-opener-policy",
    "cross-origin-resource-policy",
    "permissions-policy",
    "referrer-policy",
    "strict-transport-security",
    "x-content-type-options",
    "x-frame-options",
    "x-permitted-cross-domain-policies",
    "x-xss-protection",
];

/// Every CORS response header.
pub const CORS_NAMES: [&str; 6] = [
    "access-control-allow-origin",
    "access-control-allow-credentials",
    "access-control-expose-headers",
    "access-control-allow-methods",
    "access-control-allow-headers",
    "access-control-max-age",
];

/// The `Vary` of a preflight answer on a route whose origins are listed.
pub const PREFLIGHT_VARY: &str = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers";

/// What the filter counted for a case (one of its CORS counters, or none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// No `Origin`, or a route without `cors`.
    Plain,
    /// `cors_requests_allowed`.
    CorsAllowed,
    /// `cors_requests_denied`.
    CorsDenied,
    /// `preflights_allowed`.
    PreflightAllowed,
    /// `preflights_denied`.
    PreflightDenied,
}

/// What a header must be on the client side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    /// Exactly these values, in order (one value: exactly one header line).
    Values(Vec<String>),
    /// Not present.
    Absent,
}

/// One case: the request, the upstream's answer, and what the client must get.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: &'static str,
    pub method: &'static str,
    pub path: &'static str,
    pub host: &'static str,
    pub headers: Vec<(&'static str, &'static str)>,
    /// `x-echo-status`.
    pub upstream_status: Option<u16>,
    /// `x-echo-header`, one per header the upstream adds to its reply.
    pub upstream_headers: Vec<(&'static str, &'static str)>,
    pub status: u16,
    pub reaches_upstream: bool,
    /// The body of a local reply.
    pub body: Option<&'static str>,
    pub want: Vec<(&'static str, Want)>,
    pub counted: Counted,
    pub decorated: bool,
}

/// A `GET` of `path` answered 200 by the upstream, decorated, with nothing else expected yet.
fn case(name: &'static str, method: &'static str, path: &'static str) -> Case {
    Case {
        name,
        method,
        path,
        host: DEFAULT_HOST,
        headers: Vec::new(),
        upstream_status: None,
        upstream_headers: Vec::new(),
        status: 200,
        reaches_upstream: true,
        body: None,
        want: Vec::new(),
        counted: Counted::Plain,
        decorated: true,
    }
}

impl Case {
    fn header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.push((name, value));
        self
    }

    fn origin(self, origin: &'static str) -> Self {
        self.header("origin", origin)
    }

    fn host(mut self, host: &'static str) -> Self {
        self.host = host;
        self
    }

    fn upstream(mut self, name: &'static str, value: &'static str) -> Self {
        self.upstream_headers.push((name, value));
        self
    }

    fn upstream_status(mut self, status: u16) -> Self {
        self.upstream_status = Some(status);
        self.status = status;
        self
    }

    fn local(mut self, status: u16, body: Option<&'static str>) -> Self {
        self.status = status;
        self.reaches_upstream = false;
        self.body = body;
        self
    }

    /// Expects `name` to be `want`, replacing an earlier expectation for it.
    fn expect(mut self, name: &'static str, want: Want) -> Self {
        self.want.retain(|(other, _)| *other != name);
        self.want.push((name, want));
        self
    }

    fn want(self, name: &'static str, value: &str) -> Self {
        self.expect(name, Want::Values(vec![value.to_string()]))
    }

    fn want_all(self, name: &'static str, values: &[&str]) -> Self {
        self.expect(name, Want::Values(values.iter().map(|v| v.to_string()).collect()))
    }

    fn absent(self, names: &[&'static str]) -> Self {
        names.iter().fold(self, |case, name| case.expect(name, Want::Absent))
    }

    fn strict(self) -> Self {
        STRICT.iter().fold(self, |case, (name, value)| case.want(name, value))
    }

    fn web(self) -> Self {
        WEB.iter().fold(self, |case, (name, value)| case.want(name, value)).absent(&["cross-origin-embedder-policy"])
    }

    fn no_cors(self) -> Self {
        self.absent(&CORS_NAMES)
    }

    /// The CORS headers of an allowed origin on the default route.
    fn cors_allowed(mut self, origin: &'static str) -> Self {
        self.counted = Counted::CorsAllowed;
        self.want("access-control-allow-origin", origin)
            .want("access-control-allow-credentials", "true")
            .want("access-control-expose-headers", "x-request-id")
            .absent(&["access-control-allow-methods", "access-control-allow-headers", "access-control-max-age"])
    }

    fn counted(mut self, counted: Counted) -> Self {
        self.counted = counted;
        self
    }

    fn undecorated(mut self) -> Self {
        self.decorated = false;
        self
    }

    /// The request headers, with the echo's controls for the upstream's answer.
    pub fn request_headers(&self) -> Vec<(String, String)> {
        let mut headers: Vec<(String, String)> =
            self.headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
        if let Some(status) = self.upstream_status {
            headers.push(("x-echo-status".into(), status.to_string()));
        }
        for (name, value) in &self.upstream_headers {
            headers.push(("x-echo-header".into(), format!("{name}: {value}")));
        }
        headers
    }

    /// The request as the host run sends it: what Envoy hands the first filter for it.
    pub fn host_request(&self) -> Request {
        let request = Request::new(self.method, self.path)
            .set_header(":authority", self.host)
            .set_header(":scheme", "http")
            .property(&["xds", "route_name"], self.envoy_route());
        self.request_headers().iter().fold(request, |request, (name, value)| request.header(name, value))
    }

    /// The Envoy route the request matches (by path prefix, in order).
    pub fn envoy_route(&self) -> &'static str {
        ENVOY_ROUTES.iter().find(|(_, prefix)| self.path.starts_with(prefix)).map(|(name, _)| *name).unwrap_or("")
    }

    /// What the router hands the filters for this request: the echo's reply (status, its
    /// `x-echo-header` headers, `content-type: application/json`, a body) plus the router's
    /// `x-envoy-upstream-service-time`.
    pub fn upstream_response(&self) -> Response {
        let mut response = Response::status(self.upstream_status.unwrap_or(200));
        for (name, value) in &self.upstream_headers {
            response = response.header(name, value);
        }
        response
            .header("content-type", "application/json")
            .header(UPSTREAM_SERVICE_TIME, "1")
            .body(r#"{"echo":"report"}"#)
    }

    /// Every difference between what the case expects and `observed`.
    pub fn check(&self, observed: &Observed) -> Vec<String> {
        let mut problems = Vec::new();
        if observed.status != self.status {
            problems.push(format!("status {} (expected {})", observed.status, self.status));
        }
        if observed.reached_upstream != self.reaches_upstream {
            problems.push(format!(
                "reached the upstream: {} (expected {})",
                observed.reached_upstream, self.reaches_upstream
            ));
        }
        if let (false, Some(body)) = (self.reaches_upstream, self.body) {
            if observed.body.as_deref() != Some(body) {
                problems.push(format!("body {:?} (expected {body:?})", observed.body));
            }
        }
        for (name, want) in &self.want {
            let got = observed.headers.get(*name);
            match (want, got) {
                (Want::Absent, None) => {}
                (Want::Absent, Some(values)) => problems.push(format!("{name}: {values:?} (expected absent)")),
                (Want::Values(values), Some(got)) if got == values => {}
                (Want::Values(values), got) => problems.push(format!("{name}: {got:?} (expected {values:?})")),
            }
        }
        problems
    }
}

/// The client-visible result of one case, normalised (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub status: u16,
    /// Lower-case name to values in order; framing and codec headers dropped.
    pub headers: BTreeMap<String, Vec<String>>,
    pub reached_upstream: bool,
    /// The body, for local replies only.
    pub body: Option<String>,
}

impl Observed {
    /// Normalises a response: `headers` as received (pseudo-headers are dropped).
    pub fn new(status: u16, headers: &[(String, String)], reached_upstream: bool, body: &[u8]) -> Self {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, value) in headers {
            let name = name.to_ascii_lowercase();
            if name.starts_with(':') || FRAMING_AND_CODEC.contains(&name.as_str()) {
                continue;
            }
            let value = if name == UPSTREAM_SERVICE_TIME { "<ms>".to_string() } else { value.clone() };
            map.entry(name).or_default().push(value);
        }
        let body = (!reached_upstream).then(|| String::from_utf8_lossy(body).into_owned());
        Self { status, headers: map, reached_upstream, body }
    }

    /// The result of a host exchange, answering it with the case's upstream response first.
    pub fn from_host(case: &Case, exchange: &mut Exchange<'_>) -> Self {
        match exchange.verdict() {
            Verdict::Forwarded => exchange.respond(case.upstream_response()).unwrap(),
            Verdict::LocalReply(_) => {}
            other => panic!("{}: unexpected verdict {other:?}", case.name),
        }
        let reached = exchange.upstream().is_some();
        let client = exchange.client().unwrap_or_else(|| panic!("{}: no response", case.name));
        Self::new(client.status(), &client.headers.to_strings(), reached, &client.body)
    }
}

/// Expected counter values after running `cases` once each.
pub fn expected_metrics(cases: &[Case]) -> [(&'static str, i64); 5] {
    let count = |what: Counted| cases.iter().filter(|c| c.counted == what).count() as i64;
    [
        ("palisade.security_headers.responses_decorated", cases.iter().filter(|c| c.decorated).count() as i64),
        ("palisade.security_headers.preflights_allowed", count(Counted::PreflightAllowed)),
        ("palisade.security_headers.preflights_denied", count(Counted::PreflightDenied)),
        ("palisade.security_headers.cors_requests_allowed", count(Counted::CorsAllowed)),
        ("palisade.security_headers.cors_requests_denied", count(Counted::CorsDenied)),
    ]
}

/// The cases.
pub fn cases() -> Vec<Case> {
    let leaky = ["server", "x-powered-by", "x-aspnet-version", "x-generator", "sourcemap", UPSTREAM_SERVICE_TIME];
    vec![
        case("strict preset, leaky headers removed, upstream values replaced", "GET", "/api/items")
            .upstream("server", "gunicorn/21.2")
            .upstream("x-powered-by", "PHP/8.3")
            .upstream("x-aspnet-version", "4.0.30319")
            .upstream("x-generator", "Drupal 10")
            .upstream("sourcemap", "/app.js.map")
            .upstream("cache-control", "public, max-age=600")
            .upstream("cache-control", "immutable")
            .upstream("x-frame-options", "ALLOWALL")
            .upstream("etag", "\"v1\"")
            .strict()
            .absent(&leaky)
            .want("etag", "\"v1\"")
            .want("content-type", "application/json")
            .want("vary", "Origin")
            .no_cors(),
        case("upstream status kept on errors", "GET", "/api/missing")
            .upstream_status(404)
            .upstream("x-powered-by", "Express")
            .strict()
            .absent(&["x-powered-by"])
            .want("vary", "Origin"),
        case("exact origin allowed", "GET", "/api/items")
            .origin("https://app.example.com")
            .strict()
            .cors_allowed("https://app.example.com")
            .want("vary", "Origin"),
        case("wildcard origin allowed at any depth", "POST", "/api/items")
            .origin("https://a.b.example.org")
            .cors_allowed("https://a.b.example.org")
            .want("vary", "Origin"),
        case("regex origin allowed, echoed as sent", "GET", "/api/items")
            .origin("https://PR-42.preview.example.com")
            .cors_allowed("https://PR-42.preview.example.com"),
        case("disallowed origin gets no CORS header, not even the upstream's", "GET", "/api/items")
            .origin("https://evil.example")
            .upstream("access-control-allow-origin", "*")
            .upstream("access-control-allow-credentials", "true")
            .upstream("access-control-allow-methods", "GET")
            .counted(Counted::CorsDenied)
            .strict()
            .no_cors()
            .want("vary", "Origin"),
        case("wildcard never matches the apex", "GET", "/api/items")
            .origin("https://example.org")
            .counted(Counted::CorsDenied)
            .no_cors(),
        case("Origin: null is not allowed by a list", "GET", "/api/items")
            .origin("null")
            .counted(Counted::CorsDenied)
            .no_cors(),
        case("an allowed origin's upstream CORS headers are replaced", "GET", "/api/items")
            .origin("https://app.example.com")
            .upstream("access-control-allow-origin", "*")
            .upstream("access-control-max-age", "99999")
            .cors_allowed("https://app.example.com"),
        case("Vary already listing Origin is not repeated", "GET", "/api/items")
            .origin("https://app.example.com")
            .upstream("vary", "Accept-Encoding, Origin")
            .cors_allowed("https://app.example.com")
            .want("vary", "Accept-Encoding, Origin"),
        // Envoy appends to an inline header already present (`vary` is one) with a comma.
        case("Vary: Origin appended to the upstream's Vary", "GET", "/api/items")
            .upstream("vary", "accept-encoding")
            .want("vary", "accept-encoding,Origin"),
        // A header that is not inline gets a second line.
        case("append adds a second line to a header that is not inline", "GET", "/page")
            .host("www.example.com")
            .upstream("link", "</a.js>; rel=preload")
            .want_all("link", &["</a.js>; rel=preload", "</site.css>; rel=preload"]),
        case("allowed preflight answered 204 here", "OPTIONS", "/api/items")
            .origin("https://app.example.com")
            .header("access-control-request-method", "PUT")
            .header("access-control-request-headers", "content-type, Authorization")
            .local(204, Some(""))
            .counted(Counted::PreflightAllowed)
            .strict()
            .want("access-control-allow-origin", "https://app.example.com")
            .want("access-control-allow-methods", "GET, POST, PUT, DELETE")
            .want("access-control-allow-headers", "authorization, content-type")
            .want("access-control-allow-credentials", "true")
            .want("access-control-max-age", "600")
            .absent(&["access-control-expose-headers", "content-type"])
            .want("vary", PREFLIGHT_VARY),
        case("preflight from a disallowed origin answered 403", "OPTIONS", "/api/items")
            .origin("https://evil.example")
            .header("access-control-request-method", "GET")
            .local(403, Some(r#"{"error":"cors_preflight_denied","message":"origin not allowed"}"#))
            .counted(Counted::PreflightDenied)
            .strict()
            .no_cors()
            .want("content-type", "application/json")
            .want("vary", PREFLIGHT_VARY),
        case("preflight for a method not allowed answered 403", "OPTIONS", "/api/items")
            .origin("https://app.example.com")
            .header("access-control-request-method", "PATCH")
            .local(403, Some(r#"{"error":"cors_preflight_denied","message":"method not allowed"}"#))
            .counted(Counted::PreflightDenied)
            .no_cors()
            .want("vary", PREFLIGHT_VARY),
        case("preflight for request headers not allowed answered 403", "OPTIONS", "/api/items")
            .origin("https://app.example.com")
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "content-type, x-admin")
            .local(403, Some(r#"{"error":"cors_preflight_denied","message":"request headers not allowed"}"#))
            .counted(Counted::PreflightDenied)
            .no_cors(),
        case("OPTIONS without Access-Control-Request-Method is forwarded", "OPTIONS", "/api/items")
            .origin("https://app.example.com")
            .cors_allowed("https://app.example.com")
            .strict(),
        case("GET /static/: web preset, rules, any origin gets *", "GET", "/static/app.js")
            .origin("https://anyone.test")
            .upstream("server", "nginx")
            .counted(Counted::CorsAllowed)
            .web()
            .want("cache-control", "public, max-age=86400")
            .want("cross-origin-resource-policy", "cross-origin")
            .want("access-control-allow-origin", "*")
            .absent(&["access-control-allow-credentials", "access-control-expose-headers", "vary", "server"]),
        case("GET /static/: the upstream's cache-control and CSP win over set_if_absent", "GET", "/static/page.html")
            .upstream("cache-control", "max-age=60")
            .upstream("content-security-policy", "script-src 'nonce-r4nd0m'")
            .want("cache-control", "max-age=60")
            .want("content-security-policy", "script-src 'nonce-r4nd0m'")
            .want("referrer-policy", "strict-origin-when-cross-origin")
            .absent(&["vary"]),
        case("POST /static/ is not the assets route: default strict policy", "POST", "/static/upload")
            .strict()
            .want("vary", "Origin"),
        case("a preflight to /static/ is OPTIONS, so the default CORS decides", "OPTIONS", "/static/app.js")
            .origin("https://anyone.test")
            .header("access-control-request-method", "GET")
            .local(403, Some(r#"{"error":"cors_preflight_denied","message":"origin not allowed"}"#))
            .counted(Counted::PreflightDenied)
            .no_cors(),
        case("Host www.example.com: site policy, custom CSP, HSTS preload, modes", "GET", "/index.html")
            .host("www.example.com")
            .origin("https://app.example.com")
            .upstream("x-debug-token", "a1b2c3")
            .upstream("link", "</app.js>; rel=preload")
            .upstream("x-frame-options", "ALLOWALL")
            .upstream("content-security-policy", "default-src *")
            .upstream("access-control-allow-origin", "https://app.example.com")
            .want(
                "content-security-policy",
                "default-src 'self'; script-src 'self' https://cdn.example.com; upgrade-insecure-requests",
            )
            .want("content-security-policy-report-only", "default-src 'self'; report-uri /csp-reports")
            .want("strict-transport-security", "max-age=63072000; includeSubDomains; preload")
            .want("x-frame-options", "SAMEORIGIN")
            .want_all("link", &["</app.js>; rel=preload", "</site.css>; rel=preload"])
            .want("access-control-allow-origin", "https://app.example.com")
            .want("referrer-policy", "strict-origin-when-cross-origin")
            .absent(&["x-debug-token", "vary", "cache-control", "access-control-allow-credentials"]),
        case("the host rule ignores the port", "GET", "/about")
            .host("www.example.com:8080")
            .want("strict-transport-security", "max-age=63072000; includeSubDomains; preload")
            .absent(&["vary"]),
        case("route_name rule: preset none, custom leaky list", "GET", "/legacy/report")
            .upstream("server", "Apache")
            .upstream("x-powered-by", "ASP.NET")
            .want("server", "Apache")
            .want("x-legacy", "1")
            .want(UPSTREAM_SERVICE_TIME, "<ms>")
            .absent(&["x-powered-by", "vary"])
            .absent(&PRESET_NAMES),
        case("exact path rule with leaky_headers [] changes nothing", "GET", "/raw?debug=1")
            .upstream("server", "Apache")
            .upstream("x-powered-by", "ASP.NET")
            .want("server", "Apache")
            .want("x-powered-by", "ASP.NET")
            .want(UPSTREAM_SERVICE_TIME, "<ms>")
            .absent(&PRESET_NAMES)
            .undecorated(),
        case("exact path rule does not match a longer path", "GET", "/raw/more").strict(),
        case("regex path rule: HSTS max-age=0", "GET", "/reports/42")
            .want("strict-transport-security", "max-age=0")
            .want("cache-control", "no-store")
            .absent(&["vary"]),
        case("regex path rule matches the whole path only", "GET", "/reports/42x").strict(),
        case("jwt-authn's 401 carries HSTS, the preset and CORS", "GET", "/private/orders")
            .origin("https://app.example.com")
            .local(401, Some(r#"{"error":"unauthorized","message":"Jwt is missing"}"#))
            .strict()
            .cors_allowed("https://app.example.com")
            .want("www-authenticate", "Bearer realm=\"api.example.com\"")
            .want("content-type", "application/json")
            .want("vary", "Origin"),
        case("jwt-authn's 401 to a disallowed origin carries no CORS header", "GET", "/private/orders")
            .origin("https://evil.example")
            .local(401, Some(r#"{"error":"unauthorized","message":"Jwt is missing"}"#))
            .counted(Counted::CorsDenied)
            .strict()
            .no_cors()
            .want("vary", "Origin"),
        case("a preflight to /private/ is answered before jwt-authn", "OPTIONS", "/private/orders")
            .origin("https://app.example.com")
            .header("access-control-request-method", "DELETE")
            .local(204, Some(""))
            .counted(Counted::PreflightAllowed)
            .strict()
            .want("access-control-allow-origin", "https://app.example.com")
            .want("vary", PREFLIGHT_VARY)
            .absent(&["www-authenticate"]),
    ]
}
