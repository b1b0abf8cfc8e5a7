//! Evaluating one request: gather its facts once, decide with Istio's order, then turn the
//! decision into a verdict, counter hits and audit events. Nothing here allocates in
//! proportion to anything but the request and the config, and nothing is cached across requests.

use super::config::DefaultAction;
use super::path::normalize;
use super::policy::{Facts, Mode, Policy};
use super::{Authz, PolicySet};
use crate::audit::{AuditDecision, AuditEvent};
use crate::decision::{HeaderOp, Verdict};
use crate::http::{client_ip, host_without_port, RequestView};
use crate::identity::Identity;

/// What the filter decided for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The outcome applied to the request.
    pub enforced: Outcome,
    /// The outcome if every policy and the filter were enforced (equal to `enforced` when
    /// nothing is in shadow mode).
    pub would_be: Outcome,
    /// Ids of the AUDIT policies that matched.
    pub audits: Vec<usize>,
    /// The normalized `:path` to forward, when `forward_normalized` is set and it differs.
    pub rewrite_path: Option<String>,
}

/// Allow or deny, and which policy decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The request passes; the matching ALLOW policy, if one decided.
    Allow(Option<usize>),
    /// The request is stopped.
    Deny(Denial),
}

/// Why a request is denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Denial {
    /// The reason.
    pub reason: DenyReason,
    /// The DENY policy that matched, if one did.
    pub policy: Option<usize>,
    /// Answer 401: an identity could change the outcome and the request has none.
    pub unauthenticated: bool,
}

/// The reasons for a denial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    /// The path cannot be normalized safely.
    InvalidPath,
    /// A DENY policy matched.
    DenyPolicy,
    /// ALLOW policies exist and none matched.
    NoAllowMatch,
    /// No ALLOW policy applies and `default_action` is deny.
    DefaultDeny,
}

impl DenyReason {
    /// The stable code written to audit lines.
    pub fn code(self) -> &'static str {
        match self {
            DenyReason::InvalidPath => "invalid_path",
            DenyReason::DenyPolicy => "policy_denied",
            DenyReason::NoAllowMatch => "no_allow_policy_matched",
            DenyReason::DefaultDeny => "default_deny",
        }
    }
}

/// A per-policy counter: `palisade.authz.policy.<name>.<counter>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyCounter {
    /// An enforced ALLOW policy let the request through.
    Allowed,
    /// A shadow ALLOW policy (or any, in filter shadow mode) would have let it through.
    ShadowAllowed,
    /// An enforced DENY policy stopped the request.
    Denied,
    /// A DENY policy would have stopped a request that passed.
    ShadowDenied,
    /// An AUDIT policy matched.
    Audited,
}

impl PolicyCounter {
    /// The counter's last name segment.
    pub fn name(self) -> &'static str {
        match self {
            PolicyCounter::Allowed => "allowed",
            PolicyCounter::ShadowAllowed => "shadow_allowed",
            PolicyCounter::Denied => "denied",
            PolicyCounter::ShadowDenied => "shadow_denied",
            PolicyCounter::Audited => "audited",
        }
    }

    /// The counters a policy with `action` can produce, to define at configure time.
    pub fn for_action(action: super::policy::Action) -> &'static [PolicyCounter] {
        use super::policy::Action;
        match action {
            Action::Allow => &[PolicyCounter::Allowed, PolicyCounter::ShadowAllowed],
            Action::Deny => &[PolicyCounter::Denied, PolicyCounter::ShadowDenied],
            Action::Audit => &[PolicyCounter::Audited],
        }
    }
}

impl Decision {
    /// Whether the enforced outcome lets the request through while the full one would not.
    pub fn shadow_denied(&self) -> bool {
        matches!((self.enforced, self.would_be), (Outcome::Allow(_), Outcome::Deny(_)))
    }

    /// Whether [`Authz::audit_events`] yields any event for this decision: a denial (enforced
    /// or shadow) or an AUDIT match.
    pub fn writes_audit(&self) -> bool {
        matches!(self.enforced, Outcome::Deny(_))
            || matches!(self.would_be, Outcome::Deny(_))
            || !self.audits.is_empty()
    }

