//! The rate-limit configuration as written, and its compilation into a [`Policy`].
//!
//! Every field is checked here, so request-time code sees only valid rates, known limits and
//! costs every limit can eventually admit.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::config::{from_json, ConfigError};
use crate::route::{compile_methods, RouteMatchConfig, Routes};

use super::bucket::Rate;
use super::headers::HeaderSettings;
use super::keys::{ClientIpPrefix, KeySource, KeySourceConfig};
use super::limiter::{OnFull, Settings};
use super::policy::{Cost, FailureMode, Limit, MissingKey, Policy, RoutePlan, TierSource};
use super::table::{KeyHasher, Table};

/// Largest table, in slots per limit.
pub const MAX_SLOTS: u32 = 1 << 20;
/// Largest group (slots probed per key).
pub const MAX_WAYS: u32 = 64;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Names this filter's tables in shared data (and the rate limit service domain).
    #[serde(default = "default_domain")]
    pub domain: String,
    /// The VM environment variable holding the secret mixed into the key hash, so clients
    /// cannot aim keys at one group. A secret, so never inline (the guide's secrets management).
    #[serde(default)]
    pub hash_seed_env: Option<String>,
    /// Count and audit, never block.
    #[serde(default)]
    pub shadow: bool,
    /// What to do when shared data fails or CAS retries run out.
    #[serde(default)]
    pub failure_mode: FailureModeConfig,
    /// CAS conflicts tolerated per request.
    #[serde(default = "default_retries")]
    pub max_cas_retries: u32,
    /// The table of buckets.
    #[serde(default)]
    pub table: TableConfig,
    /// Proxies in front of Envoy that append to `X-Forwarded-For` (0: use the peer address).
    #[serde(default)]
    pub trusted_proxies: u32,
    /// How much of the client's address the `client_ip` key keeps.
    #[serde(default)]
    pub client_ip_prefix: ClientIpPrefixConfig,
    /// How the caller's tier is found.
    #[serde(default)]
    pub tier: TierConfig,
    /// Which headers to send.
    #[serde(default)]
    pub headers: HeadersConfig,
    /// Limits by name.
    pub limits: BTreeMap<String, LimitConfig>,
    /// Which limits apply to which requests; first match wins, no match means no limit.
    pub routes: Vec<RouteConfig>,
}

/// Fail closed (deny) or open (allow).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum FailureModeConfig {
    /// Deny with 503.
    #[default]
    Closed,
    /// Let the request through.
    Open,
}

/// Prefix lengths for the `client_ip` key (Envoy's `masked_remote_address`).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ClientIpPrefixConfig {
    /// Bits of an IPv4 address, 1-32.
    #[serde(default = "default_ipv4_prefix")]
    pub ipv4: u8,
    /// Bits of an IPv6 address, 1-128: the default 64 treats a /64, the usual end-site
    /// allocation, as one client.
    #[serde(default = "default_ipv6_prefix")]
    pub ipv6: u8,
}

impl Default for ClientIpPrefixConfig {
    fn default() -> Self {
        Self { ipv4: default_ipv4_prefix(), ipv6: default_ipv6_prefix() }
    }
}

/// The table of buckets.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct TableConfig {
    /// Slots per limit.
    #[serde(default = "default_slots")]
    pub slots: u32,
    /// Slots probed per key (the group size).
    #[serde(default = "default_ways")]
    pub ways: u32,
    /// What a full group means.
    #[serde(default)]
    pub on_full: OnFullConfig,
}

impl Default for TableConfig {
    fn default() -> Self {
        Self { slots: default_slots(), ways: default_ways(), on_full: OnFullConfig::default() }
    }
}

/// What a full group means.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum OnFullConfig {
    /// Share one overflow bucket per limit.
    #[default]
    Overflow,
    /// Deny.
    Deny,
    /// Skip the limit.
    Allow,
}

/// How the caller's tier is found.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct TierConfig {
    /// Take the tier from this claim instead of the identity's `tier`.
    #[serde(default)]
    pub claim: Option<String>,
    /// Tier of requests with no identity.
    #[serde(default = "default_anonymous")]
    pub anonymous: String,
    /// Tier of identities that name none.
    #[serde(default = "default_authenticated")]
    pub authenticated: String,
}

