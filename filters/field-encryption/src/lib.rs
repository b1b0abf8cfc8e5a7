//! Palisade field-encryption: encrypts configured JSON fields of request bodies before the
//! upstream sees them, and decrypts them in response bodies for callers allowed to read them.
//!
//! Thin glue around [`palisade_core::encryption`]: the root context compiles the config (keys
//! come from the VM's environment variables); each stream picks its route and captures the
//! identity in the request headers phase (request headers are gone later), removes
//! `content-length` in both directions when the body may change, buffers bodies until
//! `end_of_stream`, and replaces them whole. Nonces come from WASI `random_get`; per-key
//! encryption counts live in shared data so every worker's VM counts against one limit.

use std::collections::BTreeMap;
use std::rc::Rc;

use palisade_core::audit::{AuditDecision, AuditEvent};
use palisade_core::encryption::transform::FAILURE_REASONS;
use palisade_core::encryption::{
    Decrypted, Encrypted, LedgerError, NonceSource, Policy, RandomUnavailable, Refusal, Skipped, UsageLedger,
};
use palisade_core::http::{has_content_coding, RequestView};
use palisade_core::identity::Identity;
use palisade_glue::{Counter, ViewNeeds};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MapType, Status};

#[cfg(feature = "entry")]
proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| root());
}}

/// A new root context of this filter: the filter's own entry point uses it, and so does the
/// gateway bundle (`filters/gateway`) for this layer.
pub fn root() -> Box<dyn RootContext> {
    Box::new(EncryptionRoot { state: None })
}

const FILTER: &str = "field-encryption";

/// The compiled policy and its counters, shared by every HTTP context of the VM.
struct State {
    policy: Policy,
    metrics: Metrics,
}

/// `palisade.field_encryption.*` counters, defined once at configure time.
struct Metrics {
    fields_encrypted: Counter,
    fields_rewrapped: Counter,
    fields_kept: Counter,
    fields_decrypted: Counter,
    fields_redacted: Counter,
    decrypt_failed: Counter,
    decrypt_failed_by_reason: BTreeMap<&'static str, Counter>,
    refused: Counter,
    refused_by_code: BTreeMap<&'static str, Counter>,
    primary_key_encryptions: Counter,
    key_usage_warnings: Counter,
    responses_not_json: Counter,
    responses_too_large: Counter,
    responses_encoded: Counter,
    identity_malformed: Counter,
}

impl Metrics {
    fn define(policy: &Policy) -> Self {
        let counter = |name: &str| Counter::new(&format!("palisade.field_encryption.{name}"));
        Self {
            fields_encrypted: counter("fields_encrypted"),
            fields_rewrapped: counter("fields_rewrapped"),
            fields_kept: counter("fields_kept"),
            fields_decrypted: counter("fields_decrypted"),
            fields_redacted: counter("fields_redacted"),
            decrypt_failed: counter("decrypt_failed"),
            decrypt_failed_by_reason: FAILURE_REASONS
                .iter()
                .map(|reason| (*reason, counter(&format!("decrypt_failed.{reason}"))))
                .collect(),
            refused: counter("refused"),
            refused_by_code: Refusal::CODES.iter().map(|code| (*code, counter(&format!("refused.{code}")))).collect(),
            primary_key_encryptions: counter(&format!("key.{}.encryptions", policy.primary_key_id())),
            key_usage_warnings: counter("key_usage_warnings"),
            responses_not_json: counter("response_not_json"),
            responses_too_large: counter("response_too_large"),
            responses_encoded: counter("response_encoded"),
            identity_malformed: counter("identity_malformed"),
        }
    }

    fn count_refusal(&self, refusal: &Refusal) {
        self.refused.inc();
        if let Some(counter) = self.refused_by_code.get(refusal.code()) {
            counter.inc();
        }
    }

