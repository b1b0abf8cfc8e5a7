//! The authz configuration as written in JSON: Istio `AuthorizationPolicy` vocabulary for the
//! policies (camelCase, so an Istio `spec` can be pasted), snake_case for Palisade's own settings
//! like every other Palisade filter. [`super::Authz::compile`] turns it into a checked policy.

use serde::de::{Deserializer, Error as _};
use serde::Deserialize;
use serde_json::Value;

use crate::route::RouteMatchConfig;

/// The filter's whole configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AuthzConfig {
    /// Policies for requests that no entry of `routes` matches.
    #[serde(default)]
    pub policies: Vec<PolicyConfig>,
    /// What happens to a request when no ALLOW policy applies to it; `deny` unless set.
    #[serde(default)]
    pub default_action: DefaultAction,
    /// Per-route policy sets; the first whose `match` fits wins.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Whole-filter shadow mode: decide, count and audit, but never stop a request.
    #[serde(default)]
    pub shadow: bool,
    /// Trusted proxies that append to `x-forwarded-for` (Envoy itself included when it appends):
    /// `0` = the remote IP is the connection peer; `n` = the `n`th entry from the right
    /// ([`crate::http::client_ip`], the same meaning as rate-limit's `trusted_proxies`).
    #[serde(default)]
    pub xff_num_trusted_hops: u32,
    /// How request paths are normalized before matching.
    #[serde(default)]
    pub path_normalization: PathNormalizationConfig,
    /// The reply to a denied request (default 403 `forbidden`).
    #[serde(default)]
    pub denied_response: ResponseConfig,
    /// The reply when a policy needs an identity and the request has none (default 401).
    #[serde(default)]
    pub unauthenticated_response: ResponseConfig,
}

/// The decision for a request that no ALLOW policy covers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum DefaultAction {
    /// Deny (zero trust: authorize every action).
    #[default]
    Deny,
    /// Allow, as Istio does when a workload has no ALLOW policy.
    Allow,
}

/// One per-route policy set.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Which requests this set applies to.
    #[serde(rename = "match")]
    pub matcher: RouteMatchConfig,
    /// The route's policies (the top-level ones do not apply to it).
    #[serde(default)]
    pub policies: Vec<PolicyConfig>,
    /// Overrides the top-level `default_action` for this route.
    #[serde(default)]
    pub default_action: Option<DefaultAction>,
}

/// Path normalization settings.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PathNormalizationConfig {
    /// What to do with `%2F` in a path.
    #[serde(default)]
    pub escaped_slashes: EscapedSlashes,
    /// Forward the normalized path upstream (`:path` rewritten), so the upstream serves exactly
    /// what was authorized.
    #[serde(default)]
    pub forward_normalized: bool,
}

/// Handling of `%2F` (an encoded `/`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum EscapedSlashes {
    /// The path is invalid (Envoy's `REJECT_REQUEST`).
    #[default]
    Reject,
    /// Decode it to `/` before matching (Envoy's `UNESCAPE_AND_FORWARD`).
    Decode,
}

/// A local reply: every field optional, defaults depend on the reply.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ResponseConfig {
    /// HTTP status, 400-599.
    #[serde(default)]
    pub status: Option<u16>,
    /// The JSON body's `error` field: a snake_case code.
    #[serde(default)]
    pub code: Option<String>,
    /// The JSON body's `message` field.
    #[serde(default)]
    pub message: Option<String>,
}

/// One policy, Istio's `AuthorizationPolicy.spec` plus a name and a shadow switch.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicyConfig {
    /// Unique name; appears in stats and audit lines, never in replies.
    pub name: String,
    /// ALLOW (default), DENY or AUDIT.
    #[serde(default)]
    pub action: ActionConfig,
    /// Decide and count, but do not enforce.
    #[serde(default)]
    pub shadow: bool,
    /// The policy matches when any rule matches; no rules match nothing (as in Istio).
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
}

/// A policy's action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum ActionConfig {
    /// Requests matching no ALLOW policy are denied.
    #[default]
    #[serde(rename = "ALLOW")]
    Allow,
    /// A matching request is denied.
    #[serde(rename = "DENY")]
    Deny,
    /// A matching request is audited; the decision does not change.
    #[serde(rename = "AUDIT")]
    Audit,
}

/// A rule: every present part must match (`from` and `to` match when any entry does).
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Who sends the request.
    #[serde(default)]
    pub from: Vec<FromConfig>,
    /// What the request does.
    #[serde(default)]
    pub to: Vec<ToConfig>,
    /// Further conditions, all of which must hold.
    #[serde(default)]
    pub when: Vec<ConditionConfig>,
}

/// An entry of `from`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct FromConfig {
    /// The source.
    pub source: SourceConfig,
}

/// An entry of `to`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ToConfig {
    /// The operation.
    pub operation: OperationConfig,
}

