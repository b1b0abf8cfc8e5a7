//! The jwt-authn configuration as written, and its compilation into a [`Policy`] that is valid
//! by construction: keys decoded, claim paths parsed, header names checked, requirements
//! resolved to provider indices.

use std::collections::BTreeMap;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

use super::api_key::{ApiKeyConfig, ApiKeys};
use super::extract::{HeaderSourceConfig, Sources};
use super::keys::{Algorithm, KeyOrigin, KeySet};
use super::output::{Output, Tier};
use super::remote::RemoteJwks;
use super::requirement::Requirement;
use super::verify::{ClaimRules, SubjectMatch};
use crate::config::{from_json, ConfigError};
use crate::identity::{ClaimPath, HEADER_PREFIX};
use crate::route::{RouteMatchConfig, Routes};

/// The whole filter configuration.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct JwtAuthnConfig {
    /// JWT providers by name.
    #[serde(default)]
    pub providers: BTreeMap<String, JwtProviderConfig>,
    /// API-key providers by name (names shared with `providers`).
    #[serde(default)]
    pub api_keys: BTreeMap<String, ApiKeyProviderConfig>,
    /// Per-route requirements; the first match wins, no match is denied.
    pub rules: Vec<RuleConfig>,
    /// Let CORS preflights (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) pass.
    #[serde(default)]
    pub bypass_cors_preflight: bool,
    /// `realm` of `WWW-Authenticate`; default: the request's host.
    #[serde(default)]
    pub realm: Option<String>,
    /// Longest credential accepted, bytes.
    #[serde(default = "default_max_token_bytes")]
    pub max_token_bytes: usize,
    /// Send `x-palisade-*` identity headers upstream.
    #[serde(default)]
    pub identity_headers: bool,
    /// Verified-token cache settings.
    #[serde(default)]
    pub cache: CacheConfig,
}

fn default_max_token_bytes() -> usize {
    8192
}

/// One JWT provider.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct JwtProviderConfig {
    /// Required `iss`.
    pub issuer: String,
    /// Allowed audiences (any of); empty: not checked.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Allowed subjects (any of); empty: not checked.
    #[serde(default)]
    pub subjects: Vec<SubjectMatch>,
    /// The algorithm allow-list (required, no default).
    pub algorithms: Vec<Algorithm>,
    /// Clock skew tolerated on `exp` and `nbf`.
    #[serde(default = "default_skew")]
    pub clock_skew_seconds: u64,
    /// Refuse tokens without `exp`.
    #[serde(default = "default_true")]
    pub require_expiration: bool,
    /// Longest lifetime accepted (`exp - iat`, or `exp - now` without `iat`).
    #[serde(default)]
    pub max_lifetime_seconds: Option<u64>,
    /// An inline JWK Set (a JSON object, or a string holding one).
    #[serde(default)]
    pub local_jwks: Option<Value>,
    /// A JWK Set fetched from an Envoy cluster.
    #[serde(default)]
    pub remote_jwks: Option<RemoteJwksConfig>,
    /// An HMAC secret read from the VM environment.
    #[serde(default)]
    pub hmac_secret: Option<HmacSecretConfig>,
    /// Headers to read the token from.
    #[serde(default)]
    pub from_headers: Vec<HeaderSourceConfig>,
    /// Query parameters to read the token from.
    #[serde(default)]
    pub from_params: Vec<String>,
    /// Cookies to read the token from.
    #[serde(default)]
    pub from_cookies: Vec<String>,
    /// Keep the token in the request sent upstream.
    #[serde(default)]
    pub forward: bool,
    /// Claims copied to request headers.
    #[serde(default)]
    pub claim_to_headers: Vec<ClaimHeaderConfig>,
    /// Header receiving the base64url payload.
    #[serde(default)]
    pub payload_header: Option<String>,
    /// Claim naming the consumer.
    #[serde(default)]
    pub consumer_claim: Option<String>,
    /// How the tier is derived.
    #[serde(default)]
    pub tier: Option<TierConfig>,
}

fn default_skew() -> u64 {
    60
}

fn default_true() -> bool {
    true
}

