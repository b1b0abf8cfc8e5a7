//! Cross-origin resource sharing (Fetch standard, "CORS protocol"), decided at the gateway.
//!
//! ```json
//! {"allow_origins": ["https://app.example.com", "https://*.example.com"],
//!  "allow_origin_regexes": ["https://pr-[0-9]+\\.preview\\.example\\.org"],
//!  "allow_methods": ["GET", "POST", "PUT"], "allow_headers": ["authorization", "content-type"],
//!  "expose_headers": ["x-request-id"], "allow_credentials": true, "max_age": 600}
//! ```
//!
//! - An allowed origin gets `Access-Control-Allow-Origin` (its own value, or `*` when the
//!   policy allows any origin without credentials), and the credentials and expose headers.
//! - A disallowed origin gets no CORS header at all; inbound `access-control-*` headers from
//!   the upstream are removed on every response of a route with a `cors` block.
//! - `Vary: Origin` is added to every response of such a route unless the answer is the same
//!   for every origin (`*`), so a cache never serves one origin's answer to another.
//! - `Origin: null` (sandboxed iframes, `file:`, cross-origin redirects) is only allowed by `*`;
//!   listing `null` is refused, because any page can make its requests send it.
//! - Origins are compared lower-cased; a wildcard `https://*.example.com` covers any depth of
//!   subdomain, never `https://example.com` itself, and the port must match exactly.

use regex_lite::Regex;

use super::config::CorsConfig;
use super::header::lists_token;
use crate::config::{join_path, ConfigError};
use crate::decision::{HeaderOp, LocalReply};
use crate::http::is_token;
use crate::route::{compile_methods, full_match_regex};

/// Every CORS response header, removed from upstream responses on routes this filter owns.
const RESPONSE_HEADERS: [&str; 7] = [
    "access-control-allow-origin",
    "access-control-allow-credentials",
    "access-control-expose-headers",
    "access-control-allow-methods",
    "access-control-allow-headers",
    "access-control-max-age",
    "access-control-allow-private-network",
];

/// The longest `max_age` accepted: Firefox caps preflight caching at a day, Chromium at 2 h.
const MAX_AGE_LIMIT: u32 = 86_400;

/// A compiled `cors` block.
#[derive(Debug, Clone)]
pub struct Cors {
    origins: Origins,
    methods: Vec<String>,
    allow_methods: String,
    headers: Vec<String>,
    allow_headers: Option<String>,
    expose_headers: Option<String>,
    credentials: bool,
    max_age: Option<u32>,
}

#[derive(Debug, Clone)]
enum Origins {
    /// `*`: every origin, the same answer for all.
    Any,
    /// Listed origins.
    Listed { exact: Vec<String>, wildcards: Vec<Wildcard>, regexes: Vec<Regex> },
}

/// `scheme://*.suffix[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Wildcard {
    scheme: String,
    /// With its leading dot.
    suffix: String,
    port: Option<String>,
}

/// Why a preflight was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreflightDenial {
    /// The `Origin` is not allowed.
    Origin,
    /// `Access-Control-Request-Method` is not allowed.
    Method,
    /// A name in `Access-Control-Request-Headers` is not allowed.
    Headers,
}

impl PreflightDenial {
    /// The stable reason code used in audit lines.
    pub fn reason(self) -> &'static str {
        match self {
            PreflightDenial::Origin => "cors_origin_not_allowed",
            PreflightDenial::Method => "cors_method_not_allowed",
            PreflightDenial::Headers => "cors_headers_not_allowed",
        }
    }

    fn message(self) -> &'static str {
        match self {
            PreflightDenial::Origin => "origin not allowed",
            PreflightDenial::Method => "method not allowed",
            PreflightDenial::Headers => "request headers not allowed",
        }
    }
}

