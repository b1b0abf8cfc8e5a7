//! JWT and API-key authentication, as Envoy's `jwt_authn` does it, and the identity it produces.
//!
//! ```json
//! {"providers": {"corp": {"issuer": "https://auth.example.com", "audiences": ["api"],
//!    "algorithms": ["ES256"], "remote_jwks": {"cluster": "auth", "path": "/.well-known/jwks.json"},
//!    "claim_to_headers": [{"claim": "realm_access.roles", "header": "x-roles"}]}},
//!  "api_keys": {"partners": {"keys": [{"sha256": "<hex>", "consumer": "acme", "tier": "gold"}]}},
//!  "rules": [{"match": {"path": {"prefix": "/health"}}, "requires": "none"},
//!            {"match": {}, "requires": {"any": [{"provider": "corp"}, {"provider": "partners"}]}}]}
//! ```
//!
//! A request to `/api` with a valid ES256 token of that issuer and audience passes with its
//! identity in filter state and `x-roles: admin,ops`; without a token it gets a 401 and
//! `WWW-Authenticate: Bearer realm="<host>"`; with an expired one a 401 with
//! `error="invalid_token"`; with a token for another audience a 403.
//!
//! Modules: [`config`] (config and compiled [`Policy`]), [`keys`] (JWK Sets), [`verify`]
//! (one token), [`extract`] (token locations), [`requirement`] (the per-route tree),
//! [`output`] (identity and headers), [`api_key`], [`cache`] (verified tokens),
//! [`remote`] (JWKS fetching as a state machine), [`rsa_pkcs1`] (RS256/384/512), [`failure`] (statuses and bodies).

#[cfg(not(any(feature = "jwt-rsa", feature = "jwt-ec", feature = "jwt-eddsa", feature = "jwt-hmac")))]
compile_error!("the jwt layer needs at least one algorithm family: jwt-rsa, jwt-ec, jwt-eddsa or jwt-hmac");

pub mod api_key;
pub mod cache;
pub mod config;
#[cfg(feature = "jwt-ec")]
pub mod es256;
pub mod extract;
pub mod failure;
pub mod keys;
pub mod output;
pub mod remote;
pub mod requirement;
#[cfg(feature = "jwt-rsa")]
pub mod rsa_pkcs1;
pub mod verify;

#[cfg(test)]
pub(crate) mod testdata;

use std::rc::Rc;

use crate::audit::{AuditDecision, AuditEvent};
use crate::decision::{HeaderOp, LocalReply, Verdict};
use crate::http::RequestView;
use crate::identity::Identity;

use cache::{token_hash, CacheEntry, ReadyEntry, TokenCache};
pub use config::Policy;
use config::{KeySource, Provider, ProviderKind};
use extract::Location;
pub use failure::Failure;
use keys::KeySet;
use output::SharedIdentity;
use requirement::{Evaluation, ProviderResult};
use verify::ParsedToken;

/// The filter name in audit events.
pub const FILTER: &str = "jwt-authn";

/// The current keys of remote providers, kept by the filter.
pub trait KeyStore {
    /// The key set of remote provider `provider`, or `None` while none has been fetched.
    fn key_set(&mut self, provider: &str) -> Option<&KeySet>;
}

/// A key store with no keys (for policies without remote providers, and tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoKeys;

impl KeyStore for NoKeys {
    fn key_set(&mut self, _: &str) -> Option<&KeySet> {
        None
    }
}

/// The outcome for one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Let it pass, with these header changes, and this identity for later filters.
    Allow {
        /// Identity of the first verified provider, if any, with its filter-state form.
        identity: Option<SharedIdentity>,
        /// Header operations (inbound forgeries and tokens removed, outputs set).
        header_ops: Vec<HeaderOp>,
    },
    /// Answer locally.
    Deny {
        /// Why.
        failure: Failure,
        /// The reply.
        reply: LocalReply,
    },
    /// Pause until these remote providers have keys, then ask again.
    WaitForKeys {
        /// The providers without keys.
        providers: Vec<String>,
    },
}

/// An outcome and what happened on the way (for metrics and JWKS refetches).
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The outcome.
    pub outcome: Outcome,
    /// Remote providers whose keys lacked a token's `kid`: ask for a refetch.
    pub kid_misses: Vec<String>,
    /// Cache hits.
    pub cache_hits: u32,
    /// Cache misses (tokens verified by signature).
    pub cache_misses: u32,
}

impl Decision {
    /// The verdict to apply (a wait is the caller's to handle; it maps to a 503 here).
    pub fn verdict(&self, realm: &str) -> Verdict {
        match &self.outcome {
            Outcome::Allow { header_ops, .. } => Verdict::Continue(header_ops.clone()),
            Outcome::Deny { reply, .. } => Verdict::Respond(reply.clone()),
            Outcome::WaitForKeys { .. } => Verdict::Respond(Failure::KeysUnavailable.reply(realm)),
        }
    }