impl Default for TierConfig {
    fn default() -> Self {
        Self { claim: None, anonymous: default_anonymous(), authenticated: default_authenticated() }
    }
}

/// Which headers to send.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct HeadersConfig {
    /// IETF `RateLimit` and `RateLimit-Policy`.
    #[serde(default = "yes")]
    pub ietf: bool,
    /// `X-RateLimit-Limit/Remaining/Reset`.
    #[serde(default)]
    pub legacy: bool,
    /// Also on allowed responses.
    #[serde(default)]
    pub on_allowed: bool,
}

impl Default for HeadersConfig {
    fn default() -> Self {
        Self { ietf: true, legacy: false, on_allowed: false }
    }
}

/// One limit.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct LimitConfig {
    /// The key's parts, in order (one bucket per distinct key).
    pub key: Vec<KeySourceConfig>,
    /// What to do when a part of the key is absent.
    #[serde(default)]
    pub on_missing_key: MissingKeyConfig,
    /// The rate for every tier not listed in `tiers`.
    pub rate: RateConfig,
    /// Rates by tier.
    #[serde(default)]
    pub tiers: BTreeMap<String, RateConfig>,
}

/// What to do when a part of the key is absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum MissingKeyConfig {
    /// Deny with 429.
    #[default]
    Deny,
    /// Do not apply this limit.
    Skip,
    /// Use this key instead (e.g. `["client_ip"]`); deny if it is absent too.
    Fallback(Vec<KeySourceConfig>),
}

/// `tokens` per `per`, holding at most `burst`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RateConfig {
    /// Tokens added per window (and the bucket size without `burst`).
    pub tokens: u64,
    /// The window: `1s`, `10m`, `1h`, `1d`.
    pub per: String,
    /// Bucket size, at least `tokens`.
    #[serde(default)]
    pub burst: Option<u64>,
}

/// Which limits apply to matching requests.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Which requests.
    #[serde(rename = "match", default)]
    pub matcher: RouteMatchConfig,
    /// Names of limits, all enforced.
    pub limits: Vec<String>,
    /// Tokens a request costs.
    #[serde(default)]
    pub cost: CostConfig,
}

/// Tokens a request costs, by method.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CostConfig {
    /// Cost of any method not listed.
    #[serde(default = "one")]
    pub default: u64,
    /// Cost by method.
    #[serde(default)]
    pub methods: BTreeMap<String, u64>,
}

impl Default for CostConfig {
    fn default() -> Self {
        Self { default: 1, methods: BTreeMap::new() }
    }
}

fn default_domain() -> String {
    "default".into()
}
fn default_ipv4_prefix() -> u8 {
    32
}
fn default_ipv6_prefix() -> u8 {
    64
}
fn default_retries() -> u32 {
    16
}
fn default_slots() -> u32 {
    4096
}
fn default_ways() -> u32 {
    8
}
fn default_anonymous() -> String {
    "anonymous".into()
}
fn default_authenticated() -> String {
    "authenticated".into()
}
fn yes() -> bool {
    true
}
fn one() -> u64 {
    1
}

/// Parses and compiles a JSON configuration.
///
/// `env` looks up the VM's environment variables (`hash_seed_env`).
pub fn compile_json(bytes: &[u8], env: &dyn Fn(&str) -> Option<String>) -> Result<Policy, ConfigError> {
    compile(&from_json::<RateLimitConfig>(bytes)?, env)
}

