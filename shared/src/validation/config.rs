//! The request-validation config as written (serde, `deny_unknown_fields`) and its compilation
//! into a [`Policy`] that request-time code can trust.

use serde::Deserialize;

use super::csrf::{CsrfPolicy, TokenPolicy};
use super::injection::{Detector, InjectionPolicy, Location};
use super::json::JsonLimits;
use super::limits::Limits;
use super::rule::{Mode, Rule};
use super::schema::Schema;
use crate::config::ConfigError;
use crate::route::{RouteMatchConfig, Routes};

/// The whole filter config.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ValidationConfig {
    /// `enforce` (default) or `shadow` for every rule of every route.
    #[serde(default)]
    pub mode: Mode,
    /// Per-rule modes, e.g. `{"xss": "shadow"}`; a rule absent here follows `mode`.
    #[serde(default)]
    pub rule_modes: std::collections::BTreeMap<Rule, Mode>,
    /// Per-route rules; the first match wins, a request no route matches is not validated.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

/// The rules of one route.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Which requests this route covers (all, when empty).
    #[serde(rename = "match", default)]
    pub matcher: RouteMatchConfig,
    /// `shadow` to only count and log this route's violations.
    #[serde(default)]
    pub mode: Mode,
    /// Method, size and count limits.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Media types a request body may have (`application/json`, ...); empty allows any.
    #[serde(default)]
    pub content_types: Vec<String>,
    /// Limits on JSON bodies, checked while scanning (before any parse).
    #[serde(default)]
    pub json: JsonLimitsConfig,
    /// A JSON Schema (the subset documented in `schema.rs`) every JSON body must satisfy.
    #[serde(default)]
    pub schema: Option<serde_json::Value>,
    /// Injection, traversal and CRLF detectors.
    #[serde(default)]
    pub injection: InjectionConfig,
    /// CSRF checks for unsafe methods; absent means off.
    #[serde(default)]
    pub csrf: Option<CsrfConfig>,
}

/// `limits`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Allowed methods; empty allows any.
    pub methods: Vec<String>,
    /// Longest path (without the query), in bytes.
    pub max_path_bytes: usize,
    /// Longest query string (without `?`), in bytes.
    pub max_query_bytes: usize,
    /// Longest single header (name plus value), in bytes.
    pub max_header_bytes: usize,
    /// Most headers (pseudo-headers not counted).
    pub max_headers: usize,
    /// Largest body, in bytes; the body is buffered up to this size and no further.
    pub max_body_bytes: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            methods: Vec::new(),
            max_path_bytes: 2048,
            max_query_bytes: 4096,
            max_header_bytes: 8192,
            max_headers: 100,
            max_body_bytes: 1 << 20,
        }
    }
}

/// `json`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct JsonLimitsConfig {
    /// Deepest nesting of objects and arrays (at most 64).
    pub max_depth: usize,
    /// Most keys in one object.
    pub max_keys: usize,
    /// Longest string (key or value), in bytes after unescaping.
    pub max_string_bytes: usize,
    /// Most items in one array.
    pub max_array_items: usize,
}

impl Default for JsonLimitsConfig {
    fn default() -> Self {
        Self { max_depth: 32, max_keys: 1000, max_string_bytes: 64 * 1024, max_array_items: 10_000 }
    }
}

/// `injection`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct InjectionConfig {
    /// Where libinjection's SQL detector runs.
    pub sqli: Vec<Location>,
    /// Where libinjection's XSS detector runs.
    pub xss: Vec<Location>,
    /// Where `../`, encoded variants and NUL bytes are refused.
    pub path_traversal: Vec<Location>,
    /// Where CR and LF are refused.
    pub crlf: Vec<Location>,
    /// Headers the `header` location covers (lower-case names); CRLF covers every header.
    pub headers: Vec<String>,
    /// Fields exempt from `sqli` and `xss`: `query:name`, `form:name`, `cookie:name`,
    /// `header:name`, `json:/json/pointer` (`*` matches any one segment).
    pub allow: Vec<String>,
}

impl Default for InjectionConfig {
    fn default() -> Self {
        use Location::*;
        Self {
            sqli: vec![Query, Form, Json, Cookie, Header],
            xss: vec![Query, Form, Json, Cookie, Header],
            path_traversal: vec![Path, Query, Form],
            crlf: vec![Header],
            headers: Vec::new(),
            allow: Vec::new(),
        }
    }
}

/// `csrf`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CsrfConfig {
    /// Origins (`https://app.example.com`) allowed to send unsafe requests.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Also allow an Origin/Referer whose host is the request's own host (default true).
    #[serde(default = "yes")]
    pub allow_same_host: bool,
    /// Refuse unsafe requests carrying neither Origin nor Referer (default false: non-browser
    /// clients send neither, and browsers always send Origin on cross-origin POSTs).
    #[serde(default)]
    pub require_origin: bool,
    /// Signed double-submit token; absent means off.
    #[serde(default)]
    pub token: Option<TokenConfig>,
}

