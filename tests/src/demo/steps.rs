//! The walkthrough as data: each step is a request, the status it must get, and the response
//! headers worth showing. A filter that lands adds its steps here (and its config to demo.yaml).

use std::time::Duration;

use crate::e2e::Request;

/// One exchange of the walkthrough.
#[derive(Debug, Clone)]
pub struct Step {
    /// A short title.
    pub title: String,
    /// What the step shows, in one or two sentences.
    pub explain: String,
    /// The demo.yaml listener the request goes to.
    pub listener: String,
    /// The request.
    pub request: Request,
    /// The status the step must get; `--check` fails on any other.
    pub expect_status: u16,
    /// Response headers to print (when present).
    pub show_headers: Vec<String>,
}

impl Step {
    fn new(title: &str, explain: &str, request: Request, expect_status: u16, show_headers: &[&str]) -> Self {
        Step {
            title: title.into(),
            explain: explain.into(),
            listener: "demo".into(),
            request,
            expect_status,
            show_headers: show_headers.iter().map(|h| h.to_string()).collect(),
        }
    }
}

/// Headers that security-headers sets or removes on responses.
const SECURITY_HEADERS: &[&str] = &[
    "strict-transport-security",
    "content-security-policy",
    "x-content-type-options",
    "x-frame-options",
    "referrer-policy",
    "server",
    "x-powered-by",
];

/// CORS response headers.
const CORS_HEADERS: &[&str] = &[
    "access-control-allow-origin",
    "access-control-allow-methods",
    "access-control-allow-headers",
    "access-control-max-age",
    "vary",
];

/// The origin demo.yaml allows.
const APP_ORIGIN: &str = "https://app.example.com";

/// The walkthrough, in order.
pub fn walkthrough() -> Vec<Step> {
    let both = [SECURITY_HEADERS, CORS_HEADERS].concat();
    vec![
        Step::new(
            "Security headers on every response",
            "security-headers passes the request to the upstream untouched and adds the OWASP `strict` \
             set to the response; the page's origin is allowed, so it also gets CORS headers.",
            Request::get("/hello?lang=en").header("origin", APP_ORIGIN).header("accept", "application/json"),
            200,
            &both,
        ),
        Step::new(
            "Leaky headers removed",
            "The upstream answers with `server` and `x-powered-by` (the echo adds them on request); \
             neither reaches the client.",
            Request::get("/legacy")
                .header("x-echo-header", "server: Apache/2.4.1")
                .header("x-echo-header", "x-powered-by: PHP/8.3"),
            200,
            SECURITY_HEADERS,
        ),
        Step::new(
            "CORS preflight from an allowed origin",
            "Answered by the filter itself (204): the upstream never sees preflights.",
            Request::new("OPTIONS", "/api/echo")
                .header("origin", APP_ORIGIN)
                .header("access-control-request-method", "POST")
                .header("access-control-request-headers", "content-type"),
            204,
            CORS_HEADERS,
        ),
        Step::new(
            "CORS preflight from another origin",
            "Refused with 403 and a JSON body, and no CORS header at all.",
            Request::new("OPTIONS", "/api/echo")
                .header("origin", "https://evil.example")
                .header("access-control-request-method", "POST"),
            403,
            &both,
        ),
        Step::new(
            "A JSON body, chunked",
            "The body reaches the upstream whole, whatever framing the client chose.",
            Request::new("POST", "/api/echo")
                .header("origin", APP_ORIGIN)
                .header("content-type", "application/json")
                .chunked([&br#"{"greeting":"#[..], &br#""hello"}"#[..]], Duration::from_millis(20)),
            200,
            CORS_HEADERS,
        ),
    ]
}