/// Compiles a parsed configuration.
pub fn compile(config: &RateLimitConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<Policy, ConfigError> {
    check_name(&config.domain, "domain")?;
    let seed = match &config.hash_seed_env {
        None => String::new(),
        Some(name) => match env(name) {
            Some(seed) if !seed.is_empty() => seed,
            Some(_) => return Err(ConfigError::new("hash_seed_env", format!("environment variable {name} is empty"))),
            None => return Err(ConfigError::new("hash_seed_env", format!("environment variable {name} is not set"))),
        },
    };
    if !(1..=1000).contains(&config.max_cas_retries) {
        return Err(ConfigError::new("max_cas_retries", "must be between 1 and 1000"));
    }
    let table = &config.table;
    if !(1..=MAX_WAYS).contains(&table.ways) {
        return Err(ConfigError::new("table.ways", format!("must be between 1 and {MAX_WAYS}")));
    }
    if !(1..=MAX_SLOTS).contains(&table.slots) {
        return Err(ConfigError::new("table.slots", format!("must be between 1 and {MAX_SLOTS}")));
    }
    if !table.slots.is_multiple_of(table.ways) {
        return Err(ConfigError::new("table.slots", format!("must be a multiple of table.ways ({})", table.ways)));
    }
    if config.trusted_proxies > 16 {
        return Err(ConfigError::new("trusted_proxies", "must be at most 16"));
    }
    let prefix = &config.client_ip_prefix;
    let client_ip_prefix = ClientIpPrefix::new(prefix.ipv4, prefix.ipv6, "client_ip_prefix")?;
    let tiers = compile_tiers(&config.tier)?;
    if config.limits.is_empty() {
        return Err(ConfigError::new("limits", "must define at least one limit"));
    }
    if config.routes.is_empty() {
        return Err(ConfigError::new("routes", "must have at least one route"));
    }
    let groups = table.slots / table.ways;
    let mut limits = Vec::with_capacity(config.limits.len());
    for (name, limit) in &config.limits {
        let field = format!("limits.{name}");
        check_name(name, &field)?;
        limits.push(compile_limit(name, limit, &field, Table::new(&config.domain, name, groups, table.ways))?);
    }
    let routes = Routes::compile(&config.routes, "routes", |r| &r.matcher, |r, at| compile_route(r, at, &limits))?;
    for (index, name) in config.limits.keys().enumerate() {
        if !routes.values().any(|route| route.limits.contains(&index)) {
            return Err(ConfigError::new(format!("limits.{name}"), "is not used by any route"));
        }
    }
    Ok(Policy {
        shadow: config.shadow,
        failure_mode: match config.failure_mode {
            FailureModeConfig::Closed => FailureMode::Closed,
            FailureModeConfig::Open => FailureMode::Open,
        },
        settings: Settings {
            max_cas_retries: config.max_cas_retries,
            on_full: match table.on_full {
                OnFullConfig::Overflow => OnFull::Overflow,
                OnFullConfig::Deny => OnFull::Deny,
                OnFullConfig::Allow => OnFull::Allow,
            },
        },
        headers: HeaderSettings {
            ietf: config.headers.ietf,
            legacy: config.headers.legacy,
            on_allowed: config.headers.on_allowed,
        },
        trusted_proxies: config.trusted_proxies,
        client_ip_prefix,
        tiers,
        hasher: KeyHasher::new(&config.domain, &seed),
        seeded: !seed.is_empty(),
        limits,
        routes,
    })
}

/// Limit and domain names become shared-data keys and quoted header values.
fn check_name(name: &str, field: &str) -> Result<(), ConfigError> {
    let valid = (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(ConfigError::new(field, "must be 1 to 64 of a-z, 0-9, - and _"))
    }
}

fn compile_tiers(config: &TierConfig) -> Result<TierSource, ConfigError> {
    if config.anonymous.is_empty() {
        return Err(ConfigError::new("tier.anonymous", "must not be empty"));
    }
    if config.authenticated.is_empty() {
        return Err(ConfigError::new("tier.authenticated", "must not be empty"));
    }
    let claim = match &config.claim {
        Some(path) => Some(
            crate::identity::ClaimPath::parse(path)
                .ok_or_else(|| ConfigError::new("tier.claim", "must be a claim path like plan or org.plan"))?,
        ),
        None => None,
    };
    Ok(TierSource { claim, anonymous: config.anonymous.clone(), authenticated: config.authenticated.clone() })
}

fn compile_limit(name: &str, config: &LimitConfig, field: &str, table: Table) -> Result<Limit, ConfigError> {
    let key = compile_key(&config.key, &format!("{field}.key"))?;
    let on_missing_key = match &config.on_missing_key {
        MissingKeyConfig::Deny => MissingKey::Deny,
        MissingKeyConfig::Skip => MissingKey::Skip,
        MissingKeyConfig::Fallback(sources) => {
            MissingKey::Fallback(compile_key(sources, &format!("{field}.on_missing_key.fallback"))?)
        }
    };
    let mut rates = vec![compile_rate(&config.rate, &format!("{field}.rate"))?];
    let mut tiers = Vec::with_capacity(config.tiers.len());
    for (tier, rate) in &config.tiers {
        if tier.is_empty() {
            return Err(ConfigError::new(format!("{field}.tiers"), "tier names must not be empty"));
        }
        rates.push(compile_rate(rate, &format!("{field}.tiers.{tier}"))?);
        tiers.push(tier.clone());
    }
    Ok(Limit { name: name.to_string(), key, on_missing_key, rates, tiers, table })
}

fn compile_key(sources: &[KeySourceConfig], field: &str) -> Result<Vec<KeySource>, ConfigError> {
    if sources.is_empty() {
        return Err(ConfigError::new(field, "must have at least one part"));
    }
    let compiled: Vec<KeySource> = sources
        .iter()
        .enumerate()
        .map(|(i, s)| KeySource::compile(s, &format!("{field}[{i}]")))
        .collect::<Result<_, _>>()?;
    for (i, source) in compiled.iter().enumerate() {
        if compiled[..i].contains(source) {
            return Err(ConfigError::new(format!("{field}[{i}]"), "duplicate key part"));
        }
    }
    Ok(compiled)
}

fn compile_rate(config: &RateConfig, field: &str) -> Result<Rate, ConfigError> {
    let window = parse_window(&config.per).ok_or_else(|| {
        ConfigError::new(format!("{field}.per"), "must be a whole number of s, m, h or d, like 1s or 1h")
    })?;
    Rate::new(config.tokens, window, config.burst).map_err(|err| {
        let at = match err {
            super::bucket::RateError::ZeroTokens => "tokens",
            super::bucket::RateError::ZeroWindow => "per",
            super::bucket::RateError::BurstBelowTokens | super::bucket::RateError::TooLarge => "burst",
        };
        ConfigError::new(format!("{field}.{at}"), err.to_string())
    })
}

/// `30s`, `5m`, `1h`, `1d` in seconds.
pub fn parse_window(text: &str) -> Option<u64> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    if number.is_empty() || (number.len() > 1 && number.starts_with('0')) {
        return None;
    }
    let number: u64 = number.parse().ok()?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    number.checked_mul(scale)
}

