//! Compiled policies and how one request is matched against them.
//!
//! Istio's structure: a policy matches when any rule matches; a rule when its `from` (any
//! source), `to` (any operation) and every `when` condition match; a source or operation when
//! every field it sets matches. A field matches when the request's value matches any listed
//! value and none of the `not` values. A value the request lacks (no identity, no mTLS peer)
//! matches no positive list and every negated one, as in Istio: `notRequestPrincipals: ["*"]`
//! catches unauthenticated requests. The one exception is an unknown remote IP (fewer
//! `x-forwarded-for` entries than trusted hops): it fails closed, matching every remote-IP
//! condition of a DENY or AUDIT policy and none of an ALLOW policy.

use std::net::IpAddr;

use super::cidr::Cidr;
use super::config::{
    ActionConfig, ConditionConfig, OperationConfig, PolicyConfig, RuleConfig, SourceConfig, ValueConfig,
};
use super::matcher::{compile_list, MatchOptions, StringMatcher, ValueSet};
use crate::config::ConfigError;
use crate::http::Headers;
use crate::identity::{claim_strings, ClaimPath, Identity};

/// What a policy does when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The request may pass (if no DENY matched).
    Allow,
    /// The request is denied.
    Deny,
    /// The request is audited; the decision is unchanged.
    Audit,
}

/// The facts about one request that policies test, gathered once before evaluation.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// `:method`.
    pub method: &'a str,
    /// The normalized path, query excluded.
    pub path: &'a str,
    /// Host without port.
    pub host: &'a str,
    /// Destination port.
    pub port: Option<u16>,
    /// All request headers.
    pub headers: &'a Headers,
    /// The downstream connection's peer address.
    pub source_ip: Option<IpAddr>,
    /// The client address per `xff_num_trusted_hops` ([`crate::http::client_ip`]).
    pub remote_ip: Option<IpAddr>,
    /// Whether a remote-IP condition matches when `remote_ip` is unknown. Set per policy by
    /// [`Policy::matching_rule`] so an unknown client address fails closed: it matches the
    /// remote-IP conditions of DENY and AUDIT policies and of no ALLOW policy.
    pub unknown_remote_ip_matches: bool,
    /// The mTLS peer's URI SAN.
    pub peer: Option<&'a str>,
    /// The namespace in the peer's SPIFFE ID.
    pub namespace: Option<&'a str>,
    /// The identity jwt-authn established.
    pub identity: Option<&'a Identity>,
    /// `iss/sub` of that identity.
    pub request_principal: Option<&'a str>,
}

/// Which request facts a compiled policy ever tests; the filter reads from the proxy only
/// what some policy uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Uses {
    /// `ipBlocks` / `notIpBlocks`, or a `source.ip` condition.
    pub source_ip: bool,
    /// `remoteIpBlocks` / `notRemoteIpBlocks`, or a `remote.ip` condition.
    pub remote_ip: bool,
    /// `principals` / `namespaces` (and their negations), or a `source.principal` /
    /// `source.namespace` condition.
    pub peer: bool,
    /// `ports` / `notPorts`.
    pub port: bool,
    /// `requestPrincipals` / `notRequestPrincipals`, or a `request.auth.*` condition.
    pub identity: bool,
}

impl Uses {
    /// Either's uses.
    pub fn union(self, other: Uses) -> Uses {
        Uses {
            source_ip: self.source_ip || other.source_ip,
            remote_ip: self.remote_ip || other.remote_ip,
            peer: self.peer || other.peer,
            port: self.port || other.port,
            identity: self.identity || other.identity,
        }
    }
}

/// How identity conditions are evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// On the request's actual identity (or its absence).
    Actual,
    /// As if some identity satisfied every identity condition: "could an identity make this match?"
    AssumeIdentity,
}

/// A compiled policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Its name.
    pub name: String,
    /// Its index in [`super::Authz::policy_names`], for counters.
    pub id: usize,
    /// What it does.
    pub action: Action,
    /// Whether it is decided but not enforced.
    pub shadow: bool,
    rules: Vec<Rule>,
}