    /// The per-policy counters this decision increments.
    pub fn policy_hits(&self) -> impl Iterator<Item = (usize, PolicyCounter)> + '_ {
        let enforced = match self.enforced {
            Outcome::Allow(Some(id)) => Some((id, PolicyCounter::Allowed)),
            Outcome::Deny(Denial { policy: Some(id), .. }) => Some((id, PolicyCounter::Denied)),
            _ => None,
        };
        let shadow = match (self.enforced, self.would_be) {
            (Outcome::Allow(_), Outcome::Deny(Denial { policy: Some(id), .. })) => {
                Some((id, PolicyCounter::ShadowDenied))
            }
            (Outcome::Allow(enforced), Outcome::Allow(Some(id))) if enforced != Some(id) => {
                Some((id, PolicyCounter::ShadowAllowed))
            }
            _ => None,
        };
        enforced.into_iter().chain(shadow).chain(self.audits.iter().map(|id| (*id, PolicyCounter::Audited)))
    }
}

impl Authz {
    /// Decides for `request`, given the identity jwt-authn left (if any) and the connection's
    /// destination port (if the proxy told it).
    pub fn evaluate(
        &self,
        request: &RequestView,
        identity: Option<&Identity>,
        destination_port: Option<u16>,
    ) -> Decision {
        let path = match normalize(request.path_only(), self.escaped_slashes) {
            Ok(path) => path,
            Err(_) => {
                let denial =
                    Outcome::Deny(Denial { reason: DenyReason::InvalidPath, policy: None, unauthenticated: false });
                let enforced = if self.shadow { Outcome::Allow(None) } else { denial };
                return Decision { enforced, would_be: denial, audits: Vec::new(), rewrite_path: None };
            }
        };
        let set = self.policy_set(request, &path);
        let principal = identity.and_then(Identity::principal);
        let peer = request.peer_principal.as_deref().filter(|p| !p.is_empty());
        let facts = Facts {
            method: &request.method,
            path: &path,
            host: request.host(),
            port: destination_port.or_else(|| authority_port(request)),
            headers: &request.headers,
            source_ip: request.source_ip,
            remote_ip: client_ip(request, self.xff_num_trusted_hops as usize),
            unknown_remote_ip_matches: false,
            peer,
            namespace: peer.and_then(spiffe_namespace),
            identity,
            request_principal: principal.as_deref(),
        };
        let would_be = set.decide(&facts, true);
        let enforced = match (self.shadow, set.any_shadow) {
            (true, _) => Outcome::Allow(None),
            (false, true) => set.decide(&facts, false),
            (false, false) => would_be,
        };
        let audits =
            set.audit.iter().filter(|p| p.matching_rule(&facts, Mode::Actual).is_some()).map(|p| p.id).collect();
        let rewrite_path =
            self.forward_normalized.then(|| super::path::encode_for_forwarding(&path)).and_then(|encoded| {
                let forwarded = match request.query() {
                    Some(query) => format!("{encoded}?{query}"),
                    None => encoded,
                };
                (forwarded != request.path).then_some(forwarded)
            });
        Decision { enforced, would_be, audits, rewrite_path }
    }

    /// The route's policy set, chosen on the normalized path: `/public/../admin` must not
    /// select the policies of `/public/`.
    fn policy_set(&self, request: &RequestView, path: &str) -> &PolicySet {
        let selected = if path == request.path_only() {
            self.routes.select(request)
        } else {
            let normalized = RequestView {
                method: request.method.clone(),
                path: path.to_string(),
                authority: request.authority.clone(),
                route_name: request.route_name.clone(),
                ..RequestView::default()
            };
            self.routes.select(&normalized)
        };
        selected.unwrap_or(&self.fallback)
    }

    /// The verdict to apply: continue (maybe with the normalized path) or reply.
    pub fn verdict(&self, decision: &Decision) -> Verdict {
        match decision.enforced {
            Outcome::Allow(_) => Verdict::Continue(
                decision.rewrite_path.iter().map(|p| HeaderOp::Set(":path".into(), p.clone())).collect(),
            ),
            Outcome::Deny(denial) => Verdict::Respond(self.reply_for(denial).clone()),
        }
    }

