//! Request validation: limits, JSON structure and schema, injection and traversal detection,
//! CSRF, per route, each rule enforced or shadowed.
//!
//! ```json
//! {"routes": [{
//!   "match": {"path": {"prefix": "/api/orders"}},
//!   "limits": {"methods": ["GET", "POST"], "max_body_bytes": 65536},
//!   "content_types": ["application/json"],
//!   "json": {"max_depth": 8},
//!   "schema": {"type": "object", "required": ["sku"], "properties": {"sku": {"type": "string"}}},
//!   "injection": {"allow": ["json:/note"]},
//!   "csrf": {"allowed_origins": ["https://shop.example.com"]}
//! }]}
//! ```
//!
//! refuses a `PUT` (405), a body over 64 KiB (413, buffered no further), a `text/plain` body
//! (415), JSON nested deeper than 8 or without `sku` (400, naming `/sku`), SQLi or XSS in the
//! query, cookies or any JSON string but `/note` (400), and a POST from another site (403).
//!
//! The headers phase ([`Validator::check_headers`]) runs every rule that needs no body and
//! returns a [`BodyPlan`] when a body follows; the body phase buffers it up to the limit
//! ([`BodyPlan::step`]) and checks it whole ([`Validator::check_body`]).

mod config;
mod csrf;
mod injection;
mod json;
mod limits;
mod multipart;
mod pattern;
mod rule;
mod schema;
mod traversal;

pub use config::{compile, Policy, ValidationConfig};
pub use csrf::TokenPolicy;
pub use injection::{Detector, Location};
pub use limits::{BodyPlan, BodyStep};
pub use rule::{Findings, Mode, Place, Rule, Violation};
pub use schema::Schema;
pub use traversal::has_traversal;

use serde::Serialize;

use crate::audit::{AuditDecision, AuditEvent};
use crate::config::{from_json, ConfigError};
use crate::decision::LocalReply;
use crate::http::{has_content_coding, RequestView};
use config::{Modes, RoutePolicy};
use json::{ScanError, StrRole};

/// The filter name in audit events.
pub const FILTER: &str = "request-validation";

/// How a body is inspected, from its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `application/json` or `*/*+json`: scanned, limited, schema-checked.
    Json,
    /// `application/x-www-form-urlencoded`: fields checked like query parameters.
    Form,
    /// `multipart/form-data` with a valid boundary: parsed strictly, fields checked as form
    /// fields (file contents are not scanned, their names are).
    Multipart(multipart::Boundary),
    /// Anything else: size only.
    Other,
}

/// The compiled filter.
#[derive(Debug)]
pub struct Validator {
    policy: Policy,
}

/// What the headers phase decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadersOutcome {
    /// Shadow violations, and the rejection if any.
    pub findings: Findings,
    /// Present when a body follows and the request is not rejected: buffer and check it.
    pub body: Option<BodyPlan>,
    allow: Option<String>,
}

impl HeadersOutcome {
    /// The reply to send, if rejected (`allow` set on a 405).
    pub fn reply(&self) -> Option<LocalReply> {
        let reply = self.findings.reply()?;
        Some(match (&self.findings.rejection, &self.allow) {
            (Some(v), Some(allow)) if v.rule == Rule::MethodNotAllowed => reply.with_header("allow", allow.clone()),
            _ => reply,
        })
    }
}

/// Collects violations under the route's modes.
struct Recorder<'a> {
    modes: &'a Modes,
    findings: Findings,
}

impl Recorder<'_> {
    fn report(&mut self, violation: Violation) -> bool {
        let mode = self.modes.of(violation.rule);
        self.findings.record(violation, mode)
    }

    /// Runs one check; returns true when the request is rejected.
    fn run(&mut self, check: impl FnOnce(&mut dyn FnMut(Violation) -> bool) -> bool) -> bool {
        check(&mut |v| self.report(v));
        self.findings.rejected()
    }
}

impl Validator {
    /// Parses and compiles a JSON config; `env` reads the VM environment (CSRF key).
    pub fn from_json(bytes: &[u8], env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let config: ValidationConfig = from_json(bytes)?;
        let policy = compile(&config, env)?;
        injection::warm_up();
        Ok(Self { policy })
    }

    /// Whether selecting a route reads [`RequestView::route_name`]; the filter reads the
    /// `xds.route_name` property only then (no rule reads another connection property).
    pub fn needs_route_name(&self) -> bool {
        self.policy.routes.uses_route_name()
    }

