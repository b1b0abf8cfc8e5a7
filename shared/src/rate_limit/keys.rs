//! Rate-limit keys as descriptors: ordered `(key, value)` entries, as Envoy's rate limit
//! service protocol (`RateLimitDescriptor.entries`) expresses them.
//!
//! ```json
//! "key": ["client_ip", {"header": "x-api-key"}, {"query": "api_key"}, "subject",
//!         "consumer", {"claim": "org.id"}, "route"]
//! ```
//!
//! Each source names its descriptor entry (`masked_remote_address`, `header.x-api-key`,
//! `query.api_key`, `subject`, `consumer`, `claim.org.id`, `route`); the limit's name and, for
//! tiered limits, the tier come first. The local table hashes exactly these entries, so a global
//! backend can later send the same descriptors to a rate limit service with no config change.

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Deserialize;

use crate::config::ConfigError;
use crate::http::{param_name_is, percent_decode, query_pairs, RequestView};
use crate::identity::{claim_strings, ClaimPath, Identity};

use super::table::{push_field, push_field_parts};

/// Where one part of a key comes from, as written in config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum KeySourceConfig {
    /// The client's network: its IP (`source.address`, or `X-Forwarded-For` per
    /// `trusted_proxies`) cut to `client_ip_prefix`.
    ClientIp,
    /// A request header's first value.
    Header(String),
    /// A query parameter's first value, percent-decoded.
    Query(String),
    /// The identity's subject (`sub`).
    Subject,
    /// The identity's consumer (API key owner).
    Consumer,
    /// A claim of the identity, dotted or `[bracketed]` path.
    Claim(String),
    /// The Envoy route's name (`xds.route_name`).
    Route,
}

/// A compiled key source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// The client IP.
    ClientIp,
    /// A header, name lower-cased.
    Header(String),
    /// A query parameter.
    Query(String),
    /// The identity's subject.
    Subject,
    /// The identity's consumer.
    Consumer,
    /// A claim, with the path as written (it names the descriptor entry).
    Claim(ClaimPath, String),
    /// The Envoy route's name.
    Route,
}

impl KeySource {
    /// Compiles a source; `field` names it in errors.
    pub fn compile(config: &KeySourceConfig, field: &str) -> Result<Self, ConfigError> {
        Ok(match config {
            KeySourceConfig::ClientIp => KeySource::ClientIp,
            KeySourceConfig::Header(name) => {
                let valid = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
                if !valid {
                    return Err(ConfigError::new(format!("{field}.header"), "must be a header name"));
                }
                KeySource::Header(name.to_ascii_lowercase())
            }
            KeySourceConfig::Query(name) => {
                if name.is_empty() {
                    return Err(ConfigError::new(format!("{field}.query"), "must not be empty"));
                }
                KeySource::Query(name.clone())
            }
            KeySourceConfig::Subject => KeySource::Subject,
            KeySourceConfig::Consumer => KeySource::Consumer,
            KeySourceConfig::Claim(path) => match ClaimPath::parse(path) {
                Some(parsed) => KeySource::Claim(parsed, path.clone()),
                None => return Err(ConfigError::new(format!("{field}.claim"), "must be a claim path like org.id")),
            },
            KeySourceConfig::Route => KeySource::Route,
        })
    }

    /// The descriptor entry's key, in two parts to join: `["header.", name]`.
    pub fn descriptor_key(&self) -> [&str; 2] {
        match self {
            KeySource::ClientIp => ["masked_remote_address", ""],
            KeySource::Header(name) => ["header.", name],
            KeySource::Query(name) => ["query.", name],
            KeySource::Subject => ["subject", ""],
            KeySource::Consumer => ["consumer", ""],
            KeySource::Claim(_, path) => ["claim.", path],
            KeySource::Route => ["route", ""],
        }
    }

    /// The value for this request; `None` when the source is absent or empty. A header's
    /// value is borrowed from the request.
    pub fn resolve<'a>(&self, request: &Facts<'a>) -> Option<Cow<'a, str>> {
        let value = match self {
            KeySource::ClientIp => request.client_net.map(|net| Cow::Owned(net.to_string())),
            KeySource::Header(name) => request.request.headers.get(name).map(Cow::Borrowed),
            KeySource::Query(name) => request
                .request
                .query()
                .and_then(|query| query_pairs(query).find(|(key, _)| param_name_is(key, name)))
                .map(|(_, value)| Cow::Owned(percent_decode(value, true))),
            KeySource::Subject => request.identity.and_then(|id| id.subject.as_deref()).map(Cow::Borrowed),
            KeySource::Consumer => request.identity.and_then(|id| id.consumer.as_deref()).map(Cow::Borrowed),
            KeySource::Claim(path, _) => {
                let values = claim_strings(request.identity?.claim(path)?, false);
                Some(Cow::Owned(values.join(",")))
            }
            KeySource::Route => request.request.route_name.as_deref().map(Cow::Borrowed),
        }?;
        (!value.is_empty()).then_some(value)
    }

    /// Whether the value comes from the identity jwt-authn left in filter state.
    pub fn reads_identity(&self) -> bool {
        matches!(self, KeySource::Subject | KeySource::Consumer | KeySource::Claim(..))
    }
}

