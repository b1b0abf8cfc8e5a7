//! Security headers and CORS on every response, local replies included.
//!
//! ```json
//! {"default": {"preset": "strict"},
//!  "routes": [{"name": "site", "match": {"path": {"prefix": "/app/"}},
//!              "policy": {"preset": "web", "hsts": {"max_age": 63072000, "preload": true},
//!                         "headers": [{"name": "cache-control", "value": "no-cache", "mode": "set_if_absent"}],
//!                         "cors": {"allow_origins": ["https://*.example.com"], "allow_credentials": true}}}]}
//! ```
//!
//! Responses under `/app/` get the `web` preset with a preloadable HSTS, the upstream's own
//! `Cache-Control` if it sent one, and CORS for any `https://*.example.com` page with
//! credentials; every other response gets the `strict` API preset. Leaky headers (`server`,
//! `x-powered-by`, ...) are removed everywhere. CORS preflights of a route with a `cors` block
//! are answered here: 204 when allowed, 403 with a JSON body when not.
//!
//! The filter calls [`SecurityHeaders::on_request`] in the request headers phase, keeps the
//! returned [`ResponsePlan`], and applies [`ResponsePlan::decorate`] to the response headers
//! (or [`SecurityHeaders::fallback_plan`] when the request phase never ran).

pub mod config;
pub mod cors;
pub mod csp;
pub mod header;
pub mod hsts;
pub mod policy;
pub mod preset;

use std::sync::Arc;

use crate::audit::{AuditDecision, AuditEvent};
use crate::config::{from_json, join_path, ConfigError};
use crate::decision::{HeaderOp, Verdict};
use crate::http::{RequestView, ResponseView};
use crate::route::Routes;

use self::config::SecurityHeadersConfig;
use self::cors::PreflightDenial;
use self::policy::Policy;

/// The filter name in audit lines.
pub const FILTER: &str = "security-headers";

/// The compiled configuration: per-route policies and the default.
#[derive(Debug, Clone)]
pub struct SecurityHeaders {
    routes: Routes<Arc<Policy>>,
    default: Arc<Policy>,
}

/// What the request phase decided about CORS, for metrics and audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorsOutcome {
    /// The route has no `cors` block, or the request carries no `Origin`.
    NotCors,
    /// A preflight answered 204.
    PreflightAllowed,
    /// A preflight answered 403.
    PreflightDenied(PreflightDenial),
    /// A request from an allowed origin; its response gets CORS headers.
    Allowed,
    /// A request from another origin; its response gets none (the browser blocks the read).
    Denied,
}

/// The request phase's decision.
#[derive(Debug, Clone)]
pub struct RequestDecision {
    /// Continue unchanged, or answer a preflight.
    pub verdict: Verdict,
    /// What happened with CORS.
    pub cors: CorsOutcome,
    /// What to do with the response, to keep until the response headers phase.
    pub plan: ResponsePlan,
}

/// How to decorate the response of one request.
#[derive(Debug, Clone)]
pub struct ResponsePlan {
    policy: Arc<Policy>,
    /// The reply is this filter's own preflight answer: it already carries its CORS headers.
    answered_locally: bool,
    /// The request's `Origin`, when allowed.
    allowed_origin: Option<String>,
}

/// The header operations for one response: the policy's fixed ones, then the CORS ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoration<'a> {
    /// Leaky header removal, preset, structured headers, rules.
    pub security: &'a [HeaderOp],
    /// CORS headers and `Vary: Origin`.
    pub cors: Vec<HeaderOp>,
    /// Whether [`Decoration::ops`] are [`independent`](crate::decision::independent). The
    /// `cors` ops never change it: they name only `access-control-*` headers, which `security`
    /// never touches, and append `vary`.
    pub independent: bool,
}