    /// Every rule that needs no body. `has_body`: the headers did not end the stream.
    /// `now` is Unix seconds.
    pub fn check_headers(&self, request: &RequestView, has_body: bool, now: u64) -> HeadersOutcome {
        let Some(route) = self.policy.routes.select(request) else {
            return HeadersOutcome { findings: Findings::default(), body: None, allow: None };
        };
        let mut rec = Recorder { modes: &route.modes, findings: Findings::default() };
        let media = media_type(request);
        let kind = body_kind(request, media.as_deref());
        let injection = &route.injection;
        let _ = rec.run(|r| {
            route.limits.check(request, r);
            false
        }) || (has_body && rec.run(|r| check_content_type(route, request, media.as_deref(), kind, r)))
            || rec.run(|r| injection.check_path(request.path_only(), r))
            || rec.run(|r| injection.check_pairs(Location::Query, request.query().unwrap_or_default(), r))
            || rec.run(|r| injection.check_cookies(&request.headers, r))
            || rec.run(|r| injection.check_headers(&request.headers, r))
            || rec.run(|r| route.csrf.as_ref().is_some_and(|csrf| csrf.check(request, now, r)));
        // A shadowed `content-length` over the limit is already recorded, and such a body passes
        // unchecked: planning it would record the same violation again in the body phase.
        let oversized = rec.findings.shadow.iter().any(|v| v.rule == Rule::BodyTooLarge);
        let body = (has_body && !rec.findings.rejected() && !oversized)
            .then(|| BodyPlan::new(route.index, kind, route.limits.max_body_bytes));
        let methods = route.limits.methods();
        let allow = (!methods.is_empty()).then(|| methods.join(", "));
        HeadersOutcome { findings: rec.findings, body, allow }
    }

    /// The body outgrew the limit while buffering ([`BodyStep::TooLarge`]): records the
    /// violation under the route's mode (in shadow mode the body then passes unchecked).
    pub fn check_oversized(&self, plan: &BodyPlan) -> Findings {
        let Some(route) = self.policy.routes.values().nth(plan.route) else {
            return Findings::default();
        };
        let mut rec = Recorder { modes: &route.modes, findings: Findings::default() };
        rec.report(plan.too_large());
        rec.findings
    }

    /// Checks a whole buffered body under the plan the headers phase returned.
    pub fn check_body(&self, plan: &BodyPlan, body: &[u8]) -> Findings {
        let Some(route) = self.policy.routes.values().nth(plan.route) else {
            return Findings::default();
        };
        let mut rec = Recorder { modes: &route.modes, findings: Findings::default() };
        if body.len() > route.limits.max_body_bytes {
            rec.report(plan.too_large());
            return rec.findings;
        }
        match plan.kind {
            BodyKind::Json => check_json_body(route, body, &mut rec),
            BodyKind::Form => {
                let text = String::from_utf8_lossy(body);
                rec.run(|r| route.injection.check_pairs(Location::Form, &text, r));
            }
            BodyKind::Multipart(boundary) => check_multipart_body(route, body, &boundary, &mut rec),
            BodyKind::Other => check_undeclared_json(route, body, &mut rec),
        }
        rec.findings
    }
}

/// The fields of a multipart body, when the route inspects form fields; a body that does not
/// parse strictly is refused, never skipped.
fn check_multipart_body(route: &RoutePolicy, body: &[u8], boundary: &multipart::Boundary, rec: &mut Recorder<'_>) {
    if !route.injection.any_at(Location::Form) {
        return;
    }
    let Some(parts) = multipart::parts(body, boundary) else {
        rec.report(Violation::new(Rule::InvalidMultipart, Place::Body));
        return;
    };
    for part in &parts {
        let content = if part.filename.is_none() { Some(String::from_utf8_lossy(part.content)) } else { None };
        if rec.run(|r| route.injection.check_field(Location::Form, part.name, part.filename, content.as_deref(), r)) {
            return;
        }
    }
}

fn check_json_body(route: &RoutePolicy, body: &[u8], rec: &mut Recorder<'_>) {
    let scan_injection = route.injection.any_at(Location::Json);
    let mut visit = |path: &[json::Segment], role: StrRole, value: &str| {
        !(scan_injection && route.injection.check_json(path, role, value, &mut |v| rec.report(v)))
    };
    let scanned = match &route.schema {
        Some(schema) => json::parse(body, &route.json, &mut visit).map(|tree| Some((schema, tree))),
        None => json::scan(body, &route.json, &mut visit).map(|()| None),
    };
    match scanned {
        Ok(Some((schema, tree))) => {
            let errors = schema.validate(&tree);
            if !errors.is_empty() {
                rec.report(Violation::new(Rule::SchemaViolation, Place::Json).errors(errors));
            }
        }
        Ok(None) | Err(ScanError::Stopped) => {}
        Err(ScanError::Syntax(_)) => {
            rec.report(Violation::new(Rule::InvalidJson, Place::Body));
        }
        Err(ScanError::Limit(at, limit)) => {
            rec.report(json_limit(at, limit));
        }
    }
}

/// The violation for a `json` limit exceeded at the pointer `at` (empty: the root).
fn json_limit(at: String, limit: &str) -> Violation {
    let at = if at.is_empty() { "/".to_string() } else { at };
    Violation::new(Rule::JsonLimit, Place::Json).errors(vec![format!("{at}: {limit}")])
}

