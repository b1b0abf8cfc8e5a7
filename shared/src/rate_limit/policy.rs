//! The compiled policy and the one call a filter makes per request.

use crate::audit::{AuditDecision, AuditEvent};
use crate::decision::{HeaderOp, LocalReply, Verdict};
use crate::http::{client_ip, RequestView};
use crate::identity::{claim_strings, ClaimPath, Identity};
use crate::route::Routes;

use super::bucket::Rate;
use super::headers::{allowed_headers, too_many_requests, HeaderSettings};
use super::keys::{ClientIpPrefix, Descriptor, Facts, KeySource};
use super::limiter::{evaluate, Check, Failure, LimitReason, Outcome, Settings};
use super::store::Store;
use super::table::{KeyHasher, Table};

/// The filter name in audit events.
pub const FILTER: &str = "rate-limit";

/// Deny or allow when no decision can be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureMode {
    /// Deny with 503.
    Closed,
    /// Allow.
    Open,
}

/// How the caller's tier is found.
#[derive(Debug, Clone)]
pub struct TierSource {
    /// Claim holding the tier, instead of the identity's `tier`.
    pub claim: Option<ClaimPath>,
    /// Tier without identity.
    pub anonymous: String,
    /// Tier of an identity that names none.
    pub authenticated: String,
}

impl TierSource {
    /// The caller's tier.
    pub fn tier(&self, identity: Option<&Identity>) -> String {
        let Some(identity) = identity else {
            return self.anonymous.clone();
        };
        let named = match &self.claim {
            Some(path) => identity.claim(path).and_then(|value| claim_strings(value, false).into_iter().next()),
            None => identity.tier.clone(),
        };
        named.filter(|tier| !tier.is_empty()).unwrap_or_else(|| self.authenticated.clone())
    }
}

/// What to do when a part of the key is absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MissingKey {
    /// Deny with 429.
    Deny,
    /// Do not apply the limit.
    Skip,
    /// Use this key instead; deny if it is absent too.
    Fallback(Vec<KeySource>),
}

/// One compiled limit.
#[derive(Debug, Clone)]
pub struct Limit {
    /// Name (policy name in headers, part of shared-data keys).
    pub name: String,
    /// Key parts.
    pub key: Vec<KeySource>,
    /// Missing key behaviour.
    pub on_missing_key: MissingKey,
    /// Rate 0 is the default; rate `i + 1` belongs to `tiers[i]`.
    pub rates: Vec<Rate>,
    /// Tier names with their own rate.
    pub tiers: Vec<String>,
    /// Where the buckets live.
    pub table: Table,
}

/// Per-request cost by method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cost {
    /// Cost of methods not listed.
    pub default: u64,
    /// Cost by method.
    pub methods: Vec<(String, u64)>,
}

impl Cost {
    /// The cost of a request with `method`.
    pub fn of(&self, method: &str) -> u64 {
        self.methods.iter().find(|(m, _)| m == method).map_or(self.default, |(_, cost)| *cost)
    }
}

/// What a matching route enforces.
#[derive(Debug, Clone)]
pub struct RoutePlan {
    /// Indexes into the policy's limits.
    pub limits: Vec<usize>,
    /// The request's cost.
    pub cost: Cost,
}

/// A compiled rate-limit configuration.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Count and audit, never block.
    pub shadow: bool,
    /// Behaviour without a decision.
    pub failure_mode: FailureMode,
    /// CAS budget and full-table behaviour.
    pub settings: Settings,
    /// Which headers to send.
    pub headers: HeaderSettings,
    /// Proxies trusted to append to `X-Forwarded-For`.
    pub trusted_proxies: u32,
    /// How much of the client's address is its key.
    pub client_ip_prefix: ClientIpPrefix,
    /// How the tier is found.
    pub tiers: TierSource,
    /// Keyed hash of descriptors.
    pub hasher: KeyHasher,
    /// Whether `hash_seed` was set (without it the hash key is derivable from the domain).
    pub seeded: bool,
    /// Limits, in name order.
    pub limits: Vec<Limit>,
    /// Routes.
    pub routes: Routes<RoutePlan>,
}

/// How a request was counted (one metric each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// No route matched or every limit was skipped.
    Unlimited,
    /// Every limit admitted.
    Allowed,
    /// Denied with 429.
    Limited,
    /// Would have been denied; shadow mode let it through.
    ShadowLimited,
    /// No decision; failure mode open let it through.
    FailedOpen,
    /// No decision; failure mode closed denied it with 503.
    FailedClosed,
}

