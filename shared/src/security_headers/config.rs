//! The security-headers configuration as written in JSON (stage one of two).
//!
//! Every struct denies unknown fields; [`super::SecurityHeaders::compile`] turns this into a
//! policy that is valid by construction.

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::route::RouteMatchConfig;

/// The whole plugin configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SecurityHeadersConfig {
    /// The policy for requests no route matches.
    #[serde(default)]
    pub default: PolicyConfig,
    /// Per-route policies; the first route whose `match` fits wins.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

/// One route: a match and a complete policy (nothing is inherited from `default`).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// A name for logs and audit lines.
    #[serde(default)]
    pub name: Option<String>,
    /// Which requests this route applies to.
    #[serde(rename = "match")]
    pub route_match: RouteMatchConfig,
    /// What to do with their responses.
    #[serde(default)]
    pub policy: PolicyConfig,
}

/// What one policy adds, removes and answers.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// The base header set.
    #[serde(default)]
    pub preset: Preset,
    /// Replaces the preset's `Strict-Transport-Security`.
    #[serde(default)]
    pub hsts: Option<HstsConfig>,
    /// Replaces the preset's `Content-Security-Policy`, directive by directive.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<std::collections::BTreeMap<String, Vec<String>>>"))]
    pub csp: Option<CspConfig>,
    /// Sets `Content-Security-Policy-Report-Only`.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<std::collections::BTreeMap<String, Vec<String>>>"))]
    pub csp_report_only: Option<CspConfig>,
    /// Response headers that reveal the stack; `None` means the built-in list.
    #[serde(default)]
    pub leaky_headers: Option<Vec<String>>,
    /// Any header with a mode, applied after the preset, in order.
    #[serde(default)]
    pub headers: Vec<HeaderRuleConfig>,
    /// Cross-origin resource sharing; absent means this filter leaves CORS to the upstream.
    #[serde(default)]
    pub cors: Option<CorsConfig>,
}

/// A base header set following the OWASP Secure Headers Project.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// For APIs: nothing may be framed, embedded, cached or loaded.
    #[default]
    Strict,
    /// For pages: same-origin resources, a CSP the upstream may replace.
    Web,
    /// No header; only what the policy lists.
    None,
}

/// `Strict-Transport-Security` as fields (RFC 6797).
#[derive(Debug, Clone, Copy, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct HstsConfig {
    /// Seconds the browser remembers to use HTTPS only; 0 tells it to forget.
    #[serde(default = "one_year")]
    pub max_age: u64,
    /// Covers every subdomain too.
    #[serde(default = "yes")]
    pub include_subdomains: bool,
    /// Consent to the browsers' preload lists (hstspreload.org rules apply).
    #[serde(default)]
    pub preload: bool,
}

/// One year, the HSTS `max-age` OWASP recommends and preload lists require.
pub const ONE_YEAR: u64 = 31_536_000;

fn one_year() -> u64 {
    ONE_YEAR
}

fn yes() -> bool {
    true
}

/// A Content-Security-Policy as `directive -> sources`, in the order written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CspConfig(pub Vec<(String, Vec<String>)>);

impl<'de> Deserialize<'de> for CspConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Directives;

        impl<'de> Visitor<'de> for Directives {
            type Value = CspConfig;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of CSP directives to lists of sources")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<CspConfig, A::Error> {
                let mut directives = Vec::new();
                while let Some((name, sources)) = map.next_entry::<String, Vec<String>>()? {
                    directives.push((name, sources));
                }
                Ok(CspConfig(directives))
            }
        }

        deserializer.deserialize_map(Directives)
    }
}

/// One header rule.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct HeaderRuleConfig {
    /// Header name (case-insensitive).
    pub name: String,
    /// Header value; required unless `mode` is `remove`.
    #[serde(default)]
    pub value: Option<String>,
    /// How to apply it.
    #[serde(default)]
    pub mode: HeaderMode,
}

/// How a header rule changes the response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum HeaderMode {
    /// Replace every upstream value.
    #[default]
    Set,
    /// Add only when the upstream sent none.
    SetIfAbsent,
    /// Add another value.
    Append,
    /// Remove every value.
    Remove,
}

/// Cross-origin resource sharing for one policy.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    /// `https://app.example.com`, `https://*.example.com`, or `*` alone.
    #[serde(default)]
    pub allow_origins: Vec<String>,
    /// Regexes that must match the whole (lower-cased) origin.
    #[serde(default)]
    pub allow_origin_regexes: Vec<String>,
    /// Methods a preflight may ask for; default `GET`, `HEAD`, `POST`.
    #[serde(default)]
    pub allow_methods: Option<Vec<String>>,
    /// Request headers a preflight may ask for.
    #[serde(default)]
    pub allow_headers: Vec<String>,
    /// Response headers scripts may read (`Access-Control-Expose-Headers`).
    #[serde(default)]
    pub expose_headers: Vec<String>,
    /// Sends `Access-Control-Allow-Credentials: true`; never with `*`.
    #[serde(default)]
    pub allow_credentials: bool,
    /// Seconds a browser may cache a preflight (`Access-Control-Max-Age`).
    #[serde(default)]
    pub max_age: Option<u32>,
}