/// Istio's `Source`: every present field must match; a field matches when any value does, its
/// `not` form when none does.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SourceConfig {
    /// mTLS peer identities (URI SAN), e.g. `cluster.local/ns/prod/sa/web`.
    #[serde(default)]
    pub principals: Vec<ValueConfig>,
    /// Negated `principals`.
    #[serde(default)]
    pub not_principals: Vec<ValueConfig>,
    /// Namespaces of the mTLS peer's SPIFFE ID.
    #[serde(default)]
    pub namespaces: Vec<ValueConfig>,
    /// Negated `namespaces`.
    #[serde(default)]
    pub not_namespaces: Vec<ValueConfig>,
    /// Request principals (`iss/sub`) from the identity jwt-authn established.
    #[serde(default)]
    pub request_principals: Vec<ValueConfig>,
    /// Negated `request_principals`.
    #[serde(default)]
    pub not_request_principals: Vec<ValueConfig>,
    /// CIDRs of the downstream connection's peer address.
    #[serde(default)]
    pub ip_blocks: Vec<String>,
    /// Negated `ip_blocks`.
    #[serde(default)]
    pub not_ip_blocks: Vec<String>,
    /// CIDRs of the original client, read from `x-forwarded-for` at the trusted position.
    #[serde(default)]
    pub remote_ip_blocks: Vec<String>,
    /// Negated `remote_ip_blocks`.
    #[serde(default)]
    pub not_remote_ip_blocks: Vec<String>,
}

/// Istio's `Operation`.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OperationConfig {
    /// `:authority` host without port, case-insensitive.
    #[serde(default)]
    pub hosts: Vec<ValueConfig>,
    /// Negated `hosts`.
    #[serde(default)]
    pub not_hosts: Vec<ValueConfig>,
    /// Destination ports, as strings like Istio.
    #[serde(default)]
    pub ports: Vec<String>,
    /// Negated `ports`.
    #[serde(default)]
    pub not_ports: Vec<String>,
    /// Methods, case-sensitive.
    #[serde(default)]
    pub methods: Vec<ValueConfig>,
    /// Negated `methods`.
    #[serde(default)]
    pub not_methods: Vec<ValueConfig>,
    /// Normalized paths, query excluded.
    #[serde(default)]
    pub paths: Vec<ValueConfig>,
    /// Negated `paths`.
    #[serde(default)]
    pub not_paths: Vec<ValueConfig>,
}

/// Istio's `Condition`, plus `allValues`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConditionConfig {
    /// What to test, e.g. `request.auth.claims[groups]` or `request.headers[x-tenant]`.
    pub key: String,
    /// Holds when any value of the key matches any of these.
    #[serde(default)]
    pub values: Vec<ValueConfig>,
    /// Holds when no value of the key matches any of these.
    #[serde(default)]
    pub not_values: Vec<ValueConfig>,
    /// Holds when each of these matches some value of the key (all-of, for list claims).
    #[serde(default)]
    pub all_values: Vec<ValueConfig>,
}

/// A value to match: a string with Istio's wildcards (`abc`, `abc*`, `*abc`, `*`), or an
/// object naming the match kind: `{"exact"|"prefix"|"suffix"|"glob"|"regex": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueConfig {
    /// Istio form.
    Istio(String),
    /// Equal.
    Exact(String),
    /// Starts with.
    Prefix(String),
    /// Ends with.
    Suffix(String),
    /// `*` matches within one `/`-separated segment, `**` across segments.
    Glob(String),
    /// A regex that must match the whole value.
    Regex(String),
}

/// The two forms [`ValueConfig`]'s hand-written `Deserialize` accepts.
#[cfg(feature = "schema")]
impl schemars::JsonSchema for ValueConfig {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ValueConfig".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let kinds = ["exact", "prefix", "suffix", "glob", "regex"].map(|kind| {
            serde_json::json!({"type": "object", "properties": {kind: {"type": "string"}},
                "required": [kind], "additionalProperties": false})
        });
        let mut forms = vec![serde_json::json!({"type": "string"})];
        forms.extend(kinds);
        schemars::json_schema!({"description": VALUE_FORMS, "oneOf": forms})
    }
}

const VALUE_FORMS: &str = "expected a string or an object with one key: exact, prefix, suffix, glob or regex";

impl<'de> Deserialize<'de> for ValueConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let object = match Value::deserialize(deserializer)? {
            Value::String(text) => return Ok(ValueConfig::Istio(text)),
            Value::Object(object) if object.len() == 1 => object,
            _ => return Err(D::Error::custom(VALUE_FORMS)),
        };
        let Some((kind, Value::String(text))) = object.into_iter().next() else {
            return Err(D::Error::custom(VALUE_FORMS));
        };
        Ok(match kind.as_str() {
            "exact" => ValueConfig::Exact(text),
            "prefix" => ValueConfig::Prefix(text),
            "suffix" => ValueConfig::Suffix(text),
            "glob" => ValueConfig::Glob(text),
            "regex" => ValueConfig::Regex(text),
            _ => return Err(D::Error::custom(VALUE_FORMS)),
        })
    }
}
