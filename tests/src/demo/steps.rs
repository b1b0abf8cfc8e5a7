//! The walkthrough as data: each step is a request, the status it must get, the facts its
//! response must show ([`Check`]) and the response headers worth printing. The steps follow
//! demo.yaml's routes: the public site, the users API, the mTLS payments API.

use serde_json::{json, Value};

use super::material::{Material, Token};
use crate::e2e::Request;

/// Which listener of demo.yaml a step talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `demo`: plain HTTP (sent by the runner's own client).
    Main,
    /// `mtls`: TLS with the demo CA, sent with `curl`; `client` names the certificate pair in the
    /// generated folder (`order-service`, `reporting-service`), `None` sends no certificate.
    Mtls {
        /// The client certificate's name, if any.
        client: Option<String>,
    },
}

/// What a step must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// This HTTP status.
    Status(u16),
    /// No HTTP response at all (the TLS handshake is refused).
    NoResponse,
}

impl std::fmt::Display for Expect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expect::Status(status) => write!(f, "{status}"),
            Expect::NoResponse => write!(f, "no response (handshake refused)"),
        }
    }
}

/// A fact the response must show, beside its status (`--check` fails on any that does not hold).
#[derive(Debug, Clone)]
pub enum Check {
    /// The response carries this header.
    Header(&'static str),
    /// The response does not carry this header.
    NoHeader(&'static str),
    /// The response header has this exact value.
    HeaderIs(&'static str, &'static str),
    /// The response JSON has this value at this JSON Pointer.
    Json(&'static str, Value),
    /// The upstream received a JSON body whose member at this pointer is a Palisade ciphertext
    /// (`enc:...`), and the plaintext appears nowhere in what the upstream received.
    UpstreamEncrypted(&'static str, &'static str),
    /// The upstream received this header with this value.
    UpstreamHeader(&'static str, &'static str),
    /// The upstream received this header (any value) that contains the text.
    UpstreamHeaderContains(&'static str, &'static str),
}

/// One exchange of the walkthrough.
#[derive(Debug, Clone)]
pub struct Step {
    /// The section it belongs to, printed when it changes.
    pub section: &'static str,
    /// A short title.
    pub title: String,
    /// What the step shows, in one or two sentences.
    pub explain: String,
    /// The listener.
    pub target: Target,
    /// The request (without the token).
    pub request: Request,
    /// A token sent as `authorization: Bearer`, printed as `$(cat <file>)`.
    pub token: Option<Token>,
    /// The expected outcome.
    pub expect: Expect,
    /// Send the request again until it gets the expected status, at most this many times in all
    /// (for rate limits: how many pass depends on the steps before and on refill).
    pub repeat_until: Option<u32>,
    /// Facts the response must show.
    pub checks: Vec<Check>,
    /// Response headers to print (when present).
    pub show_headers: Vec<String>,
}

impl Step {
    fn new(section: &'static str, title: &str, explain: &str, request: Request, expect: u16) -> Self {
        Step {
            section,
            title: title.into(),
            explain: explain.into(),
            target: Target::Main,
            request,
            token: None,
            expect: Expect::Status(expect),
            repeat_until: None,
            checks: Vec::new(),
            show_headers: Vec::new(),
        }
    }

    /// An empty step (GET / on the main listener, expecting 200) for unit tests.
    #[cfg(test)]
    pub(crate) fn new_for_tests() -> Self {
        Step::new("test", "test", "test", Request::get("/"), 200)
    }

    fn token(mut self, token: Option<&Token>) -> Self {
        self.token = token.cloned();
        self
    }

    fn mtls(mut self, client: Option<&str>) -> Self {
        self.target = Target::Mtls { client: client.map(str::to_string) };
        self
    }

    fn no_response(mut self) -> Self {
        self.expect = Expect::NoResponse;
        self
    }

    fn until(mut self, attempts: u32) -> Self {
        self.repeat_until = Some(attempts);
        self
    }

    fn check(mut self, check: Check) -> Self {
        self.checks.push(check);
        self
    }

    fn show(mut self, headers: &[&str]) -> Self {
        self.show_headers.extend(headers.iter().map(|h| h.to_string()));
        self
    }
}

/// Headers that security-headers sets on every response.
const SECURITY_HEADERS: &[&str] =
    &["strict-transport-security", "content-security-policy", "x-content-type-options", "x-frame-options"];
/// CORS response headers.
const CORS_HEADERS: &[&str] = &["access-control-allow-origin", "vary"];
/// Rate-limit response headers.
const RATE_HEADERS: &[&str] = &["ratelimit-policy", "ratelimit", "retry-after"];
/// The origin demo.yaml allows.
const APP_ORIGIN: &str = "https://app.example.com";

const PUBLIC: &str = "Public site: /public (anonymous, limited per IP, injection checks)";
const USERS: &str = "Users API: /api/users (JWT, roles, tiers, JSON Schema, field encryption)";
const PAYMENTS: &str = "Payments API on the mTLS listener: /api/v1/payments (SPIFFE ID)";

/// The walkthrough, in order, with the tokens of `material`.
pub fn walkthrough(material: &Material) -> Vec<Step> {
    let mut steps = public_steps();
    steps.extend(users_steps(material));
    steps.extend(payments_steps());
    steps
}

fn public_steps() -> Vec<Step> {
    vec![
        Step::new(
            PUBLIC,
            "Security headers and CORS on an anonymous request",
            "The request reaches the echo upstream; the response gets the OWASP `strict` headers and, \
             for the allowed origin, CORS headers. rate-limit reports the caller's per-IP budget.",
            Request::get("/public/hello?lang=en").header("origin", APP_ORIGIN),
            200,
        )
        .check(Check::Header("strict-transport-security"))
        .check(Check::HeaderIs("access-control-allow-origin", APP_ORIGIN))
        .show(&[SECURITY_HEADERS, CORS_HEADERS, &["ratelimit-policy", "ratelimit"]].concat()),
        Step::new(
            PUBLIC,
            "Leaky headers removed",
            "The upstream answers with `server` and `x-powered-by` (the echo adds them on request); \
             neither reaches the client.",
            Request::get("/public/legacy")
                .header("x-echo-header", "server: Apache/2.4.1")
                .header("x-echo-header", "x-powered-by: PHP/8.3"),
            200,
        )
        .check(Check::NoHeader("server"))
        .check(Check::NoHeader("x-powered-by"))
        .check(Check::Header("x-content-type-options"))
        .show(&["server", "x-powered-by", "x-content-type-options"]),
        Step::new(
            PUBLIC,
            "SQL injection in a query parameter",
            "request-validation decodes `q` and libinjection finds SQL: 400, the upstream never sees it.",
            Request::get("/public/search?q=1%27%20OR%20%271%27%3D%271"),
            400,
        )
        .check(Check::Json("/error", json!("sqli")))
        .check(Check::Header("strict-transport-security")),
        Step::new(
            PUBLIC,
            "Cross-site scripting in a query parameter",
            "The same for a script tag: 400 `xss`.",
            Request::get("/public/search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E"),
            400,
        )
        .check(Check::Json("/error", json!("xss"))),
        Step::new(
            PUBLIC,
            "Path traversal in a query parameter",
            "`../` in a decoded value: 400 `path_traversal`.",
            Request::get("/public/files?name=..%2F..%2Fetc%2Fpasswd"),
            400,
        )
        .check(Check::Json("/error", json!("path_traversal"))),
        Step::new(
            PUBLIC,
            "Anonymous callers are limited per IP",
            "6 requests a minute per client IP (the steps above spent some): the request is repeated \
             until rate-limit answers 429, with `Retry-After` and the IETF `RateLimit` headers.",
            Request::get("/public/hello"),
            429,
        )
        .until(10)
        .check(Check::Header("retry-after"))
        .check(Check::Json("/error", json!("rate_limited")))
        .check(Check::Header("strict-transport-security"))
        .show(RATE_HEADERS),
        Step::new(
            PUBLIC,
            "Anything not routed is denied",
            "authz's default action is deny: a path no policy covers gets 403, whoever asks.",
            Request::get("/admin"),
            403,
        )
        .check(Check::Json("/error", json!("forbidden"))),
    ]
}

fn users_steps(material: &Material) -> Vec<Step> {
    let alice = material.token("alice");
    let bob = material.token("bob");
    let carol = material.token("carol");
    let alice_record = json!({"email": "alice@example.com", "name": "Alice Liddell", "plan": "free"});
    let bob_record = json!({"email": "bob@example.com", "name": "Bob Builder"});
    vec![
        Step::new(
            USERS,
            "The demo's public keys",
            "jwt-authn fetches this JWKS from Envoy itself (cluster `demo_jwks`, an internal listener \
             serving the generated file); the same file is served here.",
            Request::get("/.well-known/jwks.json"),
            200,
        )
        .check(Check::Json("/keys/0/kid", json!("demo-1"))),
        Step::new(
            USERS,
            "No token",
            "jwt-authn answers 401 with `WWW-Authenticate`; security-headers, first in the chain, still \
             adds HSTS and CORS to that local reply, so the browser app can read it.",
            Request::get("/api/users/7").header("origin", APP_ORIGIN),
            401,
        )
        .check(Check::Header("www-authenticate"))
        .check(Check::HeaderIs("access-control-allow-origin", APP_ORIGIN))
        .check(Check::Header("strict-transport-security"))
        .show(&["www-authenticate", "access-control-allow-origin", "strict-transport-security"]),
        Step::new(
            USERS,
            "An expired token",
            "alice's claims, expired an hour ago: 401 `invalid_token`.",
            Request::get("/api/users/7"),
            401,
        )
        .token(material.token("expired"))
        .show(&["www-authenticate"]),
        Step::new(
            USERS,
            "A forged token",
            "alice's claims signed by another key that names the demo's `kid`: 401.",
            Request::get("/api/users/7"),
            401,
        )
        .token(material.token("forged")),
        Step::new(
            USERS,
            "CORS preflight from the app's origin",
            "Answered by security-headers itself (204) without a token: the upstream never sees preflights.",
            Request::new("OPTIONS", "/api/users")
                .header("origin", APP_ORIGIN)
                .header("access-control-request-method", "POST")
                .header("access-control-request-headers", "authorization, content-type"),
            204,
        )
        .check(Check::HeaderIs("access-control-allow-origin", APP_ORIGIN))
        .show(&["access-control-allow-origin", "access-control-allow-methods", "access-control-allow-headers"]),
        Step::new(
            USERS,
            "CORS preflight from another origin",
            "Refused with 403 and no CORS header at all.",
            Request::new("OPTIONS", "/api/users")
                .header("origin", "https://evil.example")
                .header("access-control-request-method", "POST"),
            403,
        )
        .show(CORS_HEADERS),
        Step::new(
            USERS,
            "alice creates a user: the upstream sees ciphertext",
            "alice (roles users:write, pii-reader) passes jwt-authn, authz and the JSON Schema; \
             field-encryption then replaces `email` (AES-SIV, deterministic: searchable) and `name` \
             (AES-GCM) with ciphertexts bound to the field and to alice's tenant. The upstream also \
             gets the identity headers jwt-authn set.",
            Request::post("/api/users", alice_record.to_string()).header("content-type", "application/json"),
            200,
        )
        .token(alice)
        .check(Check::UpstreamEncrypted("/email", "alice@example.com"))
        .check(Check::UpstreamEncrypted("/name", "Alice Liddell"))
        .check(Check::UpstreamHeader("x-palisade-subject", "alice"))
        .check(Check::UpstreamHeader("x-palisade-tier", "authenticated"))
        .show(&["ratelimit-policy", "ratelimit"]),
        Step::new(
            USERS,
            "alice reads the stored record back: decrypted",
            "`x-echo-raw: 1` makes the echo answer with the body it received, as a database returning \
             the stored record (ciphertexts); field-encryption decrypts both fields for a pii-reader.",
            Request::post("/api/users", alice_record.to_string())
                .header("content-type", "application/json")
                .header("x-echo-raw", "1"),
            200,
        )
        .token(alice)
        .check(Check::Json("/email", json!("alice@example.com")))
        .check(Check::Json("/name", json!("Alice Liddell"))),
        Step::new(
            USERS,
            "bob reads the same kind of record: redacted",
            "bob may write users but lacks pii-reader: the ciphertexts coming back are replaced by \
             `[redacted]`, never shown in plaintext.",
            Request::post("/api/users", bob_record.to_string())
                .header("content-type", "application/json")
                .header("x-echo-raw", "1"),
            200,
        )
        .token(bob)
        .check(Check::Json("/email", json!("[redacted]")))
        .check(Check::Json("/name", json!("[redacted]"))),
        Step::new(
            USERS,
            "A record that breaks the JSON Schema",
            "request-validation checks the plaintext before it is encrypted: not an email, an unknown \
             member. 400 with JSON Pointers to what failed, no value echoed.",
            Request::post("/api/users", r#"{"email":"not-an-email","name":"Eve","admin":true}"#)
                .header("content-type", "application/json"),
            400,
        )
        .token(alice)
        .check(Check::Json("/error", json!("schema_violation"))),
        Step::new(
            USERS,
            "carol may not write users",
            "carol's roles (users:read, pii-reader) do not include users:write: authz answers 403.",
            Request::post("/api/users", r#"{"email":"carol@example.com","name":"Carol"}"#)
                .header("content-type", "application/json"),
            403,
        )
        .token(carol)
        .check(Check::Json("/error", json!("forbidden"))),
        Step::new(
            USERS,
            "carol reads a user on the premium tier",
            "carol's `plan: premium` claim makes her tier premium: 50 requests a minute instead of 5.",
            Request::get("/api/users/7"),
            200,
        )
        .token(carol)
        .check(Check::UpstreamHeader("x-palisade-tier", "premium"))
        .check(Check::UpstreamHeaderContains("x-user-roles", "pii-reader"))
        .show(&["ratelimit-policy", "ratelimit"]),
        Step::new(
            USERS,
            "alice runs out of her authenticated tier",
            "5 requests a minute per subject on the authenticated tier (alice spent some above): the \
             request is repeated until rate-limit answers 429.",
            Request::get("/api/users/7"),
            429,
        )
        .token(alice)
        .until(10)
        .check(Check::Header("retry-after"))
        .check(Check::Json("/error", json!("rate_limited")))
        .show(RATE_HEADERS),
    ]
}

fn payments_steps() -> Vec<Step> {
    let payment = json!({"order": "A-1001", "amount": 1999, "currency": "EUR"}).to_string();
    vec![
        Step::new(
            PAYMENTS,
            "The order-service pays",
            "Its certificate carries the URI SAN spiffe://cluster.local/ns/production/sa/order-service; \
             authz allows POST /api/v1/payments/* for that principal only. Envoy tells the upstream \
             who called in `x-forwarded-client-cert`.",
            Request::post("/api/v1/payments/42", payment.clone()).header("content-type", "application/json"),
            200,
        )
        .mtls(Some("order-service"))
        .check(Check::UpstreamHeaderContains(
            "x-forwarded-client-cert",
            "URI=spiffe://cluster.local/ns/production/sa/order-service",
        ))
        .check(Check::Header("strict-transport-security")),
        Step::new(
            PAYMENTS,
            "The order-service may only POST",
            "The same client reading a payment: no rule allows GET, default deny: 403.",
            Request::get("/api/v1/payments/42"),
            403,
        )
        .mtls(Some("order-service")),
        Step::new(
            PAYMENTS,
            "Another workload of the mesh",
            "A valid certificate from the same CA, with the reporting-service's SPIFFE ID: 403.",
            Request::post("/api/v1/payments/42", payment).header("content-type", "application/json"),
            403,
        )
        .mtls(Some("reporting-service"))
        .check(Check::Json("/error", json!("forbidden"))),
        Step::new(
            PAYMENTS,
            "No client certificate",
            "The listener requires a certificate signed by the demo CA: the TLS handshake fails and no \
             HTTP request is ever made.",
            Request::get("/api/v1/payments/42"),
            0,
        )
        .mtls(None)
        .no_response(),
    ]
}
