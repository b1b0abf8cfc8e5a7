//! Authorization: Istio `AuthorizationPolicy` semantics (ALLOW / DENY / AUDIT) evaluated inside
//! the proxy, with per-route policy sets, shadow mode and a configurable default.
//!
//! ```json
//! {"policies": [{
//!    "name": "payments-writers", "action": "ALLOW",
//!    "rules": [{
//!      "from": [{"source": {"principals": ["spiffe://cluster.local/ns/production/sa/order-service"]}}],
//!      "to": [{"operation": {"methods": ["POST"], "paths": ["/api/v1/payments/*"]}}]
//!    }]
//! }]}
//! ```
//!
//! Only the order-service workload (mTLS peer) may `POST` under `/api/v1/payments/`; every
//! other request is denied with 403, because ALLOW policies exist and none matches.
//!
//! Order of evaluation, as in Istio: any matching DENY policy denies; otherwise, when ALLOW
//! policies exist, the request passes only if one matches; otherwise `default_action` decides
//! (`deny` unless configured; `allow` gives Istio's behaviour). AUDIT policies never change the
//! decision; a match writes an audit line. Paths are normalized first ([`path`]); a path that
//! cannot be normalized safely is answered 400 before any policy runs.
//!
//! A request without identity gets 401 instead of 403 when authenticating could change the
//! outcome: the denying DENY rule tests the identity (`notRequestPrincipals: ["*"]`), or no
//! ALLOW policy matched but one would if the identity conditions of a rule were satisfied.
//!
//! Shadow mode (per policy, or `shadow` for the whole filter): the decision is computed as if
//! every policy were enforced; when it would deny a request the enforced policies let through,
//! the filter counts `shadow_denied` and writes a `shadow_deny` audit line, and the request passes.

pub mod cidr;
pub mod config;
mod evaluate;
pub mod matcher;
pub mod path;
pub mod policy;

use config::{AuthzConfig, DefaultAction, EscapedSlashes, PolicyConfig, ResponseConfig};
pub use evaluate::{Decision, Denial, DenyReason, Outcome, PolicyCounter};
use policy::{Action, Policy, Uses};

use crate::config::{from_json, ConfigError};
use crate::decision::LocalReply;
use crate::route::Routes;

/// A compiled authz configuration, valid by construction.
#[derive(Debug, Clone)]
pub struct Authz {
    routes: Routes<PolicySet>,
    fallback: PolicySet,
    shadow: bool,
    xff_num_trusted_hops: u32,
    escaped_slashes: EscapedSlashes,
    forward_normalized: bool,
    denied: LocalReply,
    unauthenticated: LocalReply,
    invalid_path: LocalReply,
    policies: Vec<(String, Action)>,
}

/// The request facts from the proxy that [`Authz::evaluate`] can read, per the compiled config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// [`crate::http::RequestView::source_ip`].
    pub source_ip: bool,
    /// [`crate::http::RequestView::peer_principal`].
    pub peer_principal: bool,
    /// [`crate::http::RequestView::route_name`].
    pub route_name: bool,
    /// The `destination_port` argument of [`Authz::evaluate`].
    pub destination_port: bool,
    /// The `identity` argument of [`Authz::evaluate`] (audit lines name the principal whatever
    /// the policies read).
    pub identity: bool,
}

/// The policies that apply to one route, split by action in config order.
#[derive(Debug, Clone)]
struct PolicySet {
    deny: Vec<Policy>,
    allow: Vec<Policy>,
    audit: Vec<Policy>,
    default_action: DefaultAction,
    any_shadow: bool,
}