/// A remote JWKS endpoint.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RemoteJwksConfig {
    /// The Envoy cluster to call.
    pub cluster: String,
    /// `:path` of the JWKS, e.g. `/.well-known/jwks.json`.
    pub path: String,
    /// `:authority` sent; default: the cluster name.
    #[serde(default)]
    pub authority: Option<String>,
    /// Callout timeout.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Refresh period.
    #[serde(default = "default_refresh")]
    pub refresh_interval_seconds: u64,
    /// Random extra delay added to each refresh, up to this.
    #[serde(default = "default_jitter")]
    pub jitter_seconds: u64,
    /// Delay before retrying a failed fetch.
    #[serde(default = "default_retry")]
    pub retry_seconds: u64,
    /// Least time between two refetches caused by an unknown `kid`.
    #[serde(default = "default_kid_miss")]
    pub kid_miss_min_interval_seconds: u64,
    /// How long a request may wait for the first keys before a 503.
    #[serde(default = "default_wait_ms")]
    pub wait_for_keys_ms: u64,
}

fn default_timeout_ms() -> u64 {
    5000
}
fn default_refresh() -> u64 {
    600
}
fn default_jitter() -> u64 {
    30
}
fn default_retry() -> u64 {
    10
}
fn default_kid_miss() -> u64 {
    30
}
fn default_wait_ms() -> u64 {
    3000
}

/// How an HMAC secret is read from the environment.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct HmacSecretConfig {
    /// Environment variable (`vm_config.environment_variables`).
    pub env: String,
    /// How its value is encoded.
    #[serde(default)]
    pub encoding: SecretEncoding,
    /// `kid` of the secret, when tokens carry one.
    #[serde(default)]
    pub kid: Option<String>,
}

/// Encodings of a secret in an environment variable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum SecretEncoding {
    /// The bytes of the value.
    #[default]
    Raw,
    /// Standard base64.
    Base64,
    /// base64url without padding.
    Base64url,
    /// A JWK Set of `oct` keys.
    Jwks,
}

/// One claim-to-header mapping.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ClaimHeaderConfig {
    /// Claim path (`a.b` or `[https://x/y]`).
    pub claim: String,
    /// Header name.
    pub header: String,
}

/// How the tier is derived from a claim.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct TierConfig {
    /// Claim path.
    pub claim: String,
    /// Claim value to tier; empty: the value is the tier.
    #[serde(default)]
    pub map: BTreeMap<String, String>,
    /// Tier when the claim is absent or unmapped.
    #[serde(default)]
    pub default: Option<String>,
}

/// An API-key provider.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ApiKeyProviderConfig {
    /// Header carrying the key; default `x-api-key` when no location is given.
    #[serde(default)]
    pub from_header: Option<String>,
    /// Query parameter carrying the key.
    #[serde(default)]
    pub from_param: Option<String>,
    /// Keep the key in the request sent upstream.
    #[serde(default)]
    pub forward: bool,
    /// The keys.
    pub keys: Vec<ApiKeyConfig>,
}

/// One rule: where it applies and what it requires.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Route match (see [`crate::route`]).
    #[serde(rename = "match", default)]
    pub route: RouteMatchConfig,
    /// The requirement.
    pub requires: RequirementConfig,
}

/// A requirement as written.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum RequirementConfig {
    /// A valid credential of this provider.
    Provider(String),
    /// Any one of these.
    Any(Vec<RequirementConfig>),
    /// All of these.
    All(Vec<RequirementConfig>),
    /// No credential is fine; a credential present must verify.
    AllowMissing,
    /// Always passes; a valid credential still yields an identity.
    AllowMissingOrFailed,
    /// No authentication.
    None,
}

/// Verified-token cache settings.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Cache verified tokens.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Entries of each VM's LRU.
    #[serde(default = "default_cache_entries")]
    pub max_entries: usize,
    /// Bytes of each VM's LRU.
    #[serde(default = "default_cache_bytes")]
    pub max_bytes: usize,
    /// Slots of the proxy-wide table in shared data (0 disables it).
    #[serde(default = "default_shared_slots")]
    pub shared_slots: u32,
    /// Largest entry stored, bytes.
    #[serde(default = "default_entry_bytes")]
    pub max_entry_bytes: usize,
    /// Lifetime of an entry for a token without `exp`.
    #[serde(default = "default_ttl")]
    pub ttl_without_exp_seconds: u64,
}