    fn count_encrypted(&self, outcome: &Encrypted) {
        self.fields_encrypted.add(outcome.encrypted);
        self.fields_rewrapped.add(outcome.rewrapped);
        self.fields_kept.add(outcome.kept);
        // Every new ciphertext is made with the primary key, in either mode.
        self.primary_key_encryptions.add(outcome.encrypted + outcome.rewrapped);
        if outcome.usage.as_ref().is_some_and(|usage| usage.warning) {
            self.key_usage_warnings.inc();
        }
    }

    fn count_decrypted(&self, outcome: &Decrypted) {
        self.fields_decrypted.add(outcome.decrypted);
        self.fields_redacted.add(outcome.redacted);
        for failure in &outcome.failures {
            self.decrypt_failed.inc();
            if let Some(counter) = self.decrypt_failed_by_reason.get(failure.reason) {
                counter.inc();
            }
        }
        if let Some(skipped) = outcome.skipped {
            self.count_skipped(skipped);
        }
    }

    fn count_skipped(&self, skipped: Skipped) {
        match skipped {
            Skipped::NotJson => self.responses_not_json.inc(),
            Skipped::TooLarge => self.responses_too_large.inc(),
            Skipped::Encoded => self.responses_encoded.inc(),
        }
    }
}

struct EncryptionRoot {
    state: Option<Rc<State>>,
}

impl Context for EncryptionRoot {}

impl RootContext for EncryptionRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let env = |name: &str| std::env::var(name).ok();
        let Some(policy) = palisade_glue::load_config(FILTER, |bytes| Policy::from_json(bytes, &env)) else {
            return false;
        };
        let metrics = Metrics::define(&policy);
        self.state = Some(Rc::new(State { policy, metrics }));
        true
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(EncryptionHttp {
            context_id,
            state: self.state.clone(),
            route: None,
            request: RequestView::default(),
            read: ViewNeeds::NONE,
            identity: None,
            encrypt_body: None,
            decrypt_body: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct EncryptionHttp {
    context_id: u32,
    state: Option<Rc<State>>,
    /// The matched route, kept for the response phase.
    route: Option<usize>,
    /// The request as seen in the headers phase, for audit lines.
    request: RequestView,
    /// The connection properties `request` holds so far: the rest are read for audit lines.
    read: ViewNeeds,
    /// The caller's identity from filter state (a malformed one counts as none).
    identity: Option<Rc<Identity>>,
    /// The request body is still to be encrypted: the bytes Envoy has buffered so far.
    encrypt_body: Option<usize>,
    /// The response body is to be decrypted: the bytes Envoy has buffered so far.
    decrypt_body: Option<usize>,
}

impl Context for EncryptionHttp {}

impl HttpContext for EncryptionHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Some(state) = self.state.clone() else {
            // No valid config: fail closed rather than forward plaintext.
            palisade_glue::send_reply(&Refusal::Unavailable.reply());
            return Action::Pause;
        };
        self.read = ViewNeeds { route_name: state.policy.needs_route_name(), ..ViewNeeds::NONE };
        self.request = palisade_glue::request_view_with(self.read);
        let Some(route) = state.policy.select(&self.request) else { return Action::Continue };
        self.route = Some(route);
        self.identity =
            palisade_glue::read_identity("field-encryption", self.context_id, state.metrics.identity_malformed);
        self.decrypt_body = state.policy.decrypts(route).then_some(0);
        if self.decrypt_body.is_some() {
            // Ask the upstream for an uncoded response: in a gzip body no field can be found.
            palisade_glue::remove_header(MapType::HttpRequestHeaders, "accept-encoding");
        }
        if !state.policy.encrypts(route) {
            return Action::Continue;
        }
        if !end_of_stream && has_content_coding(&self.request.headers) {
            // Fields of a gzip body cannot be found, and the upstream may well decode it.
            return self.refuse(&state, &Refusal::EncodedBody);
        }
        // The body will change length: Envoy does not fix content-length, so drop it.
        palisade_glue::remove_header(MapType::HttpRequestHeaders, "content-length");
        if end_of_stream {
            return self.encrypt(&state, &[], 0);
        }
        self.encrypt_body = Some(0);
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(state) = self.state.clone().filter(|_| self.encrypt_body.is_some()) else { return Action::Continue };
        if body_size > state.policy.max_body_bytes() {
            return self.refuse(&state, &Refusal::BodyTooLarge(state.policy.max_body_bytes()));
        }
        if !end_of_stream {
            // Envoy keeps buffering and calls again with the whole body so far, or ends the
            // body with trailers.
            self.encrypt_body = Some(body_size);
            return Action::Pause;
        }
        self.encrypt_buffered(&state, body_size)
    }

    /// A body followed by trailers ends here, not in a body callback: continuing without
    /// encrypting would forward the buffered plaintext.
    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        let (Some(state), Some(body_size)) = (self.state.clone(), self.encrypt_body) else { return Action::Continue };
        self.encrypt_buffered(&state, body_size)
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Some(state) = self.state.clone().filter(|_| self.decrypt_body.is_some() && !end_of_stream) else {
            self.decrypt_body = None;
            return Action::Continue;
        };
        if has_content_coding(&palisade_glue::header_map(MapType::HttpResponseHeaders)) {
            // Coded although the request asked for none: pass it on as sent (ciphertexts stay
            // ciphertexts) rather than buffer a body no field can be found in.
            self.skip(&state, Skipped::Encoded);
            return Action::Continue;
        }
        palisade_glue::remove_header(MapType::HttpResponseHeaders, "content-length");
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(state) = self.state.clone().filter(|_| self.decrypt_body.is_some()) else { return Action::Continue };
        if body_size > state.policy.max_body_bytes() {
            // Too large to buffer: pass it on as it is (ciphertexts stay ciphertexts).
            self.skip(&state, Skipped::TooLarge);
            return Action::Continue;
        }
        if !end_of_stream {
            self.decrypt_body = Some(body_size);
            return Action::Pause;
        }
        self.decrypt_buffered(&state, body_size)
    }

    /// A response body followed by trailers (gRPC, HTTP/2 upstreams) is decrypted here.
    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        let (Some(state), Some(body_size)) = (self.state.clone(), self.decrypt_body) else { return Action::Continue };
        self.decrypt_buffered(&state, body_size)
    }
}