    /// The audit event of a denial.
    pub fn audit(&self, request: &RequestView) -> Option<AuditEvent> {
        match &self.outcome {
            Outcome::Deny { failure, reply } => {
                Some(AuditEvent::new(FILTER, AuditDecision::Deny, failure.code(), request).status(reply.status))
            }
            _ => None,
        }
    }
}

/// What one provider found and made of the request, remembered for the requirement tree.
struct ProviderState {
    result: ProviderResult,
    /// Where its credentials were: removed before the upstream unless it forwards them.
    locations: Vec<Location>,
    identity: Option<SharedIdentity>,
    header_ops: Vec<HeaderOp>,
}

impl ProviderState {
    fn without_identity(result: ProviderResult) -> Self {
        Self { result, locations: Vec::new(), identity: None, header_ops: Vec::new() }
    }

    fn ready(entry: &ReadyEntry) -> Self {
        Self {
            result: ProviderResult::Verified,
            locations: Vec::new(),
            identity: Some(entry.identity.clone()),
            header_ops: entry.header_ops.clone(),
        }
    }
}

impl Policy {
    /// The realm of `WWW-Authenticate` for `request`.
    pub fn realm(&self, request: &RequestView) -> String {
        self.realm.clone().unwrap_or_else(|| failure::sanitize_realm(request.host()))
    }

    /// Decides a request at `now` (Unix seconds).
    pub fn authenticate(
        &self,
        request: &RequestView,
        now: u64,
        keys: &mut dyn KeyStore,
        cache: &mut dyn TokenCache,
    ) -> Decision {
        let mut decision = Decision {
            outcome: Outcome::Allow { identity: None, header_ops: Vec::new() },
            kid_misses: Vec::new(),
            cache_hits: 0,
            cache_misses: 0,
        };
        // Inbound copies of every header we may set are removed; one the request does not
        // carry needs no removal (and no host call).
        // One pass over the request's headers, in the order of `output_headers`.
        let mut present = vec![false; self.output_headers.len()];
        for (name, _) in request.headers.iter() {
            if let Some(i) = self.output_headers.iter().position(|h| h.eq_ignore_ascii_case(name)) {
                present[i] = true;
            }
        }
        let mut header_ops: Vec<HeaderOp> = self
            .output_headers
            .iter()
            .zip(present)
            .filter(|(_, present)| *present)
            .map(|(h, _)| HeaderOp::Remove(h.clone()))
            .collect();
        if self.bypass_cors_preflight && is_cors_preflight(request) {
            decision.outcome = Outcome::Allow { identity: None, header_ops };
            return decision;
        }
        let Some(requirement) = self.rules.select(request) else {
            let failure = Failure::NoMatchingRule;
            decision.outcome = Outcome::Deny { failure, reply: failure.reply(&self.realm(request)) };
            return decision;
        };
        // What each provider made of the request, by provider index, run at most once.
        let mut states: Vec<Option<ProviderState>> = Vec::new();
        states.resize_with(self.providers.len(), || None);
        let evaluation = requirement.evaluate(self.providers.len(), &mut |i| {
            if let Some(Some(state)) = states.get(i) {
                return state.result;
            }
            let Some(provider) = self.providers.get(i) else { return ProviderResult::Missing };
            let state = self.run_provider(provider, request, now, keys, cache, &mut decision);
            let result = state.result;
            if let Some(slot) = states.get_mut(i) {
                *slot = Some(state);
            }
            result
        });
        decision.outcome = match evaluation {
            Evaluation::Pass(verified) => {
                // Credentials are removed wherever found, also those of providers `any` did
                // not need to ask: unchecked, they must not reach the upstream either.
                let mut locations: Vec<Location> = Vec::new();
                for (i, (state, provider)) in states.iter().zip(&self.providers).enumerate() {
                    match state {
                        _ if provider.forward => {}
                        Some(state) => locations.extend(state.locations.iter().cloned()),
                        None if requirement.asks(i) => {
                            locations.extend(provider.sources.find_all(request).into_iter().map(|f| f.location))
                        }
                        None => {}
                    }
                }
                header_ops.extend(extract::strip(request, &locations));
                let mut identity = None;
                for i in &verified {
                    if let Some(Some(state)) = states.get_mut(*i) {
                        header_ops.append(&mut state.header_ops);
                        if identity.is_none() {
                            identity = state.identity.take();
                        }
                    }
                }
                if self.identity_headers {
                    header_ops.extend(identity.iter().flat_map(|identity| identity.header_ops()));
                }
                Outcome::Allow { identity, header_ops }
            }
            Evaluation::Fail(failure) => Outcome::Deny { failure, reply: failure.reply(&self.realm(request)) },
            Evaluation::NeedKeys(ids) => Outcome::WaitForKeys {
                providers: ids.iter().filter_map(|i| self.providers.get(*i)).map(|p| p.name.clone()).collect(),
            },
        };
        decision
    }

