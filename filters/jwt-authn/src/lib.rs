//! jwt-authn: JWT and API-key authentication, and the identity later filters consume.
//!
//! The decisions live in `palisade_core::jwt`; this crate reads the request, keeps the key sets
//! and the verified-token cache, fetches remote JWKS from the root context, and applies the
//! verdict. See [`store`] for the shared-data layout (one JWKS copy and one token cache per
//! proxy) and [`fetch`] for the remote JWKS callouts.

mod fetch;
mod store;

use std::cell::RefCell;
use std::rc::Rc;

use palisade_core::decision::LocalReply;
use palisade_core::http::RequestView;
use palisade_core::jwt::config::{KeySource, ProviderKind};
use palisade_core::jwt::failure::ALL_FAILURES;
use palisade_core::jwt::{Failure, Outcome, Policy};
use palisade_glue::{
    apply_header_ops, audit, complete_request_view, load_config, now_millis, request_view_with, send_reply, Counter,
    ViewNeeds,
};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, MapType};

use fetch::Fetcher;
use store::{SharedCache, VmKeys};

#[cfg(feature = "entry")]
proxy_wasm::main! {{
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
    proxy_wasm::set_root_context(|_| root());
}}

/// A new root context of this filter: the filter's own entry point uses it, and so does the
/// gateway bundle (`filters/gateway`) for this layer.
pub fn root() -> Box<dyn RootContext> {
    Box::new(Root { shared: None, fetcher: None })
}

/// The filter's counters, shown by Envoy as `wasmcustom.palisade.jwt_authn.*`.
struct Metrics {
    allowed: Counter,
    denied: Counter,
    denied_by: Vec<(Failure, Counter)>,
    cache_hits: Counter,
    cache_misses: Counter,
    waited_for_keys: Counter,
    jwks_fetch_ok: Counter,
    jwks_fetch_failed: Counter,
}

impl Metrics {
    fn define() -> Self {
        let counter = |name: &str| Counter::new(&format!("palisade.jwt_authn.{name}"));
        Self {
            allowed: counter("allowed"),
            denied: counter("denied"),
            denied_by: ALL_FAILURES.iter().map(|f| (*f, counter(&format!("denied.{}", f.code())))).collect(),
            cache_hits: counter("cache_hits"),
            cache_misses: counter("cache_misses"),
            waited_for_keys: counter("waited_for_keys"),
            jwks_fetch_ok: counter("jwks_fetch_ok"),
            jwks_fetch_failed: counter("jwks_fetch_failed"),
        }
    }

    fn deny(&self, failure: Failure) {
        self.denied.inc();
        if let Some((_, counter)) = self.denied_by.iter().find(|(f, _)| *f == failure) {
            counter.inc();
        }
    }
}

/// Per-VM state every HTTP context of a configured VM shares.
struct Shared {
    policy: Policy,
    metrics: Metrics,
    keys: RefCell<VmKeys>,
    cache: RefCell<SharedCache>,
    /// Streams paused until their provider's first keys arrive: (context id, since ms).
    waiting: RefCell<Vec<(u32, u64)>>,
    /// The longest `wait_for_keys_ms` of the remote providers.
    wait_ms: u64,
    /// The connection properties a decision reads (`xds.route_name` when a rule matches on
    /// it); an audit line reads the rest.
    view_needs: ViewNeeds,
}

/// What the stream does after a decision.
enum Step {
    Continue,
    Stop,
    Wait,
}

impl Shared {
    /// Decides the current stream's request and applies the outcome.
    fn decide(&self, request: &RequestView, allow_wait: bool) -> Step {
        let now_ms = now_millis();
        let decision = {
            let mut keys = self.keys.borrow_mut();
            let mut cache = self.cache.borrow_mut();
            self.policy.authenticate(request, now_ms / 1000, &mut *keys, &mut *cache)
        };
        self.metrics.cache_hits.add(u64::from(decision.cache_hits));
        self.metrics.cache_misses.add(u64::from(decision.cache_misses));
        for provider in &decision.kid_misses {
            store::request_kid_miss_refetch(provider, now_ms);
        }
        match &decision.outcome {
            Outcome::Allow { identity, header_ops } => {
                apply_header_ops(MapType::HttpRequestHeaders, header_ops);
                if let Some(identity) = identity {
                    // Serialized once per verified token (cached with it), not per request.
                    palisade_glue::write_identity(identity.identity(), identity.filter_state());
                }
                self.metrics.allowed.inc();
                Step::Continue
            }
            Outcome::Deny { failure, reply } => {
                self.metrics.deny(*failure);
                let request = self.complete(request);
                if let Some(event) = decision.audit(&request) {
                    audit(&event);
                }
                send_reply(reply);
                Step::Stop
            }
            Outcome::WaitForKeys { .. } if allow_wait => Step::Wait,
            Outcome::WaitForKeys { .. } => {
                self.reply_failure(&self.complete(request), Failure::KeysUnavailable);
                Step::Stop
            }
        }
    }