/// Counts for the filter's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metrics {
    /// The main outcome.
    pub counted: Counted,
    /// CAS conflicts met.
    pub cas_retries: u32,
    /// Whether CAS retries ran out.
    pub cas_exhausted: bool,
    /// Whether a key found its group full.
    pub table_overflow: bool,
    /// Whether shared data failed.
    pub store_error: bool,
    /// Refunds that could not be written.
    pub refunds_lost: u32,
}

/// Everything the filter applies for one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Continue or answer.
    pub verdict: Verdict,
    /// Headers to set on the response of an allowed request.
    pub response_headers: Vec<HeaderOp>,
    /// The audit line, for limited (or shadow-limited, or failed-closed) requests.
    pub audit: Option<AuditEvent>,
    /// Counts.
    pub metrics: Metrics,
}

impl Policy {
    /// Every shared-data key of every table, to create once at configure.
    pub fn table_keys(&self) -> impl Iterator<Item = String> + '_ {
        self.limits.iter().flat_map(|limit| limit.table.all_keys(limit.rates.len()))
    }

    /// Whether deciding reads [`RequestView::source_ip`] (a key or fallback uses the client
    /// IP); the filter reads `source.address` only then, or for an audit line.
    pub fn reads_source_ip(&self) -> bool {
        self.key_sources().any(|source| *source == KeySource::ClientIp)
    }

    /// Whether deciding reads [`RequestView::route_name`] (a route matches on it, or a key
    /// uses it); the filter reads `xds.route_name` only then, or for an audit line.
    pub fn reads_route_name(&self) -> bool {
        self.routes.uses_route_name() || self.key_sources().any(|source| *source == KeySource::Route)
    }

    /// Whether deciding reads the identity (a key part comes from it, or a limit has tiers);
    /// the filter reads filter state only then, or for an audit line's principal.
    pub fn reads_identity(&self) -> bool {
        self.key_sources().any(KeySource::reads_identity) || self.limits.iter().any(|limit| !limit.tiers.is_empty())
    }

    fn key_sources(&self) -> impl Iterator<Item = &KeySource> {
        self.limits.iter().flat_map(|limit| {
            let fallback = match &limit.on_missing_key {
                MissingKey::Fallback(sources) => sources.as_slice(),
                MissingKey::Deny | MissingKey::Skip => &[],
            };
            limit.key.iter().chain(fallback)
        })
    }

    /// Decides on `request` at `now_ms`, spending tokens in `store`.
    pub fn check<S: Store>(
        &self,
        store: &mut S,
        request: &RequestView,
        identity: Option<&Identity>,
        now_ms: u64,
    ) -> Decision {
        let Some(route) = self.routes.select(request) else {
            return self.unlimited();
        };
        let client_net = client_ip(request, self.trusted_proxies as usize).map(|ip| self.client_ip_prefix.network(ip));
        let facts = Facts { request, identity, client_net };
        let tier = self.tiers.tier(identity);
        let cost = route.cost.of(&request.method);
        let mut checks = Vec::with_capacity(route.limits.len());
        for limit in route.limits.iter().filter_map(|&index| self.limits.get(index)) {
            match self.check_for(limit, &facts, &tier, cost) {
                Ok(Some(check)) => checks.push(check),
                Ok(None) => {}
                Err(()) => return self.limited_without_key(request, identity, limit),
            }
        }
        if checks.is_empty() {
            return self.unlimited();
        }
        let evaluation = evaluate(store, &checks, now_ms, self.settings);
        let stats = evaluation.stats;
        let mut metrics = Metrics {
            counted: Counted::Allowed,
            cas_retries: stats.cas_retries,
            cas_exhausted: false,
            table_overflow: stats.table_full,
            store_error: false,
            refunds_lost: stats.refunds_lost,
        };
        match evaluation.outcome {
            Outcome::Admitted if evaluation.statuses.is_empty() => {
                metrics.counted = Counted::Unlimited;
                Decision { verdict: Verdict::pass(), response_headers: Vec::new(), audit: None, metrics }
            }
            Outcome::Admitted => Decision {
                verdict: Verdict::pass(),
                response_headers: allowed_headers(&evaluation.statuses, self.headers),
                audit: None,
                metrics,
            },
            Outcome::Limited { by, retry_after_ms, reason } => {
                let reply = too_many_requests(&evaluation.statuses, by, retry_after_ms, self.headers);
                let rule = evaluation.statuses.get(by).map_or("", |status| status.limit);
                let reason = match reason {
                    LimitReason::Exhausted => "rate_limited",
                    LimitReason::TableFull => "table_full",
                };
                self.deny(request, identity, reply, reason, rule, metrics)
            }
            Outcome::Failed(failure) => {
                metrics.cas_exhausted = failure == Failure::CasExhausted;
                metrics.store_error = failure == Failure::Store;
                let reason = match failure {
                    Failure::CasExhausted => "cas_exhausted",
                    Failure::Store => "store_error",
                };
                if self.failure_mode == FailureMode::Open || self.shadow {
                    metrics.counted = Counted::FailedOpen;
                    return Decision { verdict: Verdict::pass(), response_headers: Vec::new(), audit: None, metrics };
                }
                metrics.counted = Counted::FailedClosed;
                let reply = LocalReply::json(503, "rate_limit_unavailable", "rate limit state is unavailable");
                let audit = AuditEvent::new(FILTER, AuditDecision::Deny, reason, request)
                    .status(503)
                    .principal(identity.and_then(Identity::principal));
                Decision { verdict: Verdict::Respond(reply), response_headers: Vec::new(), audit: Some(audit), metrics }
            }
        }
    }

    /// The check for one limit; `Ok(None)` when skipped, `Err` when the key is missing and
    /// the limit denies then.
    fn check_for<'p>(
        &'p self,
        limit: &'p Limit,
        facts: &Facts<'_>,
        tier: &str,
        cost: u64,
    ) -> Result<Option<Check<'p>>, ()> {
        let rate_index = limit.tiers.iter().position(|t| t == tier).map_or(0, |i| i + 1);
        let rate = limit.rates.get(rate_index).copied().ok_or(())?;
        let mut descriptor = Descriptor::default();
        descriptor.push(["limit", ""], &limit.name);
        if !limit.tiers.is_empty() {
            let label = limit.tiers.get(rate_index.wrapping_sub(1)).map_or("*", String::as_str);
            descriptor.push(["tier", ""], label);
        }
        if !descriptor.push_sources(&limit.key, facts) {
            match &limit.on_missing_key {
                MissingKey::Deny => return Err(()),
                MissingKey::Skip => return Ok(None),
                MissingKey::Fallback(sources) if descriptor.push_sources(sources, facts) => {}
                MissingKey::Fallback(_) => return Err(()),
            }
        }
        // The rate is hashed too: after a config change a stored level is never read in the
        // units of another rate; the key simply starts with a full bucket.
        let mut hashed = descriptor.into_bytes();
        rate.push_id(&mut hashed);
        let fingerprint = self.hasher.fingerprint(&hashed);
        Ok(Some(Check { limit: &limit.name, table: &limit.table, rate, rate_index, fingerprint, cost }))
    }

    fn unlimited(&self) -> Decision {
        let metrics = Metrics {
            counted: Counted::Unlimited,
            cas_retries: 0,
            cas_exhausted: false,
            table_overflow: false,
            store_error: false,
            refunds_lost: 0,
        };
        Decision { verdict: Verdict::pass(), response_headers: Vec::new(), audit: None, metrics }
    }

    fn limited_without_key(&self, request: &RequestView, identity: Option<&Identity>, limit: &Limit) -> Decision {
        let reply = LocalReply::json(429, "rate_limited", "the request carries no rate limit key");
        let metrics = self.unlimited().metrics;
        self.deny(request, identity, reply, "missing_key", &limit.name, metrics)
    }

    /// A denial, or in shadow mode a pass that is counted and audited as one.
    fn deny(
        &self,
        request: &RequestView,
        identity: Option<&Identity>,
        reply: LocalReply,
        reason: &str,
        rule: &str,
        mut metrics: Metrics,
    ) -> Decision {
        let decision = if self.shadow { AuditDecision::ShadowDeny } else { AuditDecision::Deny };
        let audit = AuditEvent::new(FILTER, decision, reason, request)
            .rule(rule)
            .status(reply.status)
            .principal(identity.and_then(Identity::principal));
        if self.shadow {
            metrics.counted = Counted::ShadowLimited;
            return Decision { verdict: Verdict::pass(), response_headers: Vec::new(), audit: Some(audit), metrics };
        }
        metrics.counted = Counted::Limited;
        Decision { verdict: Verdict::Respond(reply), response_headers: Vec::new(), audit: Some(audit), metrics }
    }
}