impl Authz {
    /// Parses and compiles a JSON config.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        Self::compile(&from_json::<AuthzConfig>(bytes)?)
    }

    /// Compiles a parsed config: regexes and CIDRs compiled, names checked unique.
    pub fn compile(config: &AuthzConfig) -> Result<Self, ConfigError> {
        let mut policies: Vec<(String, Action)> = Vec::new();
        let mut defined_at: Vec<String> = Vec::new();
        let mut compile_set = |list: &[PolicyConfig],
                               field: &str,
                               default_action: DefaultAction|
         -> Result<PolicySet, ConfigError> {
            let mut set =
                PolicySet { deny: Vec::new(), allow: Vec::new(), audit: Vec::new(), default_action, any_shadow: false };
            for (i, config) in list.iter().enumerate() {
                let at = format!("{field}[{i}]");
                if let Some(first) = policies.iter().position(|(name, _)| *name == config.name) {
                    let problem = format!("duplicate policy name (first at {})", defined_at[first]);
                    return Err(ConfigError::new(format!("{at}.name"), problem));
                }
                let policy = Policy::compile(config, &at, policies.len())?;
                policies.push((policy.name.clone(), policy.action));
                defined_at.push(at);
                set.any_shadow |= policy.shadow;
                match policy.action {
                    Action::Deny => set.deny.push(policy),
                    Action::Allow => set.allow.push(policy),
                    Action::Audit => set.audit.push(policy),
                }
            }
            Ok(set)
        };
        let fallback = compile_set(&config.policies, "policies", config.default_action)?;
        let routes = Routes::compile(
            &config.routes,
            "routes",
            |route| &route.matcher,
            |route, at| {
                compile_set(
                    &route.policies,
                    &format!("{at}.policies"),
                    route.default_action.unwrap_or(config.default_action),
                )
            },
        )?;
        let denied = reply(&config.denied_response, "denied_response", (403, "forbidden", "access denied"))?
            .with_details("palisade_authz_denied");
        let unauthenticated = reply(
            &config.unauthenticated_response,
            "unauthenticated_response",
            (401, "unauthenticated", "authentication required"),
        )?
        .with_header("www-authenticate", "Bearer")
        .with_details("palisade_authz_unauthenticated");
        let invalid_path = LocalReply::json(400, "bad_request", "request path is not allowed")
            .with_details("palisade_authz_invalid_path");
        Ok(Self {
            routes,
            fallback,
            shadow: config.shadow,
            xff_num_trusted_hops: config.xff_num_trusted_hops,
            escaped_slashes: config.path_normalization.escaped_slashes,
            forward_normalized: config.path_normalization.forward_normalized,
            denied,
            unauthenticated,
            invalid_path,
            policies,
        })
    }

    /// Every policy's name and action, indexed by the ids in [`Decision`]; for defining counters.
    pub fn policies(&self) -> impl Iterator<Item = (&str, Action)> {
        self.policies.iter().map(|(name, action)| (name.as_str(), *action))
    }

    /// The name of policy `id`.
    pub fn policy_name(&self, id: usize) -> &str {
        self.policies.get(id).map_or("", |(name, _)| name.as_str())
    }

    /// Which proxy-provided facts evaluating a request can read: the filter fetches only these
    /// properties before [`Authz::evaluate`] (audit lines still get the whole request view).
    pub fn needs(&self) -> Needs {
        let uses = self
            .routes
            .values()
            .chain(std::iter::once(&self.fallback))
            .flat_map(|set| set.deny.iter().chain(&set.allow).chain(&set.audit))
            .map(Policy::uses)
            .fold(Uses::default(), Uses::union);
        Needs {
            // `remote.ip` is the peer address when no proxy is trusted (`client_ip`).
            source_ip: uses.source_ip || (uses.remote_ip && self.xff_num_trusted_hops == 0),
            peer_principal: uses.peer,
            route_name: self.routes.uses_route_name(),
            destination_port: uses.port,
            identity: uses.identity,
        }
    }

    /// Whether the whole filter runs in shadow mode.
    pub fn is_shadow(&self) -> bool {
        self.shadow
    }
}

/// Builds a JSON reply from config, checking each field.
fn reply(
    config: &ResponseConfig,
    field: &str,
    (status, code, message): (u16, &str, &str),
) -> Result<LocalReply, ConfigError> {
    let status = config.status.unwrap_or(status);
    if !(400..=599).contains(&status) {
        return Err(ConfigError::new(format!("{field}.status"), "must be 400-599"));
    }
    let code = config.code.as_deref().unwrap_or(code);
    if code.is_empty() || !code.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
        return Err(ConfigError::new(format!("{field}.code"), "must be a snake_case code"));
    }
    Ok(LocalReply::json(status, code, config.message.as_deref().unwrap_or(message)))
}

#[cfg(test)]
mod tests;
