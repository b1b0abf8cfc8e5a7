//! The rules, their modes, what a violation records, and the reply each one gets.
//!
//! A violation names the rule, where it was found and (for JSON) the failing paths; it never
//! holds request input, so neither the reply nor the audit line can echo a payload.

use serde::{Deserialize, Serialize};

use crate::decision::LocalReply;

/// Enforce (reject) or shadow (count and log, then pass).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Reject the request.
    #[default]
    Enforce,
    /// Count and log only.
    Shadow,
}

/// Every rule the filter applies; its snake_case name is the error code and the metric name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// The method is not in `limits.methods` (405).
    MethodNotAllowed,
    /// The path is longer than `limits.max_path_bytes` (414).
    PathTooLong,
    /// The query is longer than `limits.max_query_bytes` (414).
    QueryTooLong,
    /// A header is longer than `limits.max_header_bytes` (431).
    HeaderTooLarge,
    /// More than `limits.max_headers` headers (431).
    TooManyHeaders,
    /// The body is larger than `limits.max_body_bytes` (413).
    BodyTooLarge,
    /// The body's media type is not in `content_types` (415).
    UnsupportedContentType,
    /// The body is not valid UTF-8 JSON (400).
    InvalidJson,
    /// The JSON body breaks a `json` limit (400).
    JsonLimit,
    /// A `multipart/form-data` body whose fields are inspected does not parse strictly (400).
    InvalidMultipart,
    /// The JSON body does not satisfy the route's schema (400).
    SchemaViolation,
    /// libinjection found SQL injection (400).
    Sqli,
    /// libinjection found cross-site scripting (400).
    Xss,
    /// `../` (plain, encoded, double-encoded, backslash) or a NUL byte (400).
    PathTraversal,
    /// CR or LF inside a header or a decoded value (400).
    Crlf,
    /// Origin, Referer or Sec-Fetch-Site says the request is cross-site (403).
    CsrfOrigin,
    /// The double-submit token is missing, expired or wrong (403).
    CsrfToken,
}

impl Rule {
    /// Every rule, in declaration order (the order of `rule as usize`).
    pub const ALL: [Rule; 17] = [
        Rule::MethodNotAllowed,
        Rule::PathTooLong,
        Rule::QueryTooLong,
        Rule::HeaderTooLarge,
        Rule::TooManyHeaders,
        Rule::BodyTooLarge,
        Rule::UnsupportedContentType,
        Rule::InvalidJson,
        Rule::JsonLimit,
        Rule::InvalidMultipart,
        Rule::SchemaViolation,
        Rule::Sqli,
        Rule::Xss,
        Rule::PathTraversal,
        Rule::Crlf,
        Rule::CsrfOrigin,
        Rule::CsrfToken,
    ];