impl Cors {
    /// Compiles a `cors` block; `field` names it in errors.
    pub fn compile(config: &CorsConfig, field: &str) -> Result<Self, ConfigError> {
        let origins = compile_origins(config, field)?;
        if config.allow_credentials && matches!(origins, Origins::Any) {
            return Err(ConfigError::new(
                join_path(field, "allow_credentials"),
                "cannot be combined with allow_origins \"*\"",
            ));
        }
        let methods_field = join_path(field, "allow_methods");
        let methods = match &config.allow_methods {
            Some(methods) if methods.is_empty() => {
                return Err(ConfigError::new(methods_field, "must list at least one method"))
            }
            Some(methods) => compile_methods(methods, &methods_field)?,
            None => vec!["GET".into(), "HEAD".into(), "POST".into()],
        };
        let headers = header_names(&config.allow_headers, &join_path(field, "allow_headers"))?;
        let exposed = header_names(&config.expose_headers, &join_path(field, "expose_headers"))?;
        if let Some(max_age) = config.max_age.filter(|age| *age > MAX_AGE_LIMIT) {
            return Err(ConfigError::new(
                join_path(field, "max_age"),
                format!("must be at most {MAX_AGE_LIMIT} (browsers cap it), got {max_age}"),
            ));
        }
        Ok(Self {
            origins,
            allow_methods: methods.join(", "),
            methods,
            allow_headers: joined(&headers),
            headers,
            expose_headers: joined(&exposed),
            credentials: config.allow_credentials,
            max_age: config.max_age,
        })
    }

    /// Whether the answer depends on the request's `Origin` (so responses need `Vary: Origin`).
    pub fn varies_by_origin(&self) -> bool {
        !matches!(self.origins, Origins::Any)
    }

    /// Whether `origin` (the `Origin` header as sent) is allowed.
    pub fn allows_origin(&self, origin: &str) -> bool {
        match &self.origins {
            Origins::Any => true,
            Origins::Listed { exact, wildcards, regexes } => {
                let origin = origin.to_ascii_lowercase();
                let Some(parts) = parse_origin(&origin) else {
                    return false;
                };
                exact.contains(&origin)
                    || wildcards.iter().any(|w| w.matches(&parts))
                    || regexes.iter().any(|regex| regex.is_match(&origin))
            }
        }
    }

    /// Answers a preflight: 204 with the CORS headers, or 403 with a JSON body and none.
    pub fn preflight(
        &self,
        origin: &str,
        method: &str,
        request_headers: Option<&str>,
    ) -> Result<LocalReply, (PreflightDenial, LocalReply)> {
        let vary = match self.varies_by_origin() {
            true => "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
            false => "Access-Control-Request-Method, Access-Control-Request-Headers",
        };
        let denial = if !self.allows_origin(origin) {
            Some(PreflightDenial::Origin)
        } else if !self.methods.iter().any(|allowed| allowed == method) {
            Some(PreflightDenial::Method)
        } else if !self.allows_request_headers(request_headers.unwrap_or_default()) {
            Some(PreflightDenial::Headers)
        } else {
            None
        };
        if let Some(denial) = denial {
            let reply = LocalReply::json(403, "cors_preflight_denied", denial.message()).with_header("vary", vary);
            return Err((denial, reply));
        }
        let mut reply = LocalReply {
            status: 204,
            headers: Vec::new(),
            body: Vec::new(),
            details: "palisade_cors_preflight".into(),
        }
        .with_header("access-control-allow-origin", self.allow_origin_value(origin))
        .with_header("access-control-allow-methods", self.allow_methods.clone());
        if let Some(headers) = &self.allow_headers {
            reply = reply.with_header("access-control-allow-headers", headers.clone());
        }
        if self.credentials {
            reply = reply.with_header("access-control-allow-credentials", "true");
        }
        if let Some(max_age) = self.max_age {
            reply = reply.with_header("access-control-max-age", max_age.to_string());
        }
        Ok(reply.with_header("vary", vary))
    }