impl EncryptionHttp {
    /// Reads the buffered request body, encrypts it and replaces it, or refuses the request.
    fn encrypt_buffered(&mut self, state: &State, body_size: usize) -> Action {
        let body = self.get_http_request_body(0, body_size).unwrap_or_default();
        self.encrypt(state, &body, body_size)
    }

    /// Reads the buffered response body and replaces it with its decrypted form.
    fn decrypt_buffered(&mut self, state: &State, body_size: usize) -> Action {
        self.decrypt_body = None;
        let Some(route) = self.route else { return Action::Continue };
        let body = self.get_http_response_body(0, body_size).unwrap_or_default();
        let outcome = state.policy.decrypt_response(route, &body, self.identity.as_deref());
        if let Some(new_body) = &outcome.body {
            self.set_http_response_body(0, body_size, new_body);
        }
        state.metrics.count_decrypted(&outcome);
        let mut reported: Vec<(&str, &str)> = Vec::new();
        for failure in &outcome.failures {
            if !reported.contains(&(failure.field.as_str(), failure.reason)) {
                reported.push((failure.field.as_str(), failure.reason));
                self.audit(AuditDecision::Allow, &format!("decrypt_{}", failure.reason), Some(&failure.field), None);
            }
        }
        if let Some(skipped) = outcome.skipped {
            self.audit(AuditDecision::Allow, skipped.code(), None, None);
        }
        Action::Continue
    }