    /// The stable code: the `error` of the reply, the audit `reason`, the metric segment.
    pub fn code(self) -> &'static str {
        match self {
            Rule::MethodNotAllowed => "method_not_allowed",
            Rule::PathTooLong => "path_too_long",
            Rule::QueryTooLong => "query_too_long",
            Rule::HeaderTooLarge => "header_too_large",
            Rule::TooManyHeaders => "too_many_headers",
            Rule::BodyTooLarge => "body_too_large",
            Rule::UnsupportedContentType => "unsupported_content_type",
            Rule::InvalidJson => "invalid_json",
            Rule::JsonLimit => "json_limit",
            Rule::InvalidMultipart => "invalid_multipart",
            Rule::SchemaViolation => "schema_violation",
            Rule::Sqli => "sqli",
            Rule::Xss => "xss",
            Rule::PathTraversal => "path_traversal",
            Rule::Crlf => "crlf",
            Rule::CsrfOrigin => "csrf_origin",
            Rule::CsrfToken => "csrf_token",
        }
    }

    /// The HTTP status of a rejection.
    pub fn status(self) -> u16 {
        match self {
            Rule::MethodNotAllowed => 405,
            Rule::PathTooLong | Rule::QueryTooLong => 414,
            Rule::HeaderTooLarge | Rule::TooManyHeaders => 431,
            Rule::BodyTooLarge => 413,
            Rule::UnsupportedContentType => 415,
            Rule::CsrfOrigin | Rule::CsrfToken => 403,
            Rule::InvalidJson
            | Rule::JsonLimit
            | Rule::InvalidMultipart
            | Rule::SchemaViolation
            | Rule::Sqli
            | Rule::Xss
            | Rule::PathTraversal
            | Rule::Crlf => 400,
        }
    }

    /// A fixed, human-readable message (never request input).
    pub fn message(self) -> &'static str {
        match self {
            Rule::MethodNotAllowed => "method not allowed on this route",
            Rule::PathTooLong => "request path too long",
            Rule::QueryTooLong => "query string too long",
            Rule::HeaderTooLarge => "request header too large",
            Rule::TooManyHeaders => "too many request headers",
            Rule::BodyTooLarge => "request body too large",
            Rule::UnsupportedContentType => "unsupported content type",
            Rule::InvalidJson => "request body is not valid JSON",
            Rule::JsonLimit => "JSON body exceeds a structural limit",
            Rule::InvalidMultipart => "multipart body does not parse",
            Rule::SchemaViolation => "JSON body does not match the schema",
            Rule::Sqli => "possible SQL injection",
            Rule::Xss => "possible cross-site scripting",
            Rule::PathTraversal => "path traversal or NUL byte",
            Rule::Crlf => "CR or LF in a value",
            Rule::CsrfOrigin => "cross-site request refused",
            Rule::CsrfToken => "missing or invalid CSRF token",
        }
    }
}

/// Where in the request a violation was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Place {
    /// The method.
    Method,
    /// The path (without the query).
    Path,
    /// The query string or one parameter.
    Query,
    /// A header.
    Header,
    /// A cookie.
    Cookie,
    /// The body as a whole.
    Body,
    /// A field of a form body.
    Form,
    /// A JSON body, at the paths in `errors`.
    Json,
}

/// One broken rule: which, where, and the failing field names or JSON pointers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The rule.
    pub rule: Rule,
    /// Where it was found.
    pub place: Place,
    /// The field (parameter, header, cookie name), when it is safe to name it.
    pub field: Option<String>,
    /// JSON pointers (with the failing schema keyword) for JSON rules; empty otherwise.
    pub errors: Vec<String>,
}

/// Longest field name or pointer segment written to a reply or a log line.
const MAX_FIELD_CHARS: usize = 64;

impl Violation {
    /// A violation at `place`, no field.
    pub fn new(rule: Rule, place: Place) -> Self {
        Self { rule, place, field: None, errors: Vec::new() }
    }

    /// Names the field; names from the request are sanitized and truncated.
    pub fn field(mut self, name: &str) -> Self {
        self.field = Some(sanitize(name));
        self
    }

    /// Adds the failing JSON paths.
    pub fn errors(mut self, errors: Vec<String>) -> Self {
        self.errors = errors;
        self
    }

    /// `query.q`, `header.user-agent`, `json`, ... for logs.
    pub fn location(&self) -> String {
        let place = serde_json::to_value(self.place).ok();
        let place = place.as_ref().and_then(|v| v.as_str()).unwrap_or("request");
        match &self.field {
            Some(field) => format!("{place}.{field}"),
            None => place.to_string(),
        }
    }

    /// The reply: `{"error": code, "message": ..., "errors": [...]}`.
    pub fn reply(&self) -> LocalReply {
        let mut errors: Vec<String> = self.errors.clone();
        if errors.is_empty() {
            errors.push(self.location());
        }
        let body = serde_json::json!({
            "error": self.rule.code(),
            "message": self.rule.message(),
            "errors": errors,
        });
        let mut reply = LocalReply::json(self.rule.status(), self.rule.code(), self.rule.message());
        reply.body = body.to_string().into_bytes();
        reply.details = format!("palisade_validation_{}", self.rule.code());
        reply
    }
}

/// Keeps printable ASCII that cannot confuse a log reader; everything else becomes `?`.
pub(super) fn sanitize(name: &str) -> String {
    let mut out: String = name
        .chars()
        .take(MAX_FIELD_CHARS)
        .map(|c| if c.is_ascii_alphanumeric() || "-_.~/[]*".contains(c) { c } else { '?' })
        .collect();
    if name.chars().nth(MAX_FIELD_CHARS).is_some() {
        out.push_str("...");
    }
    out
}