    /// The CORS changes to an upstream (or other filter's) response: remove every upstream CORS
    /// header, set ours when `allowed_origin` is the request's allowed `Origin`, and add
    /// `Vary: Origin` unless the response already lists it.
    pub fn response_ops<'a>(
        &self,
        allowed_origin: Option<&str>,
        vary: impl IntoIterator<Item = &'a str>,
    ) -> Vec<HeaderOp> {
        let mut ops = Vec::with_capacity(RESPONSE_HEADERS.len() + 1);
        for name in RESPONSE_HEADERS {
            let value = match (allowed_origin, name) {
                (Some(origin), "access-control-allow-origin") => Some(self.allow_origin_value(origin)),
                (Some(_), "access-control-allow-credentials") if self.credentials => Some("true".to_string()),
                (Some(_), "access-control-expose-headers") => self.expose_headers.clone(),
                _ => None,
            };
            ops.push(match value {
                Some(value) => HeaderOp::Set(name.into(), value),
                None => HeaderOp::Remove(name.into()),
            });
        }
        if self.varies_by_origin() && !lists_token(vary, "origin") {
            ops.push(HeaderOp::Append("vary".into(), "Origin".into()));
        }
        ops
    }

    fn allow_origin_value(&self, origin: &str) -> String {
        match self.origins {
            Origins::Any => "*".into(),
            Origins::Listed { .. } => origin.to_string(),
        }
    }

    fn allows_request_headers(&self, requested: &str) -> bool {
        requested
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .all(|name| self.headers.iter().any(|allowed| allowed.eq_ignore_ascii_case(name)))
    }
}

fn compile_origins(config: &CorsConfig, field: &str) -> Result<Origins, ConfigError> {
    let origins_field = join_path(field, "allow_origins");
    if config.allow_origins.iter().any(|o| o == "*") {
        if config.allow_origins.len() > 1 || !config.allow_origin_regexes.is_empty() {
            return Err(ConfigError::new(origins_field, "\"*\" must be the only origin (and no regexes)"));
        }
        return Ok(Origins::Any);
    }
    if config.allow_origins.is_empty() && config.allow_origin_regexes.is_empty() {
        return Err(ConfigError::new(origins_field, "must list at least one origin (or allow_origin_regexes)"));
    }
    let mut exact = Vec::new();
    let mut wildcards = Vec::new();
    for (i, origin) in config.allow_origins.iter().enumerate() {
        let at = format!("{origins_field}[{i}]");
        let origin = origin.to_ascii_lowercase();
        if origin == "null" {
            return Err(ConfigError::new(at, "must not be null: any sandboxed page can send Origin: null"));
        }
        let Some(parts) = parse_origin(&origin) else {
            return Err(ConfigError::new(at, "must be scheme://host[:port] (no path, no trailing slash)"));
        };
        if let Some(port) = parts.port.filter(|port| Some(*port) == default_port(parts.scheme)) {
            return Err(ConfigError::new(at, format!("must omit the default port :{port} (browsers do)")));
        }
        match parts.host.strip_prefix('*') {
            Some(suffix) => {
                if !suffix.starts_with('.') || suffix.contains('*') || !suffix[1..].contains('.') {
                    return Err(ConfigError::new(at, "wildcard must be scheme://*.domain.tld[:port]"));
                }
                wildcards.push(Wildcard {
                    scheme: parts.scheme.into(),
                    suffix: suffix.into(),
                    port: parts.port.map(str::to_string),
                });
            }
            None if parts.host.contains('*') => {
                return Err(ConfigError::new(at, "wildcard must be scheme://*.domain.tld[:port]"))
            }
            None => exact.push(origin.clone()),
        }
    }
    let regexes_field = join_path(field, "allow_origin_regexes");
    let regexes = config
        .allow_origin_regexes
        .iter()
        .enumerate()
        .map(|(i, pattern)| full_match_regex(pattern, &format!("{regexes_field}[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Origins::Listed { exact, wildcards, regexes })
}

fn header_names(names: &[String], field: &str) -> Result<Vec<String>, ConfigError> {
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            if name == "*" {
                Err(ConfigError::new(format!("{field}[{i}]"), "\"*\" is not supported: list the header names"))
            } else if is_token(name) {
                Ok(name.to_ascii_lowercase())
            } else {
                Err(ConfigError::new(format!("{field}[{i}]"), "must be an HTTP header name"))
            }
        })
        .collect()
}

fn joined(names: &[String]) -> Option<String> {
    (!names.is_empty()).then(|| names.join(", "))
}

/// The parts of a serialized origin `scheme://host[:port]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OriginParts<'a> {
    scheme: &'a str,
    host: &'a str,
    port: Option<&'a str>,
}