/// A body of another media type (or none) that is a JSON object or array. Many backends parse
/// a body as JSON whatever its `content-type` says (Go's `json.NewDecoder(r.Body)`, Flask's
/// `get_json(force=True)`), so declaring `text/plain` must not carry a payload past the
/// checks: its strings are checked as a JSON body's are, within the `json` limits. A body that
/// is not JSON at all is size-checked only, as before; the schema applies to declared JSON only.
fn check_undeclared_json(route: &RoutePolicy, body: &[u8], rec: &mut Recorder<'_>) {
    let looks_like_json = body.iter().find(|b| !b.is_ascii_whitespace()).is_some_and(|b| matches!(b, b'{' | b'['));
    if !looks_like_json || !route.injection.any_at(Location::Json) {
        return;
    }
    // The whole document first: only one a backend would parse as JSON is reported on.
    match json::scan(body, &route.json, &mut |_, _, _| true) {
        Ok(()) => {}
        Err(ScanError::Limit(at, limit)) => {
            rec.report(json_limit(at, limit));
            return;
        }
        Err(ScanError::Syntax(_) | ScanError::Stopped) => return,
    }
    let mut visit = |path: &[json::Segment], role: StrRole, value: &str| {
        !route.injection.check_json(path, role, value, &mut |v| rec.report(v))
    };
    let _ = json::scan(body, &route.json, &mut visit);
}

/// The media type of the request body: before `;`, trimmed, lower case.
fn media_type(request: &RequestView) -> Option<String> {
    let value = request.headers.get("content-type")?;
    let media = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    (!media.is_empty()).then_some(media)
}

/// How a body of media type `media` (from [`media_type`]) is inspected.
fn body_kind(request: &RequestView, media: Option<&str>) -> BodyKind {
    match media {
        // `text/json` too: ASP.NET Core's JSON input formatter reads it.
        Some("application/json" | "text/json") => BodyKind::Json,
        Some(media) if media.ends_with("+json") => BodyKind::Json,
        Some("application/x-www-form-urlencoded") => BodyKind::Form,
        Some("multipart/form-data") => request
            .headers
            .get("content-type")
            .and_then(multipart::Boundary::from_content_type)
            .map_or(BodyKind::Other, BodyKind::Multipart),
        _ => BodyKind::Other,
    }
}

fn check_content_type(
    route: &RoutePolicy,
    request: &RequestView,
    media: Option<&str>,
    kind: BodyKind,
    report: &mut dyn FnMut(Violation) -> bool,
) -> bool {
    let listed = route.content_types.is_empty() || media.is_some_and(|m| route.content_types.iter().any(|t| t == m));
    let schema_needs_json = route.schema.is_some() && kind != BodyKind::Json;
    // A multipart body without a usable boundary cannot have its fields inspected.
    let fields_unreadable = media == Some("multipart/form-data")
        && !matches!(kind, BodyKind::Multipart(_))
        && route.injection.any_at(Location::Form);
    // Content-Type is a singleton (RFC 9110): with two, this filter reads the first and a
    // backend may read the last, inspecting the body as something it is not.
    let repeated = request.headers.get_all("content-type").nth(1).is_some();
    if !listed || schema_needs_json || fields_unreadable || repeated {
        return report(Violation::new(Rule::UnsupportedContentType, Place::Header).field("content-type"));
    }
    // A coded body (gzip, br, ...) cannot be inspected as sent, and a backend may decode it
    // before use: a body this route inspects must come uncoded (RFC 9110's 415 covers codings).
    let inspected = match kind {
        BodyKind::Json => true,
        BodyKind::Form | BodyKind::Multipart(_) => route.injection.any_at(Location::Form),
        BodyKind::Other => false,
    };
    inspected
        && has_content_coding(&request.headers)
        && report(Violation::new(Rule::UnsupportedContentType, Place::Header).field("content-encoding"))
}

/// An audit line for a violation: the shared event plus where it was found. No payload.
#[derive(Debug, Serialize)]
pub struct ValidationAudit {
    #[serde(flatten)]
    event: AuditEvent,
    location: String,
}

impl ValidationAudit {
    /// The event for `violation` on `request`; `enforced` picks deny or shadow_deny.
    pub fn new(violation: &Violation, enforced: bool, request: &RequestView) -> Self {
        let decision = if enforced { AuditDecision::Deny } else { AuditDecision::ShadowDeny };
        let mut event = AuditEvent::new(FILTER, decision, violation.rule.code(), request).rule(violation.rule.code());
        if enforced {
            event = event.status(violation.rule.status());
        }
        Self { event, location: violation.location() }
    }

    /// One JSON line.
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The Envoy counter name for a rule: `palisade.request_validation.<code>.rejected|shadow`.
pub fn metric_name(rule: Rule, mode: Mode) -> String {
    let suffix = match mode {
        Mode::Enforce => "rejected",
        Mode::Shadow => "shadow",
    };
    format!("palisade.request_validation.{}.{suffix}", rule.code())
}

#[cfg(test)]
mod libinjection_tests;
#[cfg(test)]
mod tests;
