//! Palisade rate-limit: exact token buckets in Envoy shared data, shared by every worker.
//!
//! Thin glue: compile the config ([`palisade_core::rate_limit::Policy`]) and create its tables
//! in shared data once per VM; per request read the request view and the identity jwt-authn left
//! in filter state, let the core run the get → decide → compare-and-swap loop against
//! [`HostStore`], then apply, count and audit the decision. Headers for allowed requests are
//! kept and set in the response phase.

mod host_store;

use std::rc::Rc;

use palisade_core::decision::{HeaderOp, LocalReply, Verdict};
use palisade_core::identity::Identity;
use palisade_core::rate_limit::{compile_json, create_missing, Counted, Decision, Policy};
use palisade_glue::{Counter, ViewNeeds};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MapType};

use host_store::HostStore;

#[cfg(feature = "entry")]
proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| root());
}}

/// A new root context of this filter: the filter's own entry point uses it, and so does the
/// gateway bundle (`filters/gateway`) for this layer.
pub fn root() -> Box<dyn RootContext> {
    Box::new(RateLimitRoot { state: None })
}

/// The compiled config and its counters, shared by every HTTP context of the VM.
struct State {
    policy: Policy,
    metrics: Metrics,
    /// The connection properties deciding reads; the rest only for audit lines.
    view: ViewNeeds,
    /// Whether deciding reads the identity; otherwise only an audit line does.
    identity: bool,
}

/// `palisade.rate_limit.*` counters, defined once at configure time.
struct Metrics {
    allowed: Counter,
    limited: Counter,
    shadow_limited: Counter,
    unlimited: Counter,
    failed_open: Counter,
    failed_closed: Counter,
    cas_retries: Counter,
    cas_exhausted: Counter,
    table_overflow: Counter,
    store_errors: Counter,
    refunds_lost: Counter,
    identity_malformed: Counter,
}

impl Metrics {
    fn define() -> Self {
        let counter = |name: &str| Counter::new(&format!("palisade.rate_limit.{name}"));
        Self {
            allowed: counter("allowed"),
            limited: counter("limited"),
            shadow_limited: counter("shadow_limited"),
            unlimited: counter("unlimited"),
            failed_open: counter("failed_open"),
            failed_closed: counter("failed_closed"),
            cas_retries: counter("cas_retries"),
            cas_exhausted: counter("cas_exhausted"),
            table_overflow: counter("table_overflow"),
            store_errors: counter("store_errors"),
            refunds_lost: counter("refunds_lost"),
            identity_malformed: counter("identity_malformed"),
        }
    }

    fn count(&self, decision: &Decision) {
        let metrics = decision.metrics;
        match metrics.counted {
            Counted::Unlimited => self.unlimited.inc(),
            Counted::Allowed => self.allowed.inc(),
            Counted::Limited => self.limited.inc(),
            Counted::ShadowLimited => self.shadow_limited.inc(),
            Counted::FailedOpen => self.failed_open.inc(),
            Counted::FailedClosed => self.failed_closed.inc(),
        }
        self.cas_retries.add(u64::from(metrics.cas_retries));
        if metrics.cas_exhausted {
            self.cas_exhausted.inc();
        }
        if metrics.table_overflow {
            self.table_overflow.inc();
        }
        if metrics.store_error {
            self.store_errors.inc();
        }
        self.refunds_lost.add(u64::from(metrics.refunds_lost));
    }
}

struct RateLimitRoot {
    state: Option<Rc<State>>,
}

impl Context for RateLimitRoot {}

impl RootContext for RateLimitRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let env = |name: &str| std::env::var(name).ok();
        let Some(policy) = palisade_glue::load_config("rate-limit", |bytes| compile_json(bytes, &env)) else {
            return false;
        };
        // Create every table key before this VM serves a request: a CAS write to a missing key
        // would create it unconditionally, so the request path never creates keys.
        match create_missing(&mut HostStore, policy.table_keys()) {
            Ok(created) => {
                palisade_glue::log(LogLevel::Info, &format!("palisade rate-limit: {created} shared-data keys created"))
            }
            Err(_) => {
                palisade_glue::log(LogLevel::Error, "palisade rate-limit: cannot create tables in shared data");
                return false;
            }
        }
        if !policy.seeded {
            palisade_glue::log(
                LogLevel::Warn,
                "palisade rate-limit: no hash_seed_env, so clients who know the domain can aim keys at one group",
            );
        }
        let view =
            ViewNeeds { source_ip: policy.reads_source_ip(), route_name: policy.reads_route_name(), ..ViewNeeds::NONE };
        let identity = policy.reads_identity();
        self.state = Some(Rc::new(State { policy, metrics: Metrics::define(), view, identity }));
        true
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(RateLimitHttp { context_id, state: self.state.clone(), response_headers: Vec::new() }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct RateLimitHttp {
    context_id: u32,
    state: Option<Rc<State>>,
    /// Rate-limit headers for the response of an allowed request.
    response_headers: Vec<HeaderOp>,
}

impl Context for RateLimitHttp {}

impl HttpContext for RateLimitHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(state) = self.state.as_deref() else {
            // No valid config: fail closed.
            palisade_glue::send_reply(
                &LocalReply::json(503, "unavailable", "rate limiting is not configured")
                    .with_details("palisade_rate_limit_unconfigured"),
            );
            return Action::Pause;
        };
        let mut request = palisade_glue::request_view_with(state.view);
        // Unreadable identity: limit the caller as anonymous.
        let read_identity =
            || palisade_glue::read_identity("rate-limit", self.context_id, state.metrics.identity_malformed);
        let identity = if state.identity { read_identity() } else { None };
        let mut decision =
            state.policy.check(&mut HostStore, &request, identity.as_deref(), palisade_glue::now_millis());
        state.metrics.count(&decision);
        if let Some(event) = decision.audit.as_mut() {
            // Audit lines carry the principal, the source, the peer and the route: read what
            // deciding skipped.
            if !state.identity {
                if let Some(principal) = read_identity().as_deref().and_then(Identity::principal) {
                    event.principal = Some(principal);
                }
            }
            palisade_glue::complete_request_view(&mut request, state.view);
            event.fill_connection(&request);
            palisade_glue::audit(event);
        }
        match decision.verdict {
            Verdict::Continue(ops) => {
                palisade_glue::apply_header_ops(MapType::HttpRequestHeaders, &ops);
                self.response_headers = decision.response_headers;
                Action::Continue
            }
            Verdict::Respond(reply) => {
                palisade_glue::log(
                    LogLevel::Debug,
                    &format!("[{}] palisade rate-limit: answered {}", self.context_id, reply.status),
                );
                palisade_glue::send_reply(&reply);
                Action::Pause
            }
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if !self.response_headers.is_empty() {
            palisade_glue::apply_header_ops(MapType::HttpResponseHeaders, &std::mem::take(&mut self.response_headers));
        }
        Action::Continue
    }
}