fn default_cache_entries() -> usize {
    1024
}
fn default_cache_bytes() -> usize {
    2 << 20
}
fn default_shared_slots() -> u32 {
    8192
}
fn default_entry_bytes() -> usize {
    8192
}
fn default_ttl() -> u64 {
    300
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_entries: default_cache_entries(),
            max_bytes: default_cache_bytes(),
            shared_slots: default_shared_slots(),
            max_entry_bytes: default_entry_bytes(),
            ttl_without_exp_seconds: default_ttl(),
        }
    }
}

/// A compiled provider.
#[derive(Debug, Clone)]
pub struct Provider {
    /// Its name.
    pub name: String,
    /// Where its credential is.
    pub sources: Sources,
    /// Keep the credential upstream.
    pub forward: bool,
    /// JWT or API key.
    pub kind: ProviderKind,
}

/// What kind of credential a provider checks.
#[derive(Debug, Clone)]
pub enum ProviderKind {
    /// JWTs.
    Jwt(Box<JwtProvider>),
    /// API keys.
    ApiKey(ApiKeys),
}

/// A compiled JWT provider.
#[derive(Debug, Clone)]
pub struct JwtProvider {
    /// Claim rules.
    pub rules: ClaimRules,
    /// Where the keys come from.
    pub keys: KeySource,
    /// What it outputs.
    pub output: Output,
    /// Fingerprint of the claim rules: cache entries made under other rules are not served.
    pub rules_fingerprint: u64,
}

/// Where a JWT provider's keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// Inline or from the environment, fixed for the life of the config.
    Static(KeySet),
    /// Fetched; the filter keeps the current set.
    Remote(RemoteJwks),
}

/// The compiled configuration.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Providers; requirements refer to them by index.
    pub providers: Vec<Provider>,
    /// Per-route requirements.
    pub rules: Routes<Requirement>,
    /// CORS preflight bypass.
    pub bypass_cors_preflight: bool,
    /// Configured realm.
    pub realm: Option<String>,
    /// Longest credential, bytes.
    pub max_token_bytes: usize,
    /// Send identity headers upstream.
    pub identity_headers: bool,
    /// Cache settings.
    pub cache: CacheConfig,
    /// Every header this filter may set upstream: inbound copies are removed first.
    pub output_headers: Vec<String>,
}

impl Policy {
    /// Parses and compiles JSON; `env` reads environment variables (`std::env::var` in the filter).
    pub fn from_json(bytes: &[u8], env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::compile(&from_json::<JwtAuthnConfig>(bytes)?, env)
    }

    /// Compiles a parsed config.
    pub fn compile(config: &JwtAuthnConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        if config.max_token_bytes == 0 || config.max_token_bytes > 65536 {
            return Err(ConfigError::new("max_token_bytes", "must be between 1 and 65536"));
        }
        let mut providers = Vec::new();
        let mut output_headers: Vec<String> = crate::identity::HEADERS.iter().map(|h| h.to_string()).collect();
        for (name, provider) in &config.providers {
            let field = format!("providers.{name}");
            let compiled = compile_jwt(name, provider, env, &field)?;
            if let ProviderKind::Jwt(jwt) = &compiled.kind {
                output_headers.extend(jwt.output.header_names());
            }
            providers.push(compiled);
        }
        for (name, keys) in &config.api_keys {
            let field = format!("api_keys.{name}");
            if config.providers.contains_key(name) {
                return Err(ConfigError::new(field, "name already used by a JWT provider"));
            }
            providers.push(compile_api_keys(name, keys, &field)?);
        }
        output_headers.sort();
        output_headers.dedup();
        let names: Vec<&str> = providers.iter().map(|p| p.name.as_str()).collect();
        let rules = Routes::compile(
            &config.rules,
            "rules",
            |rule| &rule.route,
            |rule, at| Requirement::compile(&rule.requires, &names, &format!("{at}.requires")),
        )?;
        if rules.is_empty() {
            return Err(ConfigError::new("rules", "must have at least one rule"));
        }
        let cache = &config.cache;
        if cache.enabled && (cache.max_entries == 0 || cache.max_bytes == 0 || cache.max_entry_bytes == 0) {
            return Err(ConfigError::new("cache", "max_entries, max_bytes and max_entry_bytes must be positive"));
        }
        Ok(Self {
            providers,
            rules,
            bypass_cors_preflight: config.bypass_cors_preflight,
            realm: config.realm.as_deref().map(super::failure::sanitize_realm),
            max_token_bytes: config.max_token_bytes,
            identity_headers: config.identity_headers,
            cache: config.cache.clone(),
            output_headers,
        })
    }
}