impl Policy {
    /// Compiles a policy found at `field`, with counter index `id`.
    pub fn compile(config: &PolicyConfig, field: &str, id: usize) -> Result<Self, ConfigError> {
        check_name(&config.name).map_err(|problem| ConfigError::new(format!("{field}.name"), problem))?;
        let action = match config.action {
            ActionConfig::Allow => Action::Allow,
            ActionConfig::Deny => Action::Deny,
            ActionConfig::Audit => Action::Audit,
        };
        let rules = config
            .rules
            .iter()
            .enumerate()
            .map(|(i, rule)| Rule::compile(rule, &format!("{field}.rules[{i}]")))
            .collect::<Result<_, _>>()?;
        Ok(Self { name: config.name.clone(), id, action, shadow: config.shadow, rules })
    }

    /// The request facts this policy's rules test.
    pub fn uses(&self) -> Uses {
        self.rules.iter().map(Rule::uses).fold(Uses::default(), Uses::union)
    }

    /// The first rule that matches, if any.
    pub fn matching_rule(&self, facts: &Facts<'_>, mode: Mode) -> Option<&Rule> {
        let facts = Facts { unknown_remote_ip_matches: self.action != Action::Allow, ..*facts };
        self.rules.iter().find(|rule| rule.matches(&facts, mode))
    }
}

/// Names appear in stat names: `palisade.authz.policy.<name>.denied`.
fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > 64 {
        return Err("must be 1-64 characters");
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err("may contain only letters, digits, - and _");
    }
    Ok(())
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    from: Vec<Source>,
    to: Vec<Operation>,
    when: Vec<Condition>,
    /// Whether any condition of the rule tests the request identity.
    pub needs_identity: bool,
}