    /// Encrypts the whole request body and replaces it, or refuses the request.
    fn encrypt(&mut self, state: &State, body: &[u8], body_size: usize) -> Action {
        self.encrypt_body = None;
        let Some(route) = self.route else { return Action::Continue };
        let result =
            state.policy.encrypt_request(route, body, self.identity.as_deref(), &mut WasiRandom, &mut SharedDataLedger);
        match result {
            Ok(outcome) => {
                if let Some(new_body) = &outcome.body {
                    self.set_http_request_body(0, body_size, new_body);
                }
                state.metrics.count_encrypted(&outcome);
                if let Some(usage) = outcome.usage.as_ref().filter(|usage| usage.log) {
                    palisade_glue::log(
                        LogLevel::Warn,
                        &format!(
                            "[{}] palisade {FILTER}: key {} has done {} AES-GCM encryptions (counter {}): rotate the primary key before the hard stop",
                            self.context_id,
                            state.policy.primary_key_id(),
                            usage.used,
                            usage.counter
                        ),
                    );
                }
                Action::Continue
            }
            Err(refusal) => self.refuse(state, &refusal),
        }
    }

    /// Passes the response body on untouched, counted and audited.
    fn skip(&mut self, state: &State, skipped: Skipped) {
        self.decrypt_body = None;
        state.metrics.count_skipped(skipped);
        self.audit(AuditDecision::Allow, skipped.code(), None, None);
    }

    fn refuse(&mut self, state: &State, refusal: &Refusal) -> Action {
        self.encrypt_body = None;
        self.decrypt_body = None;
        state.metrics.count_refusal(refusal);
        if let Refusal::KeyExhausted { key_id, used } = refusal {
            palisade_glue::log(
                LogLevel::Error,
                &format!(
                    "[{}] palisade {FILTER}: key {key_id} reached its usage hard stop after {used} encryptions: requests are refused until a new primary key is configured",
                    self.context_id
                ),
            );
        }
        self.audit(AuditDecision::Deny, refusal.code(), refusal.field(), Some(refusal.status()));
        palisade_glue::send_reply(&refusal.reply());
        Action::Pause
    }

    fn audit(&mut self, decision: AuditDecision, reason: &str, field: Option<&str>, status: Option<u16>) {
        // Audit lines carry the source, the peer and the route: read what is missing (once).
        palisade_glue::complete_request_view(&mut self.request, self.read);
        self.read = ViewNeeds::ALL;
        let principal = self.identity.as_deref().and_then(Identity::principal);
        let mut event = AuditEvent::new(FILTER, decision, reason, &self.request).principal(principal);
        if let Some(field) = field {
            event = event.rule(field);
        }
        if let Some(status) = status {
            event = event.status(status);
        }
        palisade_glue::audit(&event);
    }
}

/// Nonces from WASI `random_get` (BoringSSL's RAND_bytes in Envoy).
struct WasiRandom;

impl NonceSource for WasiRandom {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), RandomUnavailable> {
        getrandom::getrandom(dest).map_err(|_| RandomUnavailable)
    }
}

/// Per-key encryption counters in proxy-wasm shared data (one store for all worker VMs),
/// updated with compare-and-swap.
struct SharedDataLedger;

/// CAS retries before giving up (and failing closed).
const CAS_ATTEMPTS: usize = 16;

impl UsageLedger for SharedDataLedger {
    fn reserve(&mut self, key: &str, count: u64, hard_stop: u64) -> Result<u64, LedgerError> {
        for _ in 0..CAS_ATTEMPTS {
            let (value, cas) = hostcalls::get_shared_data(key).map_err(|_| LedgerError::Unavailable)?;
            let before = match value {
                None => 0,
                Some(bytes) => u64::from_le_bytes(bytes.try_into().map_err(|_| LedgerError::Unavailable)?),
            };
            let after = before.saturating_add(count);
            if after > hard_stop {
                return Err(LedgerError::Exhausted { used: before });
            }
            // A missing key is created whatever the CAS; two VMs racing on the very first
            // encryption may lose one count, a negligible error against the margins.
            match hostcalls::set_shared_data(key, Some(&after.to_le_bytes()), cas) {
                Ok(()) => return Ok(before),
                Err(Status::CasMismatch) => continue,
                Err(_) => return Err(LedgerError::Unavailable),
            }
        }
        Err(LedgerError::Unavailable)
    }
}