    /// The request with every connection property, for an audit line.
    fn complete(&self, request: &RequestView) -> RequestView {
        let mut full = request.clone();
        complete_request_view(&mut full, self.view_needs);
        full
    }

    fn reply_failure(&self, request: &RequestView, failure: Failure) {
        self.metrics.deny(failure);
        let reply = failure.reply(&self.policy.realm(request));
        audit(
            &palisade_core::audit::AuditEvent::new(
                palisade_core::jwt::FILTER,
                palisade_core::audit::AuditDecision::Deny,
                failure.code(),
                request,
            )
            .status(reply.status),
        );
        send_reply(&reply);
    }

    /// Re-decides paused streams whose keys arrived, and answers 503 to those waiting too long.
    fn resume_waiting(&self) {
        let now = now_millis();
        let waiting: Vec<(u32, u64)> = std::mem::take(&mut *self.waiting.borrow_mut());
        let mut still = Vec::new();
        for (context_id, since) in waiting {
            if hostcalls::set_effective_context(context_id).is_err() {
                continue;
            }
            let request = request_view_with(self.view_needs);
            let expired = now >= since.saturating_add(self.wait_ms);
            match self.decide(&request, !expired) {
                Step::Continue => palisade_glue::layer::resume_http_request(context_id),
                Step::Stop => {}
                Step::Wait => still.push((context_id, since)),
            }
        }
        self.waiting.borrow_mut().extend(still);
    }
}

struct Root {
    shared: Option<Rc<Shared>>,
    fetcher: Option<Fetcher>,
}

impl Context for Root {
    fn on_http_call_response(&mut self, token_id: u32, num_headers: usize, body_size: usize, _num_trailers: usize) {
        // A reset or timed-out callout has no response map: reading it is a BadArgument, on
        // which the SDK panics (the VM would trap).
        let status = if num_headers > 0 { self.get_http_call_response_header(":status") } else { None };
        let body = if body_size > 0 { self.get_http_call_response_body(0, body_size) } else { None };
        let (Some(shared), Some(fetcher)) = (&self.shared, &mut self.fetcher) else { return };
        match fetcher.complete(token_id, status.as_deref(), body.as_deref(), now_millis()) {
            Some(true) => shared.metrics.jwks_fetch_ok.inc(),
            Some(false) => shared.metrics.jwks_fetch_failed.inc(),
            None => {}
        }
        shared.resume_waiting();
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let env = |name: &str| std::env::var(name).ok();
        let Some(policy) = load_config("jwt-authn", |bytes| Policy::from_json(bytes, &env)) else {
            return false;
        };
        let remotes: Vec<_> = policy
            .providers
            .iter()
            .filter_map(|p| match &p.kind {
                ProviderKind::Jwt(jwt) => match &jwt.keys {
                    KeySource::Remote(remote) => Some((p.name.clone(), remote.clone(), jwt.rules.algorithms.clone())),
                    KeySource::Static(_) => None,
                },
                ProviderKind::ApiKey(_) => None,
            })
            .collect();
        let wait_ms = remotes.iter().map(|(_, r, _)| r.wait_for_keys_ms).max().unwrap_or(0);
        let keys = VmKeys::new(remotes.iter().map(|(name, _, algs)| (name.clone(), algs.clone())).collect());
        let cache = SharedCache::new(&policy.cache);
        let view_needs = ViewNeeds { route_name: policy.rules.uses_route_name(), ..ViewNeeds::NONE };
        self.shared = Some(Rc::new(Shared {
            policy,
            metrics: Metrics::define(),
            keys: RefCell::new(keys),
            cache: RefCell::new(cache),
            waiting: RefCell::new(Vec::new()),
            wait_ms,
            view_needs,
        }));
        if !remotes.is_empty() {
            let mut fetcher = Fetcher::new(remotes);
            fetcher.run(now_millis());
            self.fetcher = Some(fetcher);
            palisade_glue::layer::set_tick_period(std::time::Duration::from_millis(250));
        }
        true
    }

    fn on_tick(&mut self) {
        if let Some(fetcher) = &mut self.fetcher {
            fetcher.run(now_millis());
        }
        if let Some(shared) = &self.shared {
            shared.resume_waiting();
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        // The SDK panics on None; an unconfigured stream fails closed instead.
        Some(Box::new(Stream { context_id, shared: self.shared.clone() }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Stream {
    context_id: u32,
    shared: Option<Rc<Shared>>,
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(shared) = &self.shared else {
            send_reply(&LocalReply::json(500, "jwt_authn_unconfigured", "jwt-authn has no configuration"));
            return Action::Pause;
        };
        let request = request_view_with(shared.view_needs);
        match shared.decide(&request, shared.wait_ms > 0) {
            Step::Continue => Action::Continue,
            Step::Stop => Action::Pause,
            Step::Wait => {
                shared.metrics.waited_for_keys.inc();
                shared.waiting.borrow_mut().push((self.context_id, now_millis()));
                Action::Pause
            }
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if let Some(shared) = &self.shared {
            if let Ok(mut waiting) = shared.waiting.try_borrow_mut() {
                waiting.retain(|(id, _)| *id != self.context_id);
            }
        }
    }
}