/// What the checks found so far: shadow violations to count and log, and the first enforced
/// violation, which ends the checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    /// Violations of shadow-mode rules (the request still passes).
    pub shadow: Vec<Violation>,
    /// The violation that rejects the request, if any.
    pub rejection: Option<Violation>,
}

/// At most this many shadow violations are kept per request, so hostile traffic cannot make
/// the filter log without bound.
const MAX_SHADOW: usize = 8;

impl Findings {
    /// Records `violation` under `mode`; returns true when checking must stop (rejected).
    pub fn record(&mut self, violation: Violation, mode: Mode) -> bool {
        match mode {
            Mode::Enforce => {
                self.rejection.get_or_insert(violation);
                true
            }
            Mode::Shadow => {
                if self.shadow.len() < MAX_SHADOW && !self.shadow.iter().any(|v| v.rule == violation.rule) {
                    self.shadow.push(violation);
                }
                false
            }
        }
    }

    /// Whether the request is rejected.
    pub fn rejected(&self) -> bool {
        self.rejection.is_some()
    }

    /// The reply to send, if the request is rejected.
    pub fn reply(&self) -> Option<LocalReply> {
        self.rejection.as_ref().map(Violation::reply)
    }

    /// Adds the findings of a later phase.
    pub fn merge(&mut self, later: Findings) {
        for violation in later.shadow {
            self.record(violation, Mode::Shadow);
        }
        if let Some(rejection) = later.rejection {
            self.rejection.get_or_insert(rejection);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_order_matches_all() {
        for (i, rule) in Rule::ALL.iter().enumerate() {
            assert_eq!(*rule as usize, i);
            let code: Rule = serde_json::from_value(serde_json::json!(rule.code())).unwrap();
            assert_eq!(code, *rule);
        }
    }

    #[test]
    fn reply_names_the_rule_and_never_the_input() {
        let reply = Violation::new(Rule::Sqli, Place::Query).field("q' OR 1=1 --").reply();
        assert_eq!(reply.status, 400);
        let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error":"sqli","message":"possible SQL injection","errors":["query.q??OR?1?1?--"]})
        );
        assert_eq!(reply.details, "palisade_validation_sqli");
        let schema = Violation::new(Rule::SchemaViolation, Place::Json).errors(vec!["/age: minimum".into()]).reply();
        let body: serde_json::Value = serde_json::from_slice(&schema.body).unwrap();
        assert_eq!(body["errors"], serde_json::json!(["/age: minimum"]));
    }

    #[test]
    fn statuses_follow_http() {
        let status = |rule: Rule| rule.status();
        assert_eq!(status(Rule::BodyTooLarge), 413);
        assert_eq!(status(Rule::UnsupportedContentType), 415);
        assert_eq!(status(Rule::CsrfToken), 403);
        assert_eq!(status(Rule::MethodNotAllowed), 405);
        assert_eq!(status(Rule::SchemaViolation), 400);
    }

    #[test]
    fn findings_stop_on_enforce_and_collect_shadow() {
        let mut findings = Findings::default();
        assert!(!findings.record(Violation::new(Rule::Xss, Place::Query), Mode::Shadow));
        assert!(!findings.record(Violation::new(Rule::Xss, Place::Form), Mode::Shadow));
        assert_eq!(findings.shadow.len(), 1, "one shadow entry per rule");
        assert!(findings.reply().is_none());
        assert!(findings.record(Violation::new(Rule::Sqli, Place::Query), Mode::Enforce));
        assert_eq!(findings.reply().unwrap().status, 400);
    }

    #[test]
    fn sanitizes_and_truncates_field_names() {
        assert_eq!(sanitize("user-agent"), "user-agent");
        assert_eq!(sanitize("a\r\nb\"<"), "a??b??");
        assert_eq!(sanitize(&"x".repeat(70)), format!("{}...", "x".repeat(64)));
    }
}