fn yes() -> bool {
    true
}

/// `csrf.token`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Request header carrying the token.
    #[serde(default = "default_token_header")]
    pub header: String,
    /// Cookie whose value the token is bound to (the session cookie).
    pub cookie: String,
    /// VM environment variable holding the HMAC key, base64 (standard or URL-safe), ≥ 32 bytes.
    pub secret_env: String,
}

fn default_token_header() -> String {
    "x-csrf-token".into()
}

/// The compiled filter: per-route policies, each valid by construction.
#[derive(Debug)]
pub struct Policy {
    pub(super) routes: Routes<RoutePolicy>,
}

/// One route's compiled rules.
#[derive(Debug)]
pub struct RoutePolicy {
    pub(super) index: usize,
    pub(super) modes: Modes,
    pub(super) limits: Limits,
    pub(super) content_types: Vec<String>,
    pub(super) json: JsonLimits,
    pub(super) schema: Option<Schema>,
    pub(super) injection: InjectionPolicy,
    pub(super) csrf: Option<CsrfPolicy>,
}

/// The effective mode of every rule on one route.
#[derive(Debug, Clone)]
pub struct Modes([Mode; Rule::ALL.len()]);

impl Modes {
    /// The mode of `rule`.
    pub fn of(&self, rule: Rule) -> Mode {
        self.0.get(rule as usize).copied().unwrap_or(Mode::Enforce)
    }
}