/// What keys are read from: the request, the identity, the client IP already resolved.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The request.
    pub request: &'a RequestView,
    /// The identity from filter state, if any (an unreadable one is `None`).
    pub identity: Option<&'a Identity>,
    /// The client's network, per `trusted_proxies` and `client_ip_prefix`.
    pub client_net: Option<ClientNet>,
}

/// How many leading bits of a client's address make its key.
///
/// An IPv6 client is routinely given a whole /64 (or more), and rotates addresses inside it at
/// will, so a limit per IPv6 address limits nobody and lets one client fill the table. Envoy's
/// `masked_remote_address` rate limit action makes the same cut (`v4_prefix_mask_len`,
/// `v6_prefix_mask_len`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIpPrefix {
    v4: u8,
    v6: u8,
}

impl ClientIpPrefix {
    /// Checks the lengths (1-32 and 1-128: a zero length would put every client in one bucket,
    /// which a key without `client_ip` says plainly); `field` names the setting in errors.
    pub fn new(v4: u8, v6: u8, field: &str) -> Result<Self, ConfigError> {
        if !(1..=32).contains(&v4) {
            return Err(ConfigError::new(format!("{field}.ipv4"), "must be between 1 and 32"));
        }
        if !(1..=128).contains(&v6) {
            return Err(ConfigError::new(format!("{field}.ipv6"), "must be between 1 and 128"));
        }
        Ok(Self { v4, v6 })
    }

    /// The network of `ip`; an IPv4-mapped IPv6 address (`::ffff:203.0.113.9`, a dual-stack
    /// listener's view of an IPv4 client) counts as the IPv4 address it maps.
    pub fn network(self, ip: IpAddr) -> ClientNet {
        match ip.to_canonical() {
            IpAddr::V4(v4) => ClientNet {
                network: Ipv4Addr::from(u32::from(v4) & (u32::MAX << (32 - u32::from(self.v4)))).into(),
                prefix: self.v4,
            },
            IpAddr::V6(v6) => ClientNet {
                network: Ipv6Addr::from(u128::from(v6) & (u128::MAX << (128 - u32::from(self.v6)))).into(),
                prefix: self.v6,
            },
        }
    }
}

/// A client's network, written as Envoy's `masked_remote_address` descriptor value:
/// `203.0.113.9/32`, `2001:db8:1:2::/64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientNet {
    network: IpAddr,
    prefix: u8,
}

impl fmt::Display for ClientNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The bytes that identify one bucket, the input of its fingerprint: descriptor entries in
/// order, each key and value length-prefixed so that no two entry lists encode alike.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Descriptor {
    bytes: Vec<u8>,
}

impl Descriptor {
    /// Appends one entry, its key given in parts as [`KeySource::descriptor_key`] returns it.
    pub fn push(&mut self, key: [&str; 2], value: &str) {
        push_field_parts(&mut self.bytes, &key);
        push_field(&mut self.bytes, value.as_bytes());
    }

    /// Appends every source's entry; `false` when one is absent, and then nothing is appended.
    pub fn push_sources(&mut self, sources: &[KeySource], facts: &Facts<'_>) -> bool {
        let mark = self.bytes.len();
        for source in sources {
            let Some(value) = source.resolve(facts) else {
                self.bytes.truncate(mark);
                return false;
            };
            self.push(source.descriptor_key(), &value);
        }
        true
    }

    /// The encoded entries.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Headers;
    use serde_json::json;

    fn request() -> RequestView {
        RequestView {
            method: "GET".into(),
            path: "/v1/items?api%5Fkey=k%2B1&x=&api_key=second".into(),
            headers: Headers::from_pairs([
                ("x-api-key", "key-1"),
                ("x-forwarded-for", "203.0.113.9, 198.51.100.7"),
                ("X-Forwarded-For", "192.0.2.1:443"),
                ("x-empty", ""),
            ]),
            source_ip: "10.0.0.2".parse().ok(),
            route_name: Some("items".into()),
            ..RequestView::default()
        }
    }

    fn identity() -> Identity {
        Identity {
            provider: "corp".into(),
            subject: Some("alice".into()),
            claims: json!({"org": {"id": 42}, "groups": ["a", "b"]}).as_object().unwrap().clone(),
            ..Identity::default()
        }
    }

    /// The config's defaults: whole IPv4 addresses, IPv6 /64s.
    fn usual() -> ClientIpPrefix {
        ClientIpPrefix::new(32, 64, "p").unwrap()
    }

    fn client_net(request: &RequestView) -> Option<ClientNet> {
        crate::http::client_ip(request, 0).map(|ip| usual().network(ip))
    }

    fn source(json: &str) -> Result<KeySource, ConfigError> {
        KeySource::compile(&serde_json::from_str(json).unwrap(), "key[0]")
    }