fn compile_route(config: &RouteConfig, at: &str, limits: &[Limit]) -> Result<RoutePlan, ConfigError> {
    if config.limits.is_empty() {
        return Err(ConfigError::new(format!("{at}.limits"), "must name at least one limit"));
    }
    let mut indexes = Vec::with_capacity(config.limits.len());
    for (i, name) in config.limits.iter().enumerate() {
        let field = format!("{at}.limits[{i}]");
        let index = limits
            .iter()
            .position(|limit| limit.name == *name)
            .ok_or_else(|| ConfigError::new(&field, format!("unknown limit \"{name}\"")))?;
        if indexes.contains(&index) {
            return Err(ConfigError::new(&field, "duplicate limit"));
        }
        indexes.push(index);
    }
    let methods: Vec<String> = config.cost.methods.keys().cloned().collect();
    compile_methods(&methods, &format!("{at}.cost.methods"))?;
    let costs = std::iter::once(("default".to_string(), config.cost.default))
        .chain(config.cost.methods.iter().map(|(m, c)| (format!("methods.{m}"), *c)));
    for (name, cost) in costs {
        for &index in &indexes {
            let Some(limit) = limits.get(index) else { continue };
            let smallest = limit.rates.iter().map(Rate::capacity).min().unwrap_or(0);
            if cost > smallest {
                return Err(ConfigError::new(
                    format!("{at}.cost.{name}"),
                    format!("exceeds the capacity {smallest} of limit \"{}\"", limit.name),
                ));
            }
        }
    }
    let cost = Cost { default: config.cost.default, methods: config.cost.methods.clone().into_iter().collect() };
    Ok(RoutePlan { limits: indexes, cost })
}