impl Rule {
    fn compile(config: &RuleConfig, field: &str) -> Result<Self, ConfigError> {
        let from = config
            .from
            .iter()
            .enumerate()
            .map(|(i, from)| Source::compile(&from.source, &format!("{field}.from[{i}].source")))
            .collect::<Result<Vec<_>, _>>()?;
        let to = config
            .to
            .iter()
            .enumerate()
            .map(|(i, to)| Operation::compile(&to.operation, &format!("{field}.to[{i}].operation")))
            .collect::<Result<Vec<_>, _>>()?;
        let when = config
            .when
            .iter()
            .enumerate()
            .map(|(i, condition)| Condition::compile(condition, &format!("{field}.when[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let needs_identity =
            from.iter().any(|s| !s.request_principals.is_empty()) || when.iter().any(Condition::needs_identity);
        Ok(Self { from, to, when, needs_identity })
    }

    fn uses(&self) -> Uses {
        let sources = self.from.iter().map(|s| Uses {
            source_ip: !s.ip_blocks.is_empty(),
            remote_ip: !s.remote_ip_blocks.is_empty(),
            peer: !s.principals.is_empty() || !s.namespaces.is_empty(),
            port: false,
            identity: false,
        });
        let operations = self.to.iter().map(|o| Uses { port: !o.ports.is_empty(), ..Uses::default() });
        let conditions = self.when.iter().map(|c| match c {
            Condition::Ips { key: IpKey::Source, .. } => Uses { source_ip: true, ..Uses::default() },
            Condition::Ips { key: IpKey::Remote, .. } => Uses { remote_ip: true, ..Uses::default() },
            Condition::Strings { key: StringKey::SourcePrincipal | StringKey::SourceNamespace, .. } => {
                Uses { peer: true, ..Uses::default() }
            }
            Condition::Strings { .. } => Uses::default(),
        });
        let identity = Uses { identity: self.needs_identity, ..Uses::default() };
        sources.chain(operations).chain(conditions).fold(identity, Uses::union)
    }

    fn matches(&self, facts: &Facts<'_>, mode: Mode) -> bool {
        (self.from.is_empty() || self.from.iter().any(|s| s.matches(facts, mode)))
            && (self.to.is_empty() || self.to.iter().any(|o| o.matches(facts)))
            && self.when.iter().all(|c| c.holds(facts, mode))
    }
}

fn pair(field: &str, name: &str, not_name: &str) -> (String, String) {
    (format!("{field}.{name}"), format!("{field}.{not_name}"))
}

fn value_set(
    values: &[ValueConfig],
    not_values: &[ValueConfig],
    (field, not_field): &(String, String),
    options: MatchOptions,
) -> Result<ValueSet, ConfigError> {
    ValueSet::compile(values, not_values, (field, not_field), options)
}

#[derive(Debug, Clone)]
struct Source {
    principals: ValueSet,
    namespaces: ValueSet,
    request_principals: ValueSet,
    ip_blocks: IpSet,
    remote_ip_blocks: IpSet,
}

impl Source {
    fn compile(config: &SourceConfig, field: &str) -> Result<Self, ConfigError> {
        let plain = MatchOptions::default();
        let spiffe = MatchOptions { spiffe: true, ..plain };
        let c = config;
        let source = Self {
            principals: value_set(
                &c.principals,
                &c.not_principals,
                &pair(field, "principals", "notPrincipals"),
                spiffe,
            )?,
            namespaces: value_set(
                &c.namespaces,
                &c.not_namespaces,
                &pair(field, "namespaces", "notNamespaces"),
                plain,
            )?,
            request_principals: value_set(
                &c.request_principals,
                &c.not_request_principals,
                &pair(field, "requestPrincipals", "notRequestPrincipals"),
                plain,
            )?,
            ip_blocks: IpSet::compile(&c.ip_blocks, &c.not_ip_blocks, &pair(field, "ipBlocks", "notIpBlocks"))?,
            remote_ip_blocks: IpSet::compile(
                &c.remote_ip_blocks,
                &c.not_remote_ip_blocks,
                &pair(field, "remoteIpBlocks", "notRemoteIpBlocks"),
            )?,
        };
        if source.principals.is_empty()
            && source.namespaces.is_empty()
            && source.request_principals.is_empty()
            && source.ip_blocks.is_empty()
            && source.remote_ip_blocks.is_empty()
        {
            return Err(ConfigError::new(field, "must set at least one field"));
        }
        Ok(source)
    }

    fn matches(&self, facts: &Facts<'_>, mode: Mode) -> bool {
        self.principals.matches(|| facts.peer.into_iter())
            && self.namespaces.matches(|| facts.namespace.into_iter())
            && (mode == Mode::AssumeIdentity || self.request_principals.matches(|| facts.request_principal.into_iter()))
            && self.ip_blocks.matches(facts.source_ip)
            && self.remote_ip_blocks.matches_remote(facts)
    }
}

#[derive(Debug, Clone)]
struct Operation {
    hosts: ValueSet,
    ports: PortSet,
    methods: ValueSet,
    paths: ValueSet,
}

impl Operation {
    fn compile(config: &OperationConfig, field: &str) -> Result<Self, ConfigError> {
        let c = config;
        let hosts_opts = MatchOptions { ignore_case: true, ..MatchOptions::default() };
        let path_opts = MatchOptions { path_templates: true, ..MatchOptions::default() };
        let operation = Self {
            hosts: value_set(&c.hosts, &c.not_hosts, &pair(field, "hosts", "notHosts"), hosts_opts)?,
            ports: PortSet::compile(&c.ports, &c.not_ports, &pair(field, "ports", "notPorts"))?,
            methods: value_set(
                &c.methods,
                &c.not_methods,
                &pair(field, "methods", "notMethods"),
                MatchOptions::default(),
            )?,
            paths: value_set(&c.paths, &c.not_paths, &pair(field, "paths", "notPaths"), path_opts)?,
        };
        for (i, path) in c.paths.iter().chain(&c.not_paths).enumerate() {
            if let ValueConfig::Istio(text) | ValueConfig::Exact(text) | ValueConfig::Prefix(text) = path {
                if !text.starts_with('/') && !text.starts_with('*') {
                    let name = if i < c.paths.len() { "paths" } else { "notPaths" };
                    let index = if i < c.paths.len() { i } else { i - c.paths.len() };
                    return Err(ConfigError::new(format!("{field}.{name}[{index}]"), "must start with / or *"));
                }
            }
        }
        if operation.hosts.is_empty()
            && operation.ports.is_empty()
            && operation.methods.is_empty()
            && operation.paths.is_empty()
        {
            return Err(ConfigError::new(field, "must set at least one field"));
        }
        Ok(operation)
    }

    fn matches(&self, facts: &Facts<'_>) -> bool {
        self.methods.matches(|| std::iter::once(facts.method))
            && self.paths.matches(|| std::iter::once(facts.path))
            && self.hosts.matches(|| std::iter::once(facts.host))
            && self.ports.matches(facts.port)
    }
}

/// CIDR lists and their negation.
#[derive(Debug, Clone, Default)]
struct IpSet {
    any: Vec<Cidr>,
    none: Vec<Cidr>,
}

impl IpSet {
    fn compile(
        blocks: &[String],
        not_blocks: &[String],
        (field, not_field): &(String, String),
    ) -> Result<Self, ConfigError> {
        let parse = |list: &[String], field: &str| {
            list.iter()
                .enumerate()
                .map(|(i, text)| {
                    Cidr::parse(text).map_err(|problem| ConfigError::new(format!("{field}[{i}]"), problem))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Self { any: parse(blocks, field)?, none: parse(not_blocks, not_field)? })
    }

    fn is_empty(&self) -> bool {
        self.any.is_empty() && self.none.is_empty()
    }

    fn matches(&self, ip: Option<IpAddr>) -> bool {
        let hit = |list: &[Cidr]| ip.is_some_and(|ip| list.iter().any(|block| block.contains(ip)));
        (self.any.is_empty() || hit(&self.any)) && (self.none.is_empty() || !hit(&self.none))
    }

    /// Remote-IP matching: an unknown client address (too few `x-forwarded-for` entries, or a
    /// non-IP entry at the trusted position) fails closed instead of following the
    /// absent-value rule, which would let `notRemoteIpBlocks` admit it.
    fn matches_remote(&self, facts: &Facts<'_>) -> bool {
        match facts.remote_ip {
            Some(ip) => self.matches(Some(ip)),
            None => self.is_empty() || facts.unknown_remote_ip_matches,
        }
    }
}

/// Port lists and their negation.
#[derive(Debug, Clone, Default)]
struct PortSet {
    any: Vec<u16>,
    none: Vec<u16>,
}

impl PortSet {
    fn compile(
        ports: &[String],
        not_ports: &[String],
        (field, not_field): &(String, String),
    ) -> Result<Self, ConfigError> {
        let parse = |list: &[String], field: &str| {
            list.iter()
                .enumerate()
                .map(|(i, text)| match text.parse::<u16>() {
                    Ok(port) if port > 0 && text.bytes().all(|b| b.is_ascii_digit()) => Ok(port),
                    _ => Err(ConfigError::new(format!("{field}[{i}]"), "must be a port number 1-65535")),
                })
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Self { any: parse(ports, field)?, none: parse(not_ports, not_field)? })
    }

    fn is_empty(&self) -> bool {
        self.any.is_empty() && self.none.is_empty()
    }

    fn matches(&self, port: Option<u16>) -> bool {
        let hit = |list: &[u16]| port.is_some_and(|port| list.contains(&port));
        (self.any.is_empty() || hit(&self.any)) && (self.none.is_empty() || !hit(&self.none))
    }
}

/// What a `when` condition reads.
#[derive(Debug, Clone)]
enum StringKey {
    /// `request.auth.claims[a][b]`; `split` for space-delimited `scope`/`scp`.
    Claim { path: ClaimPath, split: bool },
    /// `request.auth.principal`.
    RequestPrincipal,
    /// `request.headers[name]`.
    Header(String),
    /// `source.principal`.
    SourcePrincipal,
    /// `source.namespace`.
    SourceNamespace,
}

#[derive(Debug, Clone, Copy)]
enum IpKey {
    /// `source.ip`.
    Source,
    /// `remote.ip`.
    Remote,
}

/// A compiled `when` condition.
#[derive(Debug, Clone)]
enum Condition {
    Strings { key: StringKey, set: ValueSet, all: Vec<StringMatcher> },
    Ips { key: IpKey, set: IpSet },
}

const KEYS: &str = "request.auth.claims[...], request.auth.principal, request.auth.audiences, \
request.auth.presenter, request.headers[...], source.ip, remote.ip, source.principal, source.namespace";

impl Condition {
    fn compile(config: &ConditionConfig, field: &str) -> Result<Self, ConfigError> {
        if config.values.is_empty() && config.not_values.is_empty() && config.all_values.is_empty() {
            return Err(ConfigError::new(field, "must set values, notValues or allValues"));
        }
        let key_field = format!("{field}.key");
        let names = (format!("{field}.values"), format!("{field}.notValues"));
        let ip_key = match config.key.as_str() {
            "source.ip" => Some(IpKey::Source),
            "remote.ip" => Some(IpKey::Remote),
            _ => None,
        };
        if let Some(key) = ip_key {
            if !config.all_values.is_empty() {
                return Err(ConfigError::new(format!("{field}.allValues"), "does not apply to an IP key"));
            }
            let texts = |list: &[ValueConfig], field: &str| {
                list.iter()
                    .enumerate()
                    .map(|(i, value)| match value {
                        ValueConfig::Istio(text) => Ok(text.clone()),
                        _ => Err(ConfigError::new(format!("{field}[{i}]"), "must be an IP or CIDR string")),
                    })
                    .collect::<Result<Vec<_>, _>>()
            };
            let set = IpSet::compile(&texts(&config.values, &names.0)?, &texts(&config.not_values, &names.1)?, &names)?;
            return Ok(Condition::Ips { key, set });
        }
        let key = string_key(&config.key).ok_or_else(|| {
            ConfigError::new(&key_field, format!("unsupported key {:?}; supported: {KEYS}", config.key))
        })?;
        let options = MatchOptions {
            spiffe: matches!(key, StringKey::SourcePrincipal),
            presence: matches!(key, StringKey::Header(_)),
            ..MatchOptions::default()
        };
        let set = value_set(&config.values, &config.not_values, &names, options)?;
        let all = compile_list(&config.all_values, &format!("{field}.allValues"), options)?;
        Ok(Condition::Strings { key, set, all })
    }

    fn needs_identity(&self) -> bool {
        matches!(self, Condition::Strings { key: StringKey::Claim { .. } | StringKey::RequestPrincipal, .. })
    }

    fn holds(&self, facts: &Facts<'_>, mode: Mode) -> bool {
        if mode == Mode::AssumeIdentity && self.needs_identity() {
            return true;
        }
        match self {
            Condition::Ips { key: IpKey::Source, set } => set.matches(facts.source_ip),
            Condition::Ips { key: IpKey::Remote, set } => set.matches_remote(facts),
            Condition::Strings { key, set, all } => match key {
                StringKey::Claim { path, split } => {
                    let values = facts.identity.and_then(|id| id.claim(path)).map(|v| claim_strings(v, *split));
                    let values = values.unwrap_or_default();
                    strings_hold(set, all, || values.iter().map(String::as_str))
                }
                StringKey::RequestPrincipal => strings_hold(set, all, || facts.request_principal.into_iter()),
                StringKey::Header(name) => strings_hold(set, all, || facts.headers.get_all(name)),
                StringKey::SourcePrincipal => strings_hold(set, all, || facts.peer.into_iter()),
                StringKey::SourceNamespace => strings_hold(set, all, || facts.namespace.into_iter()),
            },
        }
    }
}

fn strings_hold<'a, I: Iterator<Item = &'a str>>(
    set: &ValueSet,
    all: &[StringMatcher],
    values: impl Fn() -> I,
) -> bool {
    set.matches(&values) && all.iter().all(|matcher| values().any(|v| matcher.matches(v)))
}

fn string_key(key: &str) -> Option<StringKey> {
    let claim = |path: &str| {
        let path = ClaimPath::parse(path)?;
        let split = matches!(path.segments().last().map(String::as_str), Some("scope" | "scp"));
        Some(StringKey::Claim { path, split })
    };
    match key {
        "request.auth.principal" => Some(StringKey::RequestPrincipal),
        "request.auth.audiences" => claim("aud"),
        "request.auth.presenter" => claim("azp"),
        "source.principal" => Some(StringKey::SourcePrincipal),
        "source.namespace" => Some(StringKey::SourceNamespace),
        _ => {
            if let Some(path) = key.strip_prefix("request.auth.claims") {
                return claim(path).filter(|_| path.starts_with('['));
            }
            let name = key.strip_prefix("request.headers[")?.strip_suffix(']')?;
            let valid = !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b'[' && b != b']');
            valid.then(|| StringKey::Header(name.to_ascii_lowercase()))
        }
    }
}