/// Parses a lower-case serialized origin; `None` when it is not one (path, userinfo, ...).
/// A `*` is accepted in the host so that configured wildcards parse; requests never match it.
fn parse_origin(origin: &str) -> Option<OriginParts<'_>> {
    let (scheme, rest) = origin.split_once("://")?;
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_lowercase())
        && scheme.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b));
    if !scheme_ok || rest.is_empty() {
        return None;
    }
    let (host, port) = if rest.starts_with('[') {
        let end = rest.find(']')?;
        let (host, after) = rest.split_at(end + 1);
        let ipv6_ok = host[1..host.len() - 1].bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        if !ipv6_ok {
            return None;
        }
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        };
        let host_ok = !host.is_empty()
            && host.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.*".contains(&b));
        if !host_ok {
            return None;
        }
        (host, port)
    };
    if let Some(port) = port {
        let port_ok = !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit());
        if !port_ok || !port.parse::<u16>().is_ok_and(|p| p != 0) {
            return None;
        }
    }
    Some(OriginParts { scheme, host, port })
}

fn default_port(scheme: &str) -> Option<&'static str> {
    match scheme {
        "https" => Some("443"),
        "http" => Some("80"),
        _ => None,
    }
}

impl Wildcard {
    fn matches(&self, origin: &OriginParts<'_>) -> bool {
        origin.scheme == self.scheme
            && origin.port == self.port.as_deref()
            && !origin.host.contains('*')
            && origin.host.len() > self.suffix.len()
            && origin.host.ends_with(self.suffix.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(json: &str) -> Cors {
        let config: CorsConfig = serde_json::from_str(json).unwrap();
        Cors::compile(&config, "cors").unwrap()
    }

    fn compile_err(json: &str) -> String {
        let config: CorsConfig = serde_json::from_str(json).unwrap();
        Cors::compile(&config, "default.cors").unwrap_err().to_string()
    }

    #[test]
    fn exact_wildcard_and_regex_origins() {
        let cors = cors(
            r#"{"allow_origins":["https://App.example.com","https://*.example.org","http://*.dev.example.net:8080"],
                "allow_origin_regexes":["https://pr-[0-9]+\\.preview\\.example\\.io"]}"#,
        );
        let allowed = [
            "https://app.example.com",
            "HTTPS://APP.EXAMPLE.COM",
            "https://a.example.org",
            "https://a.b.example.org",
            "http://x.dev.example.net:8080",
            "https://pr-42.preview.example.io",
        ];
        for origin in allowed {
            assert!(cors.allows_origin(origin), "{origin}");
        }
        let refused = [
            "http://app.example.com",
            "https://app.example.com:8443",
            "https://app.example.com/",
            "https://app.example.com.evil.com",
            "https://example.org",
            "https://evilexample.org",
            "http://a.example.org",
            "https://a.example.org:443",
            "http://x.dev.example.net",
            "https://pr-42.preview.example.io.evil.com",
            "https://pr-x.preview.example.io",
            "https://*.example.org",
            "https://user@app.example.com",
            "null",
            "",
        ];
        for origin in refused {
            assert!(!cors.allows_origin(origin), "{origin}");
        }
        assert!(cors.varies_by_origin());
    }

    #[test]
    fn any_origin_answers_star_even_to_null_and_does_not_vary() {
        let cors = cors(r#"{"allow_origins":["*"]}"#);
        assert!(cors.allows_origin("null") && cors.allows_origin("https://x.test"));
        assert!(!cors.varies_by_origin());
        let ops = cors.response_ops(Some("https://x.test"), []);
        assert_eq!(ops[0], HeaderOp::Set("access-control-allow-origin".into(), "*".into()));
        assert!(!ops.iter().any(|op| matches!(op, HeaderOp::Append(..))));
    }

    #[test]
    fn allowed_origin_gets_its_own_value_credentials_exposed_headers_and_vary() {
        let cors = cors(
            r#"{"allow_origins":["https://app.example.com"],"allow_credentials":true,
                "expose_headers":["X-Request-Id","etag"]}"#,
        );
        let ops = cors.response_ops(Some("https://app.example.com"), ["accept-encoding"]);
        assert_eq!(
            ops,
            [
                HeaderOp::Set("access-control-allow-origin".into(), "https://app.example.com".into()),
                HeaderOp::Set("access-control-allow-credentials".into(), "true".into()),
                HeaderOp::Set("access-control-expose-headers".into(), "x-request-id, etag".into()),
                HeaderOp::Remove("access-control-allow-methods".into()),
                HeaderOp::Remove("access-control-allow-headers".into()),
                HeaderOp::Remove("access-control-max-age".into()),
                HeaderOp::Remove("access-control-allow-private-network".into()),
                HeaderOp::Append("vary".into(), "Origin".into()),
            ]
        );
    }

    #[test]
    fn disallowed_or_missing_origin_gets_no_cors_header_but_vary() {
        let cors = cors(r#"{"allow_origins":["https://app.example.com"],"allow_credentials":true}"#);
        let ops = cors.response_ops(None, []);
        assert_eq!(ops.len(), RESPONSE_HEADERS.len() + 1);
        assert!(ops[..RESPONSE_HEADERS.len()].iter().all(|op| matches!(op, HeaderOp::Remove(_))));
        assert_eq!(ops[RESPONSE_HEADERS.len()], HeaderOp::Append("vary".into(), "Origin".into()));
        let ops = cors.response_ops(None, ["Accept-Encoding, Origin"]);
        assert_eq!(ops.len(), RESPONSE_HEADERS.len(), "vary already lists origin");
    }

    #[test]
    fn preflight_allowed_answers_204_with_every_header() {
        let cors = cors(
            r#"{"allow_origins":["https://app.example.com"],"allow_methods":["GET","PUT"],
                "allow_headers":["Authorization","content-type"],"allow_credentials":true,"max_age":600}"#,
        );
        let reply = cors.preflight("https://app.example.com", "PUT", Some("content-type, AUTHORIZATION")).unwrap();
        assert_eq!(reply.status, 204);
        assert!(reply.body.is_empty());
        assert_eq!(reply.details, "palisade_cors_preflight");
        let headers: Vec<(&str, &str)> = reply.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            headers,
            [
                ("access-control-allow-origin", "https://app.example.com"),
                ("access-control-allow-methods", "GET, PUT"),
                ("access-control-allow-headers", "authorization, content-type"),
                ("access-control-allow-credentials", "true"),
                ("access-control-max-age", "600"),
                ("vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"),
            ]
        );
        assert!(cors.preflight("https://app.example.com", "GET", None).is_ok());
        assert!(cors.preflight("https://app.example.com", "GET", Some(" , ")).is_ok());
    }

