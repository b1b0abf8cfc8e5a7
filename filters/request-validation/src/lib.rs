//! Palisade request validation as an Envoy/Istio wasm filter: thin glue over
//! `palisade_core::validation`.
//!
//! Headers phase: every rule that needs no body (limits, content type, path traversal, query,
//! cookies, headers, CSRF). Body phase: the body is buffered (`Pause`) until it is complete or
//! exceeds `max_body_bytes` (413 at once, nothing forwarded), then checked whole. Request
//! headers cannot be read in the body phase, so the request view is kept from the headers phase.
//! Counters: `palisade.request_validation.<rule>.rejected|shadow`; one audit line per violation.

use std::rc::Rc;

use palisade_core::decision::LocalReply;
use palisade_core::http::RequestView;
use palisade_core::validation::{
    metric_name, BodyPlan, BodyStep, Findings, Mode, Rule, ValidationAudit, Validator, Violation,
};
use palisade_glue::{complete_request_view, log, now_millis, request_view_with, send_reply, Counter, ViewNeeds};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

#[cfg(feature = "entry")]
proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| root());
}}

/// A new root context of this filter: the filter's own entry point uses it, and so does the
/// gateway bundle (`filters/gateway`) for this layer.
pub fn root() -> Box<dyn RootContext> {
    Box::new(Root::default())
}

/// One rejected and one shadow counter per rule, indexed by `rule as usize`.
struct Counters {
    rejected: Vec<Counter>,
    shadow: Vec<Counter>,
}

impl Counters {
    fn define() -> Self {
        let define = |mode| Rule::ALL.iter().map(|&rule| Counter::new(&metric_name(rule, mode))).collect();
        Self { rejected: define(Mode::Enforce), shadow: define(Mode::Shadow) }
    }

    fn count(&self, rule: Rule, enforced: bool) {
        let counters = if enforced { &self.rejected } else { &self.shadow };
        if let Some(counter) = counters.get(rule as usize) {
            counter.inc();
        }
    }
}

#[derive(Default)]
struct Root {
    validator: Option<Rc<Validator>>,
    counters: Option<Rc<Counters>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let env = |name: &str| std::env::var(name).ok();
        let Some(validator) =
            palisade_glue::load_config("request-validation", |bytes| Validator::from_json(bytes, &env))
        else {
            return false;
        };
        self.validator = Some(Rc::new(validator));
        if self.counters.is_none() {
            self.counters = Some(Rc::new(Counters::define()));
        }
        true
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Filter {
            id: context_id,
            validator: self.validator.clone(),
            counters: self.counters.clone(),
            request: None,
            read: ViewNeeds::NONE,
            plan: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Filter {
    id: u32,
    validator: Option<Rc<Validator>>,
    counters: Option<Rc<Counters>>,
    /// Kept from the headers phase for audit lines (headers are unavailable later).
    request: Option<RequestView>,
    /// The connection properties `request` holds so far: the rest are read for audit lines.
    read: ViewNeeds,
    /// Present while a body is being buffered for inspection.
    plan: Option<BodyPlan>,
}

impl Context for Filter {}

impl Filter {
    /// Counts and logs every violation; sends the reply if one is enforced.
    fn apply(&mut self, findings: &Findings, reply: Option<LocalReply>, request: &mut RequestView) -> Action {
        if !findings.shadow.is_empty() || findings.rejection.is_some() {
            // Audit lines carry the source, the peer and the route: read what is missing (once).
            complete_request_view(request, self.read);
            self.read = ViewNeeds::ALL;
        }
        for violation in &findings.shadow {
            self.record(violation, false, request);
        }
        if let Some(rejection) = &findings.rejection {
            self.record(rejection, true, request);
        }
        match reply {
            Some(reply) => {
                send_reply(&reply);
                Action::Pause
            }
            None => Action::Continue,
        }
    }

    fn record(&self, violation: &Violation, enforced: bool, request: &RequestView) {
        if let Some(counters) = &self.counters {
            counters.count(violation.rule, enforced);
        }
        log(LogLevel::Info, &ValidationAudit::new(violation, enforced, request).to_json_line());
        log(
            LogLevel::Debug,
            &format!("[{}] request-validation: {} at {}", self.id, violation.rule.code(), violation.location()),
        );
    }

    /// Inspects the buffered body (or records its excess) once the plan says so.
    fn decide_body(&mut self, step: BodyStep, size: usize) -> Action {
        let (Some(validator), Some(plan)) = (self.validator.clone(), self.plan.as_ref()) else {
            return Action::Continue;
        };
        let findings = match step {
            BodyStep::Buffer => return Action::Pause,
            BodyStep::Pass => return Action::Continue,
            BodyStep::TooLarge => validator.check_oversized(plan),
            BodyStep::Inspect => {
                let body = self.get_http_request_body(0, size).unwrap_or_default();
                validator.check_body(plan, &body)
            }
        };
        let mut request = self.request.take().unwrap_or_default();
        let action = self.apply(&findings, findings.reply(), &mut request);
        self.request = Some(request);
        action
    }
}

impl HttpContext for Filter {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Some(validator) = self.validator.clone() else {
            // No valid config reached this VM: fail closed.
            send_reply(&LocalReply::json(500, "validation_unavailable", "request validation is not configured"));
            return Action::Pause;
        };
        self.read = ViewNeeds { route_name: validator.needs_route_name(), ..ViewNeeds::NONE };
        let mut request = request_view_with(self.read);
        let outcome = validator.check_headers(&request, !end_of_stream, now_millis() / 1000);
        let action = self.apply(&outcome.findings, outcome.reply(), &mut request);
        self.plan = outcome.body;
        self.request = Some(request);
        action
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(plan) = self.plan.as_mut() else {
            return Action::Continue;
        };
        let step = plan.step(body_size, end_of_stream);
        self.decide_body(step, body_size)
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        let Some(plan) = self.plan.as_mut() else {
            return Action::Continue;
        };
        let size = plan.buffered();
        let step = plan.finish();
        self.decide_body(step, size)
    }
}