fn compile_jwt(
    name: &str,
    config: &JwtProviderConfig,
    env: &dyn Fn(&str) -> Option<String>,
    field: &str,
) -> Result<Provider, ConfigError> {
    let at = |sub: &str| format!("{field}.{sub}");
    if config.issuer.is_empty() {
        return Err(ConfigError::new(at("issuer"), "must not be empty"));
    }
    if config.algorithms.is_empty() {
        return Err(ConfigError::new(at("algorithms"), "must list at least one algorithm"));
    }
    let mut algorithms = config.algorithms.clone();
    algorithms.sort();
    algorithms.dedup();
    if let Some(alg) = algorithms.iter().find(|alg| !alg.compiled()) {
        let problem =
            format!("{} is not compiled into this filter (core feature {})", alg.name(), alg.family_feature());
        return Err(ConfigError::new(at("algorithms"), problem));
    }
    for (i, subject) in config.subjects.iter().enumerate() {
        let empty = match subject {
            SubjectMatch::Exact(s) | SubjectMatch::Prefix(s) => s.is_empty(),
        };
        if empty {
            return Err(ConfigError::new(format!("{field}.subjects[{i}]"), "must not be empty"));
        }
    }
    if config.clock_skew_seconds > 600 {
        return Err(ConfigError::new(at("clock_skew_seconds"), "must be at most 600"));
    }
    if config.max_lifetime_seconds == Some(0) {
        return Err(ConfigError::new(at("max_lifetime_seconds"), "must be positive"));
    }
    let keys = match (&config.local_jwks, &config.remote_jwks, &config.hmac_secret) {
        (Some(jwks), None, None) => {
            let text = match jwks {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            KeySource::Static(
                KeySet::parse(text.as_bytes(), &algorithms, KeyOrigin::Public)
                    .map_err(|err| ConfigError::new(at("local_jwks"), err.to_string()))?,
            )
        }
        (None, Some(remote), None) => KeySource::Remote(RemoteJwks::compile(remote, &at("remote_jwks"))?),
        (None, None, Some(secret)) => KeySource::Static(secret_keys(secret, &algorithms, env, &at("hmac_secret"))?),
        _ => return Err(ConfigError::new(field, "exactly one of local_jwks, remote_jwks, hmac_secret is required")),
    };
    let default_header = HeaderSourceConfig { name: "authorization".into(), value_prefix: "Bearer ".into() };
    let sources = Sources::compile(
        &config.from_headers,
        &config.from_params,
        &config.from_cookies,
        (default_header, Some("access_token")),
        field,
    )?;
    let mut claim_headers = Vec::new();
    for (i, mapping) in config.claim_to_headers.iter().enumerate() {
        let path = ClaimPath::parse(&mapping.claim)
            .ok_or_else(|| ConfigError::new(format!("{field}.claim_to_headers[{i}].claim"), "invalid claim path"))?;
        claim_headers.push((path, output_header(&mapping.header, &format!("{field}.claim_to_headers[{i}].header"))?));
    }
    let payload_header =
        config.payload_header.as_deref().map(|h| output_header(h, &at("payload_header"))).transpose()?;
    let consumer_claim = config
        .consumer_claim
        .as_deref()
        .map(|c| ClaimPath::parse(c).ok_or_else(|| ConfigError::new(at("consumer_claim"), "invalid claim path")))
        .transpose()?;
    let tier = config
        .tier
        .as_ref()
        .map(|t| {
            let claim =
                ClaimPath::parse(&t.claim).ok_or_else(|| ConfigError::new(at("tier.claim"), "invalid claim path"))?;
            Ok::<_, ConfigError>(Tier { claim, map: t.map.clone(), default: t.default.clone() })
        })
        .transpose()?;
    let rules = ClaimRules {
        issuer: config.issuer.clone(),
        audiences: config.audiences.clone(),
        subjects: config.subjects.clone(),
        algorithms,
        clock_skew: config.clock_skew_seconds,
        require_exp: config.require_expiration,
        max_lifetime: config.max_lifetime_seconds,
    };
    let rules_fingerprint = super::keys::fingerprint(format!("{rules:?}").as_bytes());
    Ok(Provider {
        name: name.to_string(),
        sources,
        forward: config.forward,
        kind: ProviderKind::Jwt(Box::new(JwtProvider {
            rules,
            keys,
            output: Output { claim_headers, payload_header, consumer_claim, tier },
            rules_fingerprint,
        })),
    })
}

fn secret_keys(
    config: &HmacSecretConfig,
    algorithms: &[Algorithm],
    env: &dyn Fn(&str) -> Option<String>,
    field: &str,
) -> Result<KeySet, ConfigError> {
    let value = env(&config.env).filter(|v| !v.is_empty()).ok_or_else(|| {
        ConfigError::new(format!("{field}.env"), format!("environment variable {} is not set", config.env))
    })?;
    let bad_value = || {
        ConfigError::new(
            format!("{field}.env"),
            format!("environment variable {} is not valid {:?}", config.env, config.encoding),
        )
    };
    let secret = match config.encoding {
        SecretEncoding::Raw => value.into_bytes(),
        SecretEncoding::Base64 => STANDARD.decode(value.trim()).map_err(|_| bad_value())?,
        SecretEncoding::Base64url => {
            URL_SAFE_NO_PAD.decode(value.trim().trim_end_matches('=')).map_err(|_| bad_value())?
        }
        SecretEncoding::Jwks => {
            return KeySet::parse(value.as_bytes(), algorithms, KeyOrigin::Environment).map_err(|err| {
                ConfigError::new(format!("{field}.env"), format!("environment variable {}: {err}", config.env))
            });
        }
    };
    KeySet::from_secret(&secret, config.kid.as_deref(), algorithms).map_err(|err| {
        let problem = match err {
            super::keys::JwksError::NoUsableKey => "algorithms allow no HMAC algorithm".to_string(),
            _ => format!("environment variable {}: HMAC secret shorter than the hash output", config.env),
        };
        ConfigError::new(format!("{field}.env"), problem)
    })
}

fn compile_api_keys(name: &str, config: &ApiKeyProviderConfig, field: &str) -> Result<Provider, ConfigError> {
    let keys = ApiKeys::compile(&config.keys, &format!("{field}.keys"))?;
    let headers: Vec<HeaderSourceConfig> = config
        .from_header
        .iter()
        .map(|name| HeaderSourceConfig { name: name.clone(), value_prefix: String::new() })
        .collect();
    let params: Vec<String> = config.from_param.iter().cloned().collect();
    let default_header = HeaderSourceConfig { name: "x-api-key".into(), value_prefix: String::new() };
    let sources = Sources::compile(&headers, &params, &[], (default_header, None), field)?;
    Ok(Provider { name: name.to_string(), sources, forward: config.forward, kind: ProviderKind::ApiKey(keys) })
}

fn output_header(name: &str, field: &str) -> Result<String, ConfigError> {
    let lower = name.to_ascii_lowercase();
    let valid = !lower.is_empty() && lower.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        return Err(ConfigError::new(field, "must be a header name"));
    }
    if lower.starts_with(HEADER_PREFIX) || ["authorization", "cookie", "host"].contains(&lower.as_str()) {
        return Err(ConfigError::new(field, "is reserved"));
    }
    Ok(lower)
}