    #[test]
    fn preflight_denied_answers_403_json_without_cors_headers() {
        let cors = cors(r#"{"allow_origins":["https://app.example.com"],"allow_headers":["content-type"]}"#);
        let cases = [
            ("https://evil.example", "GET", None, PreflightDenial::Origin, "origin not allowed"),
            ("null", "GET", None, PreflightDenial::Origin, "origin not allowed"),
            ("https://app.example.com", "DELETE", None, PreflightDenial::Method, "method not allowed"),
            ("https://app.example.com", "get", None, PreflightDenial::Method, "method not allowed"),
            (
                "https://app.example.com",
                "POST",
                Some("content-type, x-admin"),
                PreflightDenial::Headers,
                "request headers not allowed",
            ),
        ];
        for (origin, method, headers, denial, message) in cases {
            let (got, reply) = cors.preflight(origin, method, headers).unwrap_err();
            assert_eq!(got, denial, "{origin} {method}");
            assert_eq!(reply.status, 403);
            assert_eq!(reply.details, "palisade_cors_preflight_denied");
            let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
            assert_eq!(body, serde_json::json!({"error": "cors_preflight_denied", "message": message}));
            assert!(!reply.headers.iter().any(|(name, _)| name.starts_with("access-control-")));
        }
        assert_eq!(PreflightDenial::Headers.reason(), "cors_headers_not_allowed");
    }

    #[test]
    fn config_errors_name_the_field() {
        let cases = [
            (
                r#"{"allow_origins":["*"],"allow_credentials":true}"#,
                "default.cors.allow_credentials: cannot be combined with allow_origins \"*\"",
            ),
            (
                r#"{"allow_origins":["*","https://a.example.com"]}"#,
                "default.cors.allow_origins: \"*\" must be the only origin (and no regexes)",
            ),
            (r#"{}"#, "default.cors.allow_origins: must list at least one origin (or allow_origin_regexes)"),
            (
                r#"{"allow_origins":["null"]}"#,
                "default.cors.allow_origins[0]: must not be null: any sandboxed page can send Origin: null",
            ),
            (
                r#"{"allow_origins":["https://a.example.com/"]}"#,
                "default.cors.allow_origins[0]: must be scheme://host[:port] (no path, no trailing slash)",
            ),
            (
                r#"{"allow_origins":["a.example.com"]}"#,
                "default.cors.allow_origins[0]: must be scheme://host[:port] (no path, no trailing slash)",
            ),
            (
                r#"{"allow_origins":["https://a.example.com:99999"]}"#,
                "default.cors.allow_origins[0]: must be scheme://host[:port] (no path, no trailing slash)",
            ),
            (
                r#"{"allow_origins":["https://a.example.com:443"]}"#,
                "default.cors.allow_origins[0]: must omit the default port :443 (browsers do)",
            ),
            (
                r#"{"allow_origins":["https://x.example.com","https://*.com"]}"#,
                "default.cors.allow_origins[1]: wildcard must be scheme://*.domain.tld[:port]",
            ),
            (
                r#"{"allow_origins":["https://a*.example.com"]}"#,
                "default.cors.allow_origins[0]: wildcard must be scheme://*.domain.tld[:port]",
            ),
            (
                r#"{"allow_origins":["https://*.*.example.com"]}"#,
                "default.cors.allow_origins[0]: wildcard must be scheme://*.domain.tld[:port]",
            ),
            (r#"{"allow_origin_regexes":["("]}"#, "default.cors.allow_origin_regexes[0]: invalid regex"),
            (
                r#"{"allow_origins":["*"],"allow_methods":[]}"#,
                "default.cors.allow_methods: must list at least one method",
            ),
            (
                r#"{"allow_origins":["*"],"allow_methods":["get"]}"#,
                "default.cors.allow_methods[0]: must be an upper-case HTTP method",
            ),
            (
                r#"{"allow_origins":["*"],"allow_headers":["*"]}"#,
                "default.cors.allow_headers[0]: \"*\" is not supported: list the header names",
            ),
            (
                r#"{"allow_origins":["*"],"expose_headers":["x y"]}"#,
                "default.cors.expose_headers[0]: must be an HTTP header name",
            ),
            (
                r#"{"allow_origins":["*"],"max_age":86401}"#,
                "default.cors.max_age: must be at most 86400 (browsers cap it), got 86401",
            ),
        ];
        for (json, expected) in cases {
            let err = compile_err(json);
            assert!(err.starts_with(expected), "{json}: got {err}");
        }
    }

    #[test]
    fn parses_serialized_origins_only() {
        let parts = parse_origin("https://[::1]:8443").unwrap();
        assert_eq!((parts.scheme, parts.host, parts.port), ("https", "[::1]", Some("8443")));
        for bad in ["https://", "https://a.com:", "https://a.com:0", "1http://a", "https://a.com/x", "https://[zz]"] {
            assert_eq!(parse_origin(bad), None, "{bad}");
        }
    }
}
