//! Palisade authz: Istio-style ALLOW / DENY / AUDIT policies enforced in Envoy.
//!
//! Thin glue: parse the config once ([`palisade_core::authz::Authz`]), then per request read
//! the request view, and the identity jwt-authn left in filter state and the destination port
//! when a policy tests them, ask the core for a decision, apply it, count it and audit it.

use std::rc::Rc;

use palisade_core::authz::policy::Action as PolicyAction;
use palisade_core::authz::{Authz, Decision, DenyReason, Outcome, PolicyCounter};
use palisade_core::decision::{LocalReply, Verdict};
use palisade_glue::Counter;
use palisade_glue::ViewNeeds;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MapType};

#[cfg(feature = "entry")]
proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| root());
}}

/// A new root context of this filter: the filter's own entry point uses it, and so does the
/// gateway bundle (`filters/gateway`) for this layer.
pub fn root() -> Box<dyn RootContext> {
    Box::new(AuthzRoot { state: None })
}

/// The compiled config and its counters, shared by every HTTP context of the VM.
struct State {
    authz: Authz,
    metrics: Metrics,
    /// The connection properties the policies read; the rest only for audit lines.
    view: ViewNeeds,
    /// Whether some policy tests the destination port.
    port: bool,
    /// Whether some policy tests the request's identity; otherwise only audit lines read it.
    identity: bool,
}

/// `palisade.authz.*` counters, defined once at configure time.
struct Metrics {
    allowed: Counter,
    denied: Counter,
    unauthenticated: Counter,
    invalid_path: Counter,
    shadow_denied: Counter,
    audited: Counter,
    identity_malformed: Counter,
    /// Per policy id: the counters its action can produce.
    policies: Vec<Vec<(PolicyCounter, Counter)>>,
}

impl Metrics {
    fn define(authz: &Authz) -> Self {
        let counter = |name: &str| Counter::new(&format!("palisade.authz.{name}"));
        let policies = authz
            .policies()
            .map(|(name, action): (&str, PolicyAction)| {
                PolicyCounter::for_action(action)
                    .iter()
                    .map(|kind| (*kind, counter(&format!("policy.{name}.{}", kind.name()))))
                    .collect()
            })
            .collect();
        Self {
            allowed: counter("allowed"),
            denied: counter("denied"),
            unauthenticated: counter("unauthenticated"),
            invalid_path: counter("invalid_path"),
            shadow_denied: counter("shadow_denied"),
            audited: counter("audited"),
            identity_malformed: counter("identity_malformed"),
            policies,
        }
    }

    fn count(&self, decision: &Decision) {
        match decision.enforced {
            Outcome::Allow(_) => self.allowed.inc(),
            Outcome::Deny(denial) => {
                self.denied.inc();
                if denial.reason == DenyReason::InvalidPath {
                    self.invalid_path.inc();
                } else if denial.unauthenticated {
                    self.unauthenticated.inc();
                }
            }
        }
        if decision.shadow_denied() {
            self.shadow_denied.inc();
        }
        if !decision.audits.is_empty() {
            self.audited.inc();
        }
        for (id, kind) in decision.policy_hits() {
            let counters = self.policies.get(id).map(Vec::as_slice).unwrap_or_default();
            if let Some((_, counter)) = counters.iter().find(|(k, _)| *k == kind) {
                counter.inc();
            }
        }
    }
}

struct AuthzRoot {
    state: Option<Rc<State>>,
}

impl Context for AuthzRoot {}

impl RootContext for AuthzRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let Some(authz) = palisade_glue::load_config("authz", Authz::from_json) else {
            return false;
        };
        let metrics = Metrics::define(&authz);
        let needs = authz.needs();
        let view = ViewNeeds {
            source_ip: needs.source_ip,
            peer_principal: needs.peer_principal,
            route_name: needs.route_name,
        };
        self.state =
            Some(Rc::new(State { authz, metrics, view, port: needs.destination_port, identity: needs.identity }));
        true
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(AuthzHttp { context_id, state: self.state.clone() }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct AuthzHttp {
    context_id: u32,
    state: Option<Rc<State>>,
}

impl Context for AuthzHttp {}

impl HttpContext for AuthzHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(state) = self.state.as_deref() else {
            // No valid config: fail closed.
            palisade_glue::send_reply(
                &LocalReply::json(503, "unavailable", "authorization is not configured")
                    .with_details("palisade_authz_unconfigured"),
            );
            return Action::Pause;
        };
        // Only the properties some policy reads: each is a host call, and one with a value
        // also makes the host call into the VM to allocate it.
        let mut request = palisade_glue::request_view_with(state.view);
        let read_identity = || palisade_glue::read_identity("authz", self.context_id, state.metrics.identity_malformed);
        let mut identity = if state.identity { read_identity() } else { None };
        let port = if state.port { destination_port() } else { None };
        let decision = state.authz.evaluate(&request, identity.as_deref(), port);
        state.metrics.count(&decision);
        if decision.writes_audit() {
            // Audit lines carry the principal, the route, the peer and the source whatever the
            // policies read.
            if !state.identity {
                identity = read_identity();
            }
            palisade_glue::complete_request_view(&mut request, state.view);
            for event in state.authz.audit_events(&decision, &request, identity.as_deref()) {
                palisade_glue::audit(&event);
            }
        }
        match state.authz.verdict(&decision) {
            Verdict::Continue(ops) => {
                palisade_glue::apply_header_ops(MapType::HttpRequestHeaders, &ops);
                Action::Continue
            }
            Verdict::Respond(reply) => {
                palisade_glue::log(
                    LogLevel::Debug,
                    &format!("[{}] palisade authz: denied with {}", self.context_id, reply.status),
                );
                palisade_glue::send_reply(&reply);
                Action::Pause
            }
        }
    }
}

/// Envoy's `destination.port` property: an integer, 8 bytes little-endian.
fn destination_port() -> Option<u16> {
    let bytes = hostcalls::get_property(vec!["destination", "port"]).ok()??;
    let bytes: [u8; 8] = bytes.as_slice().try_into().ok()?;
    u16::try_from(u64::from_le_bytes(bytes)).ok()
}