/// Compiles a config; `env` reads the VM environment (for the CSRF key).
pub fn compile(config: &ValidationConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<Policy, ConfigError> {
    let mut index = 0;
    let routes = Routes::compile(
        &config.routes,
        "routes",
        |route| &route.matcher,
        |route, at| {
            let policy = compile_route(config, route, at, index, env)?;
            index += 1;
            Ok(policy)
        },
    )?;
    Ok(Policy { routes })
}

fn compile_route(
    config: &ValidationConfig,
    route: &RouteConfig,
    at: &str,
    index: usize,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<RoutePolicy, ConfigError> {
    let mut modes = [Mode::Enforce; Rule::ALL.len()];
    for rule in Rule::ALL {
        let shadow = config.mode == Mode::Shadow
            || route.mode == Mode::Shadow
            || config.rule_modes.get(&rule) == Some(&Mode::Shadow);
        if let Some(slot) = modes.get_mut(rule as usize) {
            *slot = if shadow { Mode::Shadow } else { Mode::Enforce };
        }
    }
    let content_types = route
        .content_types
        .iter()
        .enumerate()
        .map(|(i, media)| compile_media_type(media, &format!("{at}.content_types[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let schema = route.schema.as_ref().map(|schema| Schema::compile(schema, &format!("{at}.schema"))).transpose()?;
    Ok(RoutePolicy {
        index,
        modes: Modes(modes),
        limits: Limits::compile(&route.limits, &format!("{at}.limits"))?,
        content_types,
        json: JsonLimits::compile(&route.json, &format!("{at}.json"))?,
        schema,
        injection: InjectionPolicy::compile(&route.injection, &format!("{at}.injection"))?,
        csrf: route.csrf.as_ref().map(|csrf| compile_csrf(csrf, &format!("{at}.csrf"), env)).transpose()?,
    })
}

fn compile_media_type(media: &str, field: &str) -> Result<String, ConfigError> {
    let media = media.trim().to_ascii_lowercase();
    let valid = media.split_once('/').is_some_and(|(kind, sub)| {
        let token =
            |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b));
        token(kind) && token(sub)
    });
    if valid {
        Ok(media)
    } else {
        Err(ConfigError::new(field, "must be a media type like application/json, without parameters"))
    }
}

fn compile_csrf(
    config: &CsrfConfig,
    field: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<CsrfPolicy, ConfigError> {
    let token =
        config.token.as_ref().map(|token| TokenPolicy::compile(token, &format!("{field}.token"), env)).transpose()?;
    CsrfPolicy::compile(config, token, field)
}

/// Detectors are listed per location in the config; this is the inverse lookup.
pub(super) fn detector_locations(config: &InjectionConfig, detector: Detector) -> &[Location] {
    match detector {
        Detector::Sqli => &config.sqli,
        Detector::Xss => &config.xss,
        Detector::PathTraversal => &config.path_traversal,
        Detector::Crlf => &config.crlf,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::from_json;

    fn compile_json(json: &str) -> Result<Policy, ConfigError> {
        let env = |name: &str| (name == "CSRF_KEY").then(|| "a".repeat(43));
        compile(&from_json::<ValidationConfig>(json.as_bytes())?, &env)
    }

    #[test]
    fn bad_configs_name_the_field() {
        let cases = [
            (r#"{"mode":"audit"}"#, "mode: unknown variant `audit`, expected `enforce` or `shadow`"),
            (r#"{"rule_modes":{"nope":"shadow"}}"#, "rule_modes.?: unknown variant `nope`"),
            (r#"{"routes":[{"limit":{}}]}"#, "routes[0].limit: unknown field `limit`"),
            (
                r#"{"routes":[{"limits":{"methods":["get"]}}]}"#,
                "routes[0].limits.methods[0]: must be an upper-case HTTP method",
            ),
            (r#"{"routes":[{"limits":{"max_body_bytes":0}}]}"#, "routes[0].limits.max_body_bytes: must be at least 1"),
            (
                r#"{"routes":[{"limits":{"max_body_bytes":1073741825}}]}"#,
                "routes[0].limits.max_body_bytes: must be at most 1073741824",
            ),
            (
                r#"{"routes":[{"content_types":["json"]}]}"#,
                "routes[0].content_types[0]: must be a media type like application/json, without parameters",
            ),
            (
                r#"{"routes":[{"content_types":["text/plain; charset=utf-8"]}]}"#,
                "routes[0].content_types[0]: must be a media type like application/json, without parameters",
            ),
            (r#"{"routes":[{"json":{"max_depth":65}}]}"#, "routes[0].json.max_depth: must be between 1 and 64"),
            (r#"{"routes":[{"json":{"max_keys":0}}]}"#, "routes[0].json.max_keys: must be at least 1"),
            (r#"{"routes":[{"injection":{"sqli":["body"]}}]}"#, "routes[0].injection.sqli[0]: unknown variant `body`"),
            (
                r#"{"routes":[{"injection":{"sqli":["path"]}}]}"#,
                "routes[0].injection.sqli[0]: sqli does not run on the path",
            ),
            (
                r#"{"routes":[{"injection":{"allow":["query"]}}]}"#,
                "routes[0].injection.allow[0]: must be location:field, e.g. query:q or json:/a/b",
            ),
            (
                r#"{"routes":[{"injection":{"allow":["json:a"]}}]}"#,
                "routes[0].injection.allow[0]: a json field must be a JSON pointer starting with /",
            ),
            (
                r#"{"routes":[{"injection":{"headers":["User Agent"]}}]}"#,
                "routes[0].injection.headers[0]: must be a lower-case header name",
            ),
            (r#"{"routes":[{"schema":{"type":"strin"}}]}"#, "routes[0].schema.type: unknown type `strin`"),
            (
                r#"{"routes":[{"schema":{"properties":{"a":{"pattern":"("}}}}]}"#,
                "routes[0].schema.properties.a.pattern: invalid regex",
            ),
            (r##"{"routes":[{"schema":{"$ref":"#/x"}}]}"##, "routes[0].schema.$ref: unsupported keyword"),
            (
                r#"{"routes":[{"csrf":{"allowed_origins":["app.example.com"]}}]}"#,
                "routes[0].csrf.allowed_origins[0]: must be an origin like https://app.example.com",
            ),
            (
                r#"{"routes":[{"csrf":{"token":{"cookie":"sid","secret_env":"MISSING"}}}]}"#,
                "routes[0].csrf.token.secret_env: environment variable MISSING is not set",
            ),
            (r#"{"routes":[{"match":{"path":{"exact":"x"}}}]}"#, "routes[0].match.path.exact: must start with /"),
        ];
        for (json, expected) in cases {
            let err = compile_json(json).unwrap_err().to_string();
            assert!(err.starts_with(expected), "{json}: got {err}");
        }
    }

    #[test]
    fn modes_combine_filter_route_and_rule() {
        let policy = compile_json(r#"{"rule_modes":{"xss":"shadow"},"routes":[{"mode":"shadow"},{}]}"#).unwrap();
        let routes: Vec<_> = policy.routes.values().collect();
        assert_eq!(routes[0].modes.of(Rule::Sqli), Mode::Shadow);
        assert_eq!(routes[1].modes.of(Rule::Sqli), Mode::Enforce);
        assert_eq!(routes[1].modes.of(Rule::Xss), Mode::Shadow);
        let all = compile_json(r#"{"mode":"shadow","routes":[{}]}"#).unwrap();
        assert!(Rule::ALL.iter().all(|&rule| all.routes.values().all(|r| r.modes.of(rule) == Mode::Shadow)));
        assert_eq!(routes[1].index, 1);
    }

    #[test]
    fn an_empty_config_validates_nothing() {
        assert!(compile_json("").unwrap().routes.is_empty());
    }
}