    #[test]
    fn resolves_every_source() {
        let request = request();
        let identity = identity();
        let facts = Facts { request: &request, identity: Some(&identity), client_net: client_net(&request) };
        let cases = [
            (r#""client_ip""#, Some("10.0.0.2/32"), "masked_remote_address"),
            (r#"{"header":"X-Api-Key"}"#, Some("key-1"), "header.x-api-key"),
            (r#"{"header":"x-empty"}"#, None, "header.x-empty"),
            (r#"{"query":"api_key"}"#, Some("k+1"), "query.api_key"),
            (r#"{"query":"x"}"#, None, "query.x"),
            (r#""subject""#, Some("alice"), "subject"),
            (r#""consumer""#, None, "consumer"),
            (r#"{"claim":"org.id"}"#, Some("42"), "claim.org.id"),
            (r#"{"claim":"groups"}"#, Some("a,b"), "claim.groups"),
            (r#"{"claim":"missing"}"#, None, "claim.missing"),
            (r#""route""#, Some("items"), "route"),
        ];
        for (json, value, key) in cases {
            let source = source(json).unwrap();
            assert_eq!(source.resolve(&facts).as_deref(), value, "{json}");
            assert_eq!(source.descriptor_key().concat(), key);
        }
        let anonymous = Facts { identity: None, ..facts };
        assert_eq!(source(r#""subject""#).unwrap().resolve(&anonymous), None);
    }

    #[test]
    fn client_networks_cut_addresses_to_the_prefix() {
        let net = |prefix: ClientIpPrefix, ip: &str| prefix.network(ip.parse().unwrap()).to_string();
        let default = usual();
        assert_eq!(net(default, "203.0.113.9"), "203.0.113.9/32");
        assert_eq!(net(default, "::ffff:203.0.113.9"), "203.0.113.9/32", "IPv4-mapped is the IPv4 client");
        // Two addresses of one /64 are one client; the next /64 is another.
        assert_eq!(net(default, "2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(net(default, "2001:db8:1:2:ffff:ffff:ffff:ffff"), "2001:db8:1:2::/64");
        assert_eq!(net(default, "2001:db8:1:3::1"), "2001:db8:1:3::/64");
        let whole = ClientIpPrefix::new(32, 128, "p").unwrap();
        assert_eq!(net(whole, "2001:db8::7"), "2001:db8::7/128");
        let coarse = ClientIpPrefix::new(1, 1, "p").unwrap();
        assert_eq!(net(coarse, "203.0.113.9"), "128.0.0.0/1");
        assert_eq!(net(coarse, "2001:db8::7"), "::/1");
        let odd = ClientIpPrefix::new(20, 56, "p").unwrap();
        assert_eq!(net(odd, "198.51.100.7"), "198.51.96.0/20");
        assert_eq!(net(odd, "2001:db8:1:2ff::1"), "2001:db8:1:200::/56");
        for (v4, v6, error) in [
            (0, 64, "p.ipv4: must be between 1 and 32"),
            (33, 64, "p.ipv4: must be between 1 and 32"),
            (32, 0, "p.ipv6: must be between 1 and 128"),
            (32, 129, "p.ipv6: must be between 1 and 128"),
        ] {
            assert_eq!(ClientIpPrefix::new(v4, v6, "p").unwrap_err().to_string(), error);
        }
    }

    #[test]
    fn rejects_bad_sources() {
        assert_eq!(source(r#"{"header":"bad name"}"#).unwrap_err().to_string(), "key[0].header: must be a header name");
        assert_eq!(source(r#"{"query":""}"#).unwrap_err().to_string(), "key[0].query: must not be empty");
        assert_eq!(
            source(r#"{"claim":"a..b"}"#).unwrap_err().to_string(),
            "key[0].claim: must be a claim path like org.id"
        );
    }

    #[test]
    fn descriptor_encoding_keeps_entry_boundaries() {
        let encode = |entries: &[(&str, &str)]| {
            let mut descriptor = Descriptor::default();
            for (key, value) in entries {
                descriptor.push([key, ""], value);
            }
            descriptor.into_bytes()
        };
        assert_ne!(encode(&[("k", "ab"), ("c", "")]), encode(&[("k", "a"), ("bc", "")]));
        // A key in parts encodes as the joined key.
        let mut parts = Descriptor::default();
        parts.push(["header.", "x-client"], "v");
        assert_eq!(parts.into_bytes(), encode(&[("header.x-client", "v")]));
    }

    #[test]
    fn absent_sources_append_nothing() {
        let request = request();
        let facts = Facts { request: &request, identity: None, client_net: client_net(&request) };
        let sources = [source(r#"{"header":"x-api-key"}"#).unwrap(), source(r#""subject""#).unwrap()];
        let mut descriptor = Descriptor::default();
        descriptor.push(["limit", ""], "l");
        let before = descriptor.clone();
        assert!(!descriptor.push_sources(&sources, &facts));
        assert_eq!(descriptor, before);
        assert!(descriptor.push_sources(&sources[..1], &facts));
        let mut expected = before;
        expected.push(["header.x-api-key", ""], "key-1");
        assert_eq!(descriptor, expected);
    }
}