impl SecurityHeaders {
    /// Parses and compiles the plugin configuration.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        Self::compile(&from_json::<SecurityHeadersConfig>(bytes)?)
    }

    /// Compiles a parsed configuration.
    pub fn compile(config: &SecurityHeadersConfig) -> Result<Self, ConfigError> {
        let default = Arc::new(Policy::compile(&config.default, "default", None)?);
        let routes = Routes::compile(
            &config.routes,
            "routes",
            |route| &route.route_match,
            |route, at| Ok(Arc::new(Policy::compile(&route.policy, &join_path(at, "policy"), route.name.clone())?)),
        )?;
        Ok(Self { routes, default })
    }

    /// Whether selecting a policy reads [`RequestView::route_name`] (some route matches on
    /// `route_name`); the filter reads the `xds.route_name` property only then.
    pub fn needs_route_name(&self) -> bool {
        self.routes.uses_route_name()
    }

    /// Selects the policy and answers CORS preflights.
    pub fn on_request(&self, request: &RequestView) -> RequestDecision {
        let policy = Arc::clone(self.routes.select(request).unwrap_or(&self.default));
        let origin = request.headers.get("origin");
        let (cors, origin) = match (&policy.cors, origin) {
            (Some(cors), Some(origin)) => (cors, origin),
            _ => return RequestDecision::pass(policy, CorsOutcome::NotCors, None),
        };
        let preflight_method = request.headers.get("access-control-request-method");
        if let (true, Some(method)) = (request.method == "OPTIONS", preflight_method) {
            let (outcome, reply) =
                match cors.preflight(origin, method, request.headers.get("access-control-request-headers")) {
                    Ok(reply) => (CorsOutcome::PreflightAllowed, reply),
                    Err((denial, reply)) => (CorsOutcome::PreflightDenied(denial), reply),
                };
            let plan = ResponsePlan { policy, answered_locally: true, allowed_origin: None };
            return RequestDecision { verdict: Verdict::Respond(reply), cors: outcome, plan };
        }
        match cors.allows_origin(origin) {
            true => RequestDecision::pass(policy, CorsOutcome::Allowed, Some(origin.to_string())),
            false => RequestDecision::pass(policy, CorsOutcome::Denied, None),
        }
    }

    /// The plan for a response whose request this filter never saw (a reply sent before the
    /// request reached it): the default policy, no origin.
    pub fn fallback_plan(&self) -> ResponsePlan {
        ResponsePlan { policy: Arc::clone(&self.default), answered_locally: false, allowed_origin: None }
    }
}

impl RequestDecision {
    fn pass(policy: Arc<Policy>, cors: CorsOutcome, allowed_origin: Option<String>) -> Self {
        Self { verdict: Verdict::pass(), cors, plan: ResponsePlan { policy, answered_locally: false, allowed_origin } }
    }

    /// Whether [`RequestDecision::audit_event`] yields an event.
    pub fn writes_audit(&self) -> bool {
        matches!(self.cors, CorsOutcome::PreflightDenied(_))
    }

    /// The audit event for a refused preflight; other outcomes are not audited.
    pub fn audit_event(&self, request: &RequestView) -> Option<AuditEvent> {
        let CorsOutcome::PreflightDenied(denial) = self.cors else {
            return None;
        };
        let mut event = AuditEvent::new(FILTER, AuditDecision::Deny, denial.reason(), request).status(403);
        if let Some(name) = &self.plan.policy.name {
            event = event.rule(name.clone());
        }
        Some(event)
    }
}

impl ResponsePlan {
    /// The header operations for `response`.
    pub fn decorate(&self, response: &ResponseView) -> Decoration<'_> {
        let cors = match (&self.policy.cors, self.answered_locally) {
            (Some(cors), false) => cors.response_ops(self.allowed_origin.as_deref(), response.headers.get_all("vary")),
            _ => Vec::new(),
        };
        Decoration { security: &self.policy.ops, cors, independent: self.policy.independent }
    }
}

impl Decoration<'_> {
    /// Whether there is nothing to change.
    pub fn is_empty(&self) -> bool {
        self.security.is_empty() && self.cors.is_empty()
    }

    /// Every operation, in the order the proxy applies them: `security`, then `cors`.
    pub fn ops(&self) -> impl Iterator<Item = &HeaderOp> {
        self.security.iter().chain(&self.cors)
    }
}

#[cfg(test)]
mod tests;
