//! The identity contract: who the caller is, and how one filter hands that to the next.
//!
//! The authentication filter (jwt-authn) writes an [`Identity`] as JSON into Envoy filter state
//! with `set_property(["palisade.identity"], json)`; later filters (authz, rate-limit,
//! field-encryption) read it with `get_property(["palisade.identity"])`. Clients cannot write
//! filter state, so this channel cannot be spoofed.
//!
//! Optionally the same facts go to the upstream as `x-palisade-*` headers. Every filter that
//! reads identity strips inbound copies of those headers first, so a client cannot forge them.
//!
//! ```json
//! {"provider":"corp","issuer":"https://auth.example.com","subject":"alice",
//!  "consumer":null,"tier":"premium","claims":{"roles":["admin"],"scope":"read write"}}
//! ```

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::decision::HeaderOp;

/// The filter-state property under which the identity travels between filters.
pub const FILTER_STATE_PROPERTY: &str = "palisade.identity";

/// Prefix of every identity header toward the upstream.
pub const HEADER_PREFIX: &str = "x-palisade-";

/// The identity headers Palisade may send upstream; inbound copies are always removed.
pub const HEADERS: [&str; 5] =
    ["x-palisade-provider", "x-palisade-issuer", "x-palisade-subject", "x-palisade-consumer", "x-palisade-tier"];

/// Who the caller is, as established by an authentication filter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// Name of the provider (JWT issuer config or API-key set) that authenticated the caller.
    pub provider: String,
    /// `iss` of a JWT.
    #[serde(default)]
    pub issuer: Option<String>,
    /// `sub` of a JWT.
    #[serde(default)]
    pub subject: Option<String>,
    /// Consumer name of an API key (or a configured claim).
    #[serde(default)]
    pub consumer: Option<String>,
    /// Service tier, e.g. `anonymous`, `authenticated`, `premium`.
    #[serde(default)]
    pub tier: Option<String>,
    /// Every verified claim of the token (empty for API keys).
    #[serde(default)]
    pub claims: Map<String, Value>,
}

/// Why filter state did not hold a usable identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityError {
    /// The bytes are not the JSON form of an [`Identity`].
    Malformed,
}

impl std::fmt::Display for IdentityError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IdentityError::Malformed => f.write_str("filter state palisade.identity is not an identity"),
        }
    }
}

impl std::error::Error for IdentityError {}

impl Identity {
    /// The JSON bytes stored in filter state.
    pub fn to_filter_state(&self) -> Vec<u8> {
        // Serializing a struct of strings and JSON values cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads the identity back from filter state.
    pub fn from_filter_state(bytes: &[u8]) -> Result<Self, IdentityError> {
        serde_json::from_slice(bytes).map_err(|_| IdentityError::Malformed)
    }

    /// The request principal as Istio writes it: `iss/sub`, else the subject or consumer.
    pub fn principal(&self) -> Option<String> {
        match (&self.issuer, &self.subject, &self.consumer) {
            (Some(iss), Some(sub), _) => Some(format!("{iss}/{sub}")),
            (None, Some(sub), _) => Some(sub.clone()),
            (_, None, Some(consumer)) => Some(consumer.clone()),
            _ => None,
        }
    }

    /// The claim at `path`, descending into nested objects.
    pub fn claim(&self, path: &ClaimPath) -> Option<&Value> {
        let (first, rest) = path.segments.split_first()?;
        rest.iter().try_fold(self.claims.get(first)?, |value, segment| value.as_object()?.get(segment))
    }

    /// Header operations toward the upstream: set the identity headers that have a value fit
    /// for a header. Claims may hold anything (a `sub` or consumer claim with CR LF would
    /// otherwise write headers of its own), so an unfit value sets nothing.
    pub fn header_ops(&self) -> Vec<HeaderOp> {
        let values = [
            Some(&self.provider),
            self.issuer.as_ref(),
            self.subject.as_ref(),
            self.consumer.as_ref(),
            self.tier.as_ref(),
        ];
        HEADERS
            .iter()
            .zip(values)
            .filter_map(|(name, value)| {
                Some(HeaderOp::Set((*name).to_string(), value.filter(|v| is_header_safe(v))?.clone()))
            })
            .collect()
    }
}

/// Whether a value may go into a header: visible ASCII, spaces and tabs, at most 8 KiB.
pub(crate) fn is_header_safe(value: &str) -> bool {
    value.len() <= 8192 && crate::http::is_visible_ascii(value)
}

/// Removes inbound copies of every identity header, so a client cannot forge them.
pub fn strip_inbound_headers() -> Vec<HeaderOp> {
    HEADERS.iter().map(|name| HeaderOp::Remove((*name).to_string())).collect()
}

/// A path to a claim: `realm_access.roles` (dotted), or Istio's bracket form
/// `[https://example.com/roles]` for keys that contain dots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPath {
    segments: Vec<String>,
}