    fn reply_for(&self, denial: Denial) -> &crate::decision::LocalReply {
        match denial {
            Denial { reason: DenyReason::InvalidPath, .. } => &self.invalid_path,
            Denial { unauthenticated: true, .. } => &self.unauthenticated,
            _ => &self.denied,
        }
    }

    /// Audit lines for `decision`: one per denial (enforced or shadow), one per AUDIT match.
    pub fn audit_events(
        &self,
        decision: &Decision,
        request: &RequestView,
        identity: Option<&Identity>,
    ) -> Vec<AuditEvent> {
        let principal = identity.and_then(Identity::principal);
        let event = |kind: AuditDecision, reason: &str, policy: Option<usize>| {
            let event = AuditEvent::new("authz", kind, reason, request).principal(principal.clone());
            match policy {
                Some(id) => event.rule(self.policy_name(id)),
                None => event,
            }
        };
        let mut events = Vec::new();
        match (decision.enforced, decision.would_be) {
            (Outcome::Deny(denial), _) => {
                let status = self.reply_for(denial).status;
                events.push(event(AuditDecision::Deny, denial.reason.code(), denial.policy).status(status));
            }
            (Outcome::Allow(_), Outcome::Deny(denial)) => {
                let status = self.reply_for(denial).status;
                events.push(event(AuditDecision::ShadowDeny, denial.reason.code(), denial.policy).status(status));
            }
            _ => {}
        }
        events.extend(decision.audits.iter().map(|id| event(AuditDecision::Audit, "audit_policy", Some(*id))));
        events
    }
}

impl PolicySet {
    /// Istio's order: DENY, then ALLOW, then the default. `with_shadow` includes shadow policies.
    fn decide(&self, facts: &Facts<'_>, with_shadow: bool) -> Outcome {
        let active = |p: &&Policy| with_shadow || !p.shadow;
        let anonymous = facts.identity.is_none();
        for policy in self.deny.iter().filter(active) {
            if let Some(rule) = policy.matching_rule(facts, Mode::Actual) {
                let unauthenticated = anonymous && rule.needs_identity;
                return Outcome::Deny(Denial {
                    reason: DenyReason::DenyPolicy,
                    policy: Some(policy.id),
                    unauthenticated,
                });
            }
        }
        let mut allows = self.allow.iter().filter(active).peekable();
        if allows.peek().is_none() {
            return match self.default_action {
                DefaultAction::Allow => Outcome::Allow(None),
                DefaultAction::Deny => {
                    Outcome::Deny(Denial { reason: DenyReason::DefaultDeny, policy: None, unauthenticated: false })
                }
            };
        }
        if let Some(policy) = allows.find(|p| p.matching_rule(facts, Mode::Actual).is_some()) {
            return Outcome::Allow(Some(policy.id));
        }
        let unauthenticated = anonymous
            && self
                .allow
                .iter()
                .filter(active)
                .any(|p| p.matching_rule(facts, Mode::AssumeIdentity).is_some_and(|rule| rule.needs_identity));
        Outcome::Deny(Denial { reason: DenyReason::NoAllowMatch, policy: None, unauthenticated })
    }
}

/// The port from `:authority`, else the scheme's default.
fn authority_port(request: &RequestView) -> Option<u16> {
    let host = host_without_port(&request.authority);
    match request.authority.get(host.len()..).and_then(|rest| rest.strip_prefix(':')) {
        Some(port) => port.parse().ok(),
        None => match request.scheme.as_str() {
            "https" => Some(443),
            "http" => Some(80),
            _ => None,
        },
    }
}

/// `spiffe://<trust domain>/ns/<namespace>/sa/<account>` -> `<namespace>`.
fn spiffe_namespace(peer: &str) -> Option<&str> {
    let mut parts = peer.strip_prefix("spiffe://")?.split('/').skip(1);
    if parts.next()? != "ns" {
        return None;
    }
    parts.next().filter(|ns| !ns.is_empty())
}
