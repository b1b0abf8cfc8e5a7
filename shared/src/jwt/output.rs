//! What a verified credential produces: the [`Identity`] for later filters, and request
//! headers for the upstream (claims by path, arrays joined with `,`, the whole payload).

use std::collections::BTreeMap;
use std::ops::Deref;
use std::rc::Rc;

use serde_json::{Map, Value};

use crate::decision::HeaderOp;
use crate::identity::{claim_strings, is_header_safe, ClaimPath, Identity};

/// How a tier is read from a claim.
#[derive(Debug, Clone)]
pub struct Tier {
    /// The claim.
    pub claim: ClaimPath,
    /// Claim value to tier; empty: the value itself.
    pub map: BTreeMap<String, String>,
    /// When absent or unmapped.
    pub default: Option<String>,
}

/// A JWT provider's outputs.
#[derive(Debug, Clone, Default)]
pub struct Output {
    /// Claim to header.
    pub claim_headers: Vec<(ClaimPath, String)>,
    /// Header for the base64url payload.
    pub payload_header: Option<String>,
    /// Claim naming the consumer.
    pub consumer_claim: Option<ClaimPath>,
    /// Tier derivation.
    pub tier: Option<Tier>,
}

impl Output {
    /// Every header name this output may set.
    pub fn header_names(&self) -> Vec<String> {
        self.claim_headers.iter().map(|(_, h)| h.clone()).chain(self.payload_header.clone()).collect()
    }

    /// The identity of a verified JWT.
    pub fn identity(&self, provider: &str, claims: &Map<String, Value>) -> Identity {
        self.identity_from(provider, claims.clone())
    }

    /// The identity of a verified JWT, taking its claims.
    pub fn identity_from(&self, provider: &str, claims: Map<String, Value>) -> Identity {
        let mut identity = Identity {
            provider: provider.to_string(),
            issuer: claims.get("iss").and_then(Value::as_str).map(str::to_string),
            subject: claims.get("sub").and_then(Value::as_str).map(str::to_string),
            consumer: None,
            tier: None,
            claims,
        };
        identity.consumer = self.consumer_claim.as_ref().and_then(|path| first_string(&identity, path));
        identity.tier = self.tier.as_ref().and_then(|tier| {
            let value = first_string(&identity, &tier.claim);
            match value {
                Some(value) if tier.map.is_empty() => Some(value),
                Some(value) => tier.map.get(&value).cloned().or_else(|| tier.default.clone()),
                None => tier.default.clone(),
            }
        });
        identity
    }

    /// Headers for the upstream from a verified JWT.
    pub fn header_ops(&self, identity: &Identity, payload_b64: &str) -> Vec<HeaderOp> {
        let mut ops = Vec::new();
        for (path, header) in &self.claim_headers {
            let Some(value) = identity.claim(path) else { continue };
            let joined = claim_strings(value, false).join(",");
            if !joined.is_empty() && is_header_safe(&joined) {
                ops.push(HeaderOp::Set(header.clone(), joined));
            }
        }
        if let Some(header) = &self.payload_header {
            ops.push(HeaderOp::Set(header.clone(), payload_b64.to_string()));
        }
        ops
    }
}

/// An identity with its filter-state JSON, serialized once: a cached token hands the same
/// [`Rc`] to every request that presents it again, so a hit neither clones the claims nor
/// serializes them.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedIdentity(Rc<IdentityParts>);

#[derive(Debug, PartialEq)]
struct IdentityParts {
    identity: Rc<Identity>,
    filter_state: Vec<u8>,
}

impl SharedIdentity {
    /// Serializes `identity` for filter state.
    pub fn new(identity: Identity) -> Self {
        let filter_state = identity.to_filter_state();
        Self(Rc::new(IdentityParts { identity: Rc::new(identity), filter_state }))
    }

    /// The bytes for filter state ([`Identity::to_filter_state`]).
    pub fn filter_state(&self) -> &[u8] {
        &self.0.filter_state
    }

    /// The identity itself, shared: what the gateway bundle hands its later layers.
    pub fn identity(&self) -> Rc<Identity> {
        Rc::clone(&self.0.identity)
    }
}

impl Deref for SharedIdentity {
    type Target = Identity;

    fn deref(&self) -> &Identity {
        &self.0.identity
    }
}

fn first_string(identity: &Identity, path: &ClaimPath) -> Option<String> {
    claim_strings(identity.claim(path)?, false).into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims() -> Map<String, Value> {
        json!({"iss": "https://i", "sub": "alice", "plan": "pro", "client_id": "web",
               "realm_access": {"roles": ["admin", "ops"]}, "https://x.io/team": "red", "evil": "a\r\nb", "n": 7})
        .as_object()
        .unwrap()
        .clone()
    }

    fn output() -> Output {
        Output {
            claim_headers: vec![
                (ClaimPath::parse("realm_access.roles").unwrap(), "x-roles".into()),
                (ClaimPath::parse("[https://x.io/team]").unwrap(), "x-team".into()),
                (ClaimPath::parse("evil").unwrap(), "x-evil".into()),
                (ClaimPath::parse("n").unwrap(), "x-n".into()),
                (ClaimPath::parse("missing").unwrap(), "x-missing".into()),
            ],
            payload_header: Some("x-jwt-payload".into()),
            consumer_claim: Some(ClaimPath::parse("client_id").unwrap()),
            tier: Some(Tier {
                claim: ClaimPath::parse("plan").unwrap(),
                map: BTreeMap::from([("pro".into(), "premium".into())]),
                default: Some("authenticated".into()),
            }),
        }
    }

    #[test]
    fn identity_carries_consumer_and_mapped_tier() {
        let identity = output().identity("corp", &claims());
        assert_eq!(identity.issuer.as_deref(), Some("https://i"));
        assert_eq!(identity.subject.as_deref(), Some("alice"));
        assert_eq!(identity.consumer.as_deref(), Some("web"));
        assert_eq!(identity.tier.as_deref(), Some("premium"));
        let mut other = claims();
        other.insert("plan".into(), json!("free"));
        assert_eq!(output().identity("corp", &other).tier.as_deref(), Some("authenticated"));
        let mut unmapped = output();
        unmapped.tier.as_mut().unwrap().map.clear();
        assert_eq!(unmapped.identity("corp", &other).tier.as_deref(), Some("free"));
    }

    #[test]
    fn headers_join_arrays_and_skip_unsafe_values() {
        let identity = output().identity("corp", &claims());
        let ops = output().header_ops(&identity, "eyJwYXlsb2FkIjoxfQ");
        assert_eq!(
            ops,
            [
                HeaderOp::Set("x-roles".into(), "admin,ops".into()),
                HeaderOp::Set("x-team".into(), "red".into()),
                HeaderOp::Set("x-n".into(), "7".into()),
                HeaderOp::Set("x-jwt-payload".into(), "eyJwYXlsb2FkIjoxfQ".into()),
            ]
        );
        assert_eq!(output().header_names(), ["x-roles", "x-team", "x-evil", "x-n", "x-missing", "x-jwt-payload"]);
    }

    #[test]
    fn shared_identity_serializes_once_and_reads_as_the_identity() {
        let identity = output().identity_from("corp", claims());
        let shared = SharedIdentity::new(identity.clone());
        assert_eq!(shared.filter_state(), identity.to_filter_state().as_slice());
        assert_eq!(shared.subject.as_deref(), Some("alice"));
        assert_eq!(Identity::from_filter_state(shared.filter_state()), Ok(identity));
        assert_eq!(shared.clone(), shared);
    }
}