    /// Runs a provider on every credential its locations hold: all must verify (see
    /// [`extract::Sources::find_all`]). The first credential gives the identity; the first that
    /// does not verify gives the result.
    fn run_provider(
        &self,
        provider: &Provider,
        request: &RequestView,
        now: u64,
        keys: &mut dyn KeyStore,
        cache: &mut dyn TokenCache,
        decision: &mut Decision,
    ) -> ProviderState {
        let found = provider.sources.find_all(request);
        let mut state: Option<ProviderState> = None;
        for credential in &found {
            let checked = self.check_credential(provider, &credential.value, now, keys, cache, decision);
            let verified = checked.result == ProviderResult::Verified;
            if state.is_none() || !verified {
                state = Some(checked);
            }
            if !verified {
                break;
            }
        }
        let mut state = state.unwrap_or_else(|| ProviderState::without_identity(ProviderResult::Missing));
        state.locations = found.into_iter().map(|f| f.location).collect();
        state
    }

    /// Checks one credential of a provider.
    fn check_credential(
        &self,
        provider: &Provider,
        credential: &str,
        now: u64,
        keys: &mut dyn KeyStore,
        cache: &mut dyn TokenCache,
        decision: &mut Decision,
    ) -> ProviderState {
        let failed = |failure| ProviderState::without_identity(ProviderResult::Failed(failure));
        if credential.len() > self.max_token_bytes {
            return failed(Failure::TooLarge);
        }
        let jwt = match &provider.kind {
            ProviderKind::ApiKey(api_keys) => {
                return match api_keys.authenticate(credential) {
                    Some(key) => ProviderState {
                        result: ProviderResult::Verified,
                        locations: Vec::new(),
                        identity: Some(SharedIdentity::new(Identity {
                            provider: provider.name.clone(),
                            consumer: Some(key.consumer.clone()),
                            tier: key.tier.clone(),
                            ..Identity::default()
                        })),
                        header_ops: Vec::new(),
                    },
                    None => failed(Failure::ApiKeyInvalid),
                };
            }
            ProviderKind::Jwt(jwt) => jwt,
        };
        let token = credential;
        let key_set = match &jwt.keys {
            KeySource::Static(set) => Some(set),
            KeySource::Remote(_) => keys.key_set(&provider.name),
        };
        let ready = |version: u64, valid_until: u64, claims| {
            let identity = jwt.output.identity_from(&provider.name, claims);
            let payload_b64 = token.split('.').nth(1).unwrap_or_default();
            let header_ops = jwt.output.header_ops(&identity, payload_b64);
            ReadyEntry {
                provider: provider.name.clone(),
                key_set_version: version,
                valid_until,
                identity: SharedIdentity::new(identity),
                header_ops,
            }
        };
        if let (Some(set), true) = (key_set, self.cache.enabled) {
            let version = set.version() ^ jwt.rules_fingerprint;
            // This VM's entry for the very token: the outputs are ready.
            if let Some(entry) = cache.lookup(token).filter(|e| e.usable(&provider.name, version, now)) {
                decision.cache_hits += 1;
                return ProviderState::ready(&entry);
            }
            // Another worker's, by SHA-256 of the token: made ready once, then kept here.
            let hash = token_hash(token);
            if let Some(stored) = cache.lookup_stored(&hash).filter(|e| e.usable(&hash, &provider.name, version, now)) {
                decision.cache_hits += 1;
                let entry = Rc::new(ready(version, stored.valid_until, stored.claims));
                cache.store(token, Rc::clone(&entry), None);
                return ProviderState::ready(&entry);
            }
        }
        let parsed = match ParsedToken::parse(token, self.max_token_bytes) {
            Ok(parsed) => parsed,
            Err(failure) => return failed(failure),
        };
        if let Err(failure) = parsed.check_claims(&jwt.rules, now) {
            return failed(failure);
        }
        let Some(set) = key_set else {
            return ProviderState::without_identity(ProviderResult::NeedKeys);
        };
        decision.cache_misses += 1;
        if let Err(failure) = parsed.check_signature(token, set, &jwt.rules, now) {
            if failure == Failure::UnknownKid && matches!(jwt.keys, KeySource::Remote(_)) {
                decision.kid_misses.push(provider.name.clone());
            }
            return failed(failure);
        }
        let version = set.version() ^ jwt.rules_fingerprint;
        let verified_token = parsed.into_verified();
        let valid_until = verified_token.exp.unwrap_or(now.saturating_add(self.cache.ttl_without_exp_seconds));
        if !self.cache.enabled {
            return ProviderState::ready(&ready(version, valid_until, verified_token.claims));
        }
        let stored = CacheEntry {
            token_hash: token_hash(token),
            provider: provider.name.clone(),
            key_set_version: version,
            valid_until,
            claims: verified_token.claims,
        };
        let entry = Rc::new(ready(version, valid_until, stored.claims.clone()));
        cache.store(token, Rc::clone(&entry), Some(&stored));
        ProviderState::ready(&entry)
    }
}

/// `OPTIONS` with `Origin` and `Access-Control-Request-Method`: a CORS preflight.
pub fn is_cors_preflight(request: &RequestView) -> bool {
    request.method == "OPTIONS"
        && request.headers.contains("origin")
        && request.headers.contains("access-control-request-method")
}

#[cfg(test)]
mod tests;
