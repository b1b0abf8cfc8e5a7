//! security-headers: OWASP security headers and CORS on every response, local replies included.
//!
//! Put this filter FIRST in `http_filters`: Envoy runs the response callbacks of a local reply
//! only in the filter that sent it and those before it, so only the first filter sees the 401
//! of jwt-authn or the 429 of rate-limit. The decisions live in
//! `palisade_core::security_headers`; this crate reads the request, keeps the response plan,
//! and applies it.

use std::rc::Rc;

use palisade_core::decision::{LocalReply, Verdict};
use palisade_core::security_headers::{CorsOutcome, ResponsePlan, SecurityHeaders};
use palisade_glue::{
    apply_header_ops, audit, complete_request_view, load_config, request_view_with, response_view, rewrite_header_map,
    send_reply, Counter, ViewNeeds,
};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, MapType};

#[cfg(feature = "entry")]
proxy_wasm::main! {{
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
    proxy_wasm::set_root_context(|_| root());
}}

/// A new root context of this filter: the filter's own entry point uses it, and so does the
/// gateway bundle (`filters/gateway`) for this layer.
pub fn root() -> Box<dyn RootContext> {
    Box::new(Root { shared: None })
}

/// The filter's counters, shown by Envoy as `wasmcustom.palisade.security_headers.*`.
struct Metrics {
    responses_decorated: Counter,
    preflights_allowed: Counter,
    preflights_denied: Counter,
    cors_requests_allowed: Counter,
    cors_requests_denied: Counter,
}

impl Metrics {
    fn define() -> Self {
        let counter = |name: &str| Counter::new(&format!("palisade.security_headers.{name}"));
        Self {
            responses_decorated: counter("responses_decorated"),
            preflights_allowed: counter("preflights_allowed"),
            preflights_denied: counter("preflights_denied"),
            cors_requests_allowed: counter("cors_requests_allowed"),
            cors_requests_denied: counter("cors_requests_denied"),
        }
    }

    fn count(&self, outcome: CorsOutcome) {
        match outcome {
            CorsOutcome::NotCors => {}
            CorsOutcome::PreflightAllowed => self.preflights_allowed.inc(),
            CorsOutcome::PreflightDenied(_) => self.preflights_denied.inc(),
            CorsOutcome::Allowed => self.cors_requests_allowed.inc(),
            CorsOutcome::Denied => self.cors_requests_denied.inc(),
        }
    }
}

/// What every HTTP context of a configured VM shares.
struct Shared {
    config: SecurityHeaders,
    metrics: Metrics,
    /// The connection properties route selection reads; the rest only for audit lines.
    view: ViewNeeds,
}

struct Root {
    shared: Option<Rc<Shared>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let Some(config) = load_config("security-headers", SecurityHeaders::from_json) else {
            return false;
        };
        let view = ViewNeeds { route_name: config.needs_route_name(), ..ViewNeeds::NONE };
        self.shared = Some(Rc::new(Shared { config, metrics: Metrics::define(), view }));
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        // The SDK panics on None; an unconfigured stream fails closed instead.
        Some(Box::new(Stream { shared: self.shared.clone(), plan: None }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Stream {
    shared: Option<Rc<Shared>>,
    /// Set in the request headers phase; `None` when Envoy replied before the request got here.
    plan: Option<ResponsePlan>,
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(shared) = &self.shared else {
            send_reply(&LocalReply::json(
                500,
                "security_headers_unconfigured",
                "security-headers has no configuration",
            ));
            return Action::Pause;
        };
        let mut request = request_view_with(shared.view);
        let decision = shared.config.on_request(&request);
        shared.metrics.count(decision.cors);
        if decision.writes_audit() {
            // Audit lines carry the route, the peer and the source: read them now.
            complete_request_view(&mut request, shared.view);
            if let Some(event) = decision.audit_event(&request) {
                audit(&event);
            }
        }
        // Kept before replying: the reply comes back through on_http_response_headers.
        self.plan = Some(decision.plan);
        match decision.verdict {
            Verdict::Continue(ops) => {
                apply_header_ops(MapType::HttpRequestHeaders, &ops);
                Action::Continue
            }
            Verdict::Respond(reply) => {
                send_reply(&reply);
                Action::Pause
            }
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(shared) = &self.shared else {
            return Action::Continue;
        };
        let fallback;
        let plan = match &self.plan {
            Some(plan) => plan,
            None => {
                fallback = shared.config.fallback_plan();
                &fallback
            }
        };
        let response = response_view();
        let decoration = plan.decorate(&response);
        if !decoration.is_empty() {
            let ops: Vec<_> = decoration.ops().collect();
            rewrite_header_map(MapType::HttpResponseHeaders, &response.headers, &ops, decoration.independent);
            shared.metrics.responses_decorated.inc();
        }
        Action::Continue
    }
}