impl ClaimPath {
    /// Parses a dotted or bracketed path; `None` when empty or malformed.
    pub fn parse(path: &str) -> Option<Self> {
        let segments: Vec<String> = if let Some(inner) = path.strip_prefix('[') {
            let inner = inner.strip_suffix(']')?;
            inner.split("][").map(str::to_string).collect()
        } else {
            path.split('.').map(str::to_string).collect()
        };
        if segments.iter().any(|s| s.is_empty() || s.contains('[') || s.contains(']')) {
            return None;
        }
        Some(Self { segments })
    }

    /// The path's segments, outermost first.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }
}

/// The string values of a claim: a string (split on spaces when `split_spaces`, as OAuth
/// `scope` is), each string of an array, or the JSON text of a number or boolean.
pub fn claim_strings(value: &Value, split_spaces: bool) -> Vec<String> {
    match value {
        Value::String(s) if split_spaces => s.split(' ').filter(|p| !p.is_empty()).map(str::to_string).collect(),
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().flat_map(|item| claim_strings(item, false)).collect(),
        Value::Number(n) => vec![n.to_string()],
        Value::Bool(b) => vec![b.to_string()],
        Value::Null | Value::Object(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn alice() -> Identity {
        Identity {
            provider: "corp".into(),
            issuer: Some("https://auth.example.com".into()),
            subject: Some("alice".into()),
            consumer: None,
            tier: Some("premium".into()),
            claims:
                json!({"realm_access": {"roles": ["admin", "ops"]}, "https://x.io/team": "red", "scope": "read write"})
                    .as_object()
                    .unwrap()
                    .clone(),
        }
    }

    #[test]
    fn round_trips_through_filter_state() {
        let identity = alice();
        assert_eq!(Identity::from_filter_state(&identity.to_filter_state()), Ok(identity));
        assert_eq!(Identity::from_filter_state(b"{\"provider\":1}"), Err(IdentityError::Malformed));
        assert_eq!(Identity::from_filter_state(b"\xff"), Err(IdentityError::Malformed));
    }

    #[test]
    fn principal_follows_istio() {
        assert_eq!(alice().principal().as_deref(), Some("https://auth.example.com/alice"));
        let key = Identity { provider: "keys".into(), consumer: Some("acme".into()), ..Identity::default() };
        assert_eq!(key.principal().as_deref(), Some("acme"));
        assert_eq!(Identity::default().principal(), None);
    }

    #[test]
    fn finds_nested_and_bracketed_claims() {
        let identity = alice();
        let roles = ClaimPath::parse("realm_access.roles").unwrap();
        assert_eq!(identity.claim(&roles), Some(&json!(["admin", "ops"])));
        let team = ClaimPath::parse("[https://x.io/team]").unwrap();
        assert_eq!(identity.claim(&team), Some(&json!("red")));
        assert_eq!(identity.claim(&ClaimPath::parse("realm_access.missing").unwrap()), None);
        assert_eq!(identity.claim(&ClaimPath::parse("scope.deeper").unwrap()), None);
        assert_eq!(ClaimPath::parse(""), None);
        assert_eq!(ClaimPath::parse("a..b"), None);
        assert_eq!(ClaimPath::parse("[a]b]"), None);
    }

    #[test]
    fn claim_strings_split_scopes_and_flatten_arrays() {
        assert_eq!(claim_strings(&json!("read  write"), true), ["read", "write"]);
        assert_eq!(claim_strings(&json!("read write"), false), ["read write"]);
        assert_eq!(claim_strings(&json!(["a", 1, true, null]), false), ["a", "1", "true"]);
    }

    #[test]
    fn headers_are_set_only_with_values_and_always_stripped_inbound() {
        let ops = alice().header_ops();
        assert_eq!(ops.len(), 4);
        assert!(ops.contains(&HeaderOp::Set("x-palisade-subject".into(), "alice".into())));
        assert_eq!(strip_inbound_headers().len(), HEADERS.len());
        assert!(HEADERS.iter().all(|h| h.starts_with(HEADER_PREFIX)));
    }

    #[test]
    fn values_unfit_for_a_header_set_no_header() {
        let mut identity = alice();
        identity.subject = Some("alice\r\nx-admin: true".into());
        identity.consumer = Some("web\u{0}".into());
        identity.tier = Some("t".repeat(8193));
        let ops = identity.header_ops();
        let names: Vec<&str> = ops
            .iter()
            .map(|op| match op {
                HeaderOp::Set(name, _) => name.as_str(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(names, ["x-palisade-provider", "x-palisade-issuer"]);
        assert!(is_header_safe("Alice Smith\t<a@x>") && !is_header_safe("caf\u{e9}"));
    }
}
