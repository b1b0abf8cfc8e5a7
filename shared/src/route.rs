//! Per-route rules inside one VM.
//!
//! Envoy gives wasm filters no per-route configuration, so each filter carries an ordered list
//! of routes and the first whose `match` fits the request wins:
//!
//! ```json
//! {"routes": [
//!   {"match": {"route_name": "payments"}, "...": "..."},
//!   {"match": {"path": {"prefix": "/api/"}, "methods": ["POST", "PUT"], "host": "*.example.com"}},
//!   {"match": {}}
//! ]}
//! ```
//!
//! Path rules follow Envoy's route matching: `exact` and `regex` apply to the path without its
//! query string, `regex` must match the whole path, `prefix` is a plain string prefix. `host`
//! is exact or a leading `*.` wildcard, compared without the port and case-insensitively.
//! `route_name` matches the Envoy route's `name` (`xds.route_name`). All given fields must match.

use regex_lite::Regex;
use serde::Deserialize;

use crate::config::ConfigError;
use crate::http::RequestView;

/// The `match` block of a route, as written in config.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RouteMatchConfig {
    /// The Envoy route's `name`.
    #[serde(default)]
    pub route_name: Option<String>,
    /// A path rule.
    #[serde(default)]
    pub path: Option<PathMatchConfig>,
    /// `api.example.com` or `*.example.com`.
    #[serde(default)]
    pub host: Option<String>,
    /// Methods, upper case; empty means any.
    #[serde(default)]
    pub methods: Vec<String>,
}

/// One way to match a path.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum PathMatchConfig {
    /// The path equals this, query excluded.
    Exact(String),
    /// The path starts with this.
    Prefix(String),
    /// The regex matches the whole path, query excluded.
    Regex(String),
}

/// A compiled path rule.
#[derive(Debug, Clone)]
pub enum PathMatch {
    /// Equal, query excluded.
    Exact(String),
    /// Starts with.
    Prefix(String),
    /// Whole-path regex, query excluded.
    Regex(Regex),
}

impl PathMatch {
    /// Compiles a path rule; `field` names it in errors.
    pub fn compile(config: &PathMatchConfig, field: &str) -> Result<Self, ConfigError> {
        Ok(match config {
            PathMatchConfig::Exact(path) => PathMatch::Exact(require_slash(path, &format!("{field}.exact"))?),
            PathMatchConfig::Prefix(path) => PathMatch::Prefix(require_slash(path, &format!("{field}.prefix"))?),
            PathMatchConfig::Regex(pattern) => PathMatch::Regex(full_match_regex(pattern, &format!("{field}.regex"))?),
        })
    }

    /// Whether `path` (query included or not) matches.
    pub fn matches(&self, path: &str) -> bool {
        let without_query = crate::http::split_query(path).0;
        match self {
            PathMatch::Exact(exact) => without_query == exact,
            PathMatch::Prefix(prefix) => path.starts_with(prefix.as_str()),
            PathMatch::Regex(regex) => regex.is_match(without_query),
        }
    }
}

fn require_slash(path: &str, field: &str) -> Result<String, ConfigError> {
    if path.starts_with('/') {
        Ok(path.to_string())
    } else {
        Err(ConfigError::new(field, "must start with /"))
    }
}

/// Compiles `pattern` so that it must match a whole string.
pub fn full_match_regex(pattern: &str, field: &str) -> Result<Regex, ConfigError> {
    Regex::new(&format!("^(?:{pattern})$")).map_err(|err| ConfigError::new(field, format!("invalid regex: {err}")))
}

/// A host rule: exact, or any subdomain under a `*.` wildcard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    /// Equal, case-insensitive.
    Exact(String),
    /// Ends with `.suffix` (the suffix stored with its leading dot).
    Subdomain(String),
}

impl HostMatch {
    /// Parses `example.com` or `*.example.com`.
    pub fn compile(host: &str, field: &str) -> Result<Self, ConfigError> {
        let host = host.to_ascii_lowercase();
        if let Some(suffix) = host.strip_prefix("*.") {
            if suffix.is_empty() || suffix.contains('*') {
                return Err(ConfigError::new(field, "wildcard must be *.domain"));
            }
            return Ok(HostMatch::Subdomain(format!(".{suffix}")));
        }
        if host.is_empty() || host.contains('*') {
            return Err(ConfigError::new(field, "must be a host name or *.domain"));
        }
        Ok(HostMatch::Exact(host))
    }

    /// Whether `host` (no port) matches.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostMatch::Exact(exact) => host.eq_ignore_ascii_case(exact),
            HostMatch::Subdomain(suffix) => {
                host.len() > suffix.len()
                    && host.is_char_boundary(host.len() - suffix.len())
                    && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            }
        }
    }
}

/// A compiled `match` block.
#[derive(Debug, Clone, Default)]
pub struct RouteMatch {
    route_name: Option<String>,
    path: Option<PathMatch>,
    host: Option<HostMatch>,
    methods: Vec<String>,
}

impl RouteMatch {
    /// Compiles a `match` block; `field` names it in errors (e.g. `routes[2].match`).
    pub fn compile(config: &RouteMatchConfig, field: &str) -> Result<Self, ConfigError> {
        let path = config.path.as_ref().map(|p| PathMatch::compile(p, &format!("{field}.path"))).transpose()?;
        let host = config.host.as_deref().map(|h| HostMatch::compile(h, &format!("{field}.host"))).transpose()?;
        let methods = compile_methods(&config.methods, &format!("{field}.methods"))?;
        Ok(Self { route_name: config.route_name.clone(), path, host, methods })
    }

    /// Whether every given rule matches the request.
    pub fn matches(&self, request: &RequestView) -> bool {
        self.route_name.as_ref().is_none_or(|name| request.route_name.as_deref() == Some(name.as_str()))
            && self.path.as_ref().is_none_or(|path| path.matches(&request.path))
            && self.host.as_ref().is_none_or(|host| host.matches(request.host()))
            && (self.methods.is_empty() || self.methods.contains(&request.method))
    }
}

/// Checks a method list: upper-case tokens, no duplicates.
pub fn compile_methods(methods: &[String], field: &str) -> Result<Vec<String>, ConfigError> {
    for (i, method) in methods.iter().enumerate() {
        let valid = !method.is_empty() && method.bytes().all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_');
        if !valid {
            return Err(ConfigError::new(format!("{field}[{i}]"), "must be an upper-case HTTP method"));
        }
        if methods[..i].contains(method) {
            return Err(ConfigError::new(format!("{field}[{i}]"), "duplicate method"));
        }
    }
    Ok(methods.to_vec())
}

/// An ordered list of routes; the first that matches wins.
#[derive(Debug, Clone)]
pub struct Routes<T> {
    entries: Vec<(RouteMatch, T)>,
}

impl<T> Routes<T> {
    /// Compiles each route with `compile`, which gets the entry and its field path (`routes[i]`).
    pub fn compile<C>(
        configs: &[C],
        field: &str,
        route_match: impl Fn(&C) -> &RouteMatchConfig,
        mut compile: impl FnMut(&C, &str) -> Result<T, ConfigError>,
    ) -> Result<Self, ConfigError> {
        let mut entries = Vec::with_capacity(configs.len());
        for (i, config) in configs.iter().enumerate() {
            let at = format!("{field}[{i}]");
            let matcher = RouteMatch::compile(route_match(config), &format!("{at}.match"))?;
            entries.push((matcher, compile(config, &at)?));
        }
        Ok(Self { entries })
    }

    /// The first route whose match fits, if any.
    pub fn select(&self, request: &RequestView) -> Option<&T> {
        self.entries.iter().find(|(matcher, _)| matcher.matches(request)).map(|(_, value)| value)
    }

    /// Whether any route matches on `route_name`: only then does selecting need
    /// [`RequestView::route_name`] (the `xds.route_name` property).
    pub fn uses_route_name(&self) -> bool {
        self.entries.iter().any(|(matcher, _)| matcher.route_name.is_some())
    }

    /// How many routes there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there is no route.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The compiled values, in order.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.entries.iter().map(|(_, value)| value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::from_json;
    use crate::http::Headers;

    fn request(method: &str, path: &str, authority: &str, route: Option<&str>) -> RequestView {
        RequestView {
            method: method.into(),
            path: path.into(),
            authority: authority.into(),
            headers: Headers::new(),
            route_name: route.map(str::to_string),
            ..RequestView::default()
        }
    }

    fn compile(json: &str) -> Result<RouteMatch, ConfigError> {
        RouteMatch::compile(&from_json::<RouteMatchConfig>(json.as_bytes())?, "match")
    }

    #[test]
    fn path_rules_follow_envoy() {
        let exact = compile(r#"{"path":{"exact":"/a"}}"#).unwrap();
        assert!(exact.matches(&request("GET", "/a?x=1", "h", None)));
        assert!(!exact.matches(&request("GET", "/a/", "h", None)));
        let prefix = compile(r#"{"path":{"prefix":"/api"}}"#).unwrap();
        assert!(prefix.matches(&request("GET", "/apix", "h", None)));
        assert!(!prefix.matches(&request("GET", "/ap", "h", None)));
        let regex = compile(r#"{"path":{"regex":"/users/[0-9]+"}}"#).unwrap();
        assert!(regex.matches(&request("GET", "/users/42?q", "h", None)));
        assert!(!regex.matches(&request("GET", "/users/42/x", "h", None)));
    }

    #[test]
    fn host_method_and_route_name_all_apply() {
        let m = compile(r#"{"host":"*.Example.com","methods":["POST"],"route_name":"api"}"#).unwrap();
        assert!(m.matches(&request("POST", "/", "API.example.com:8443", Some("api"))));
        assert!(!m.matches(&request("POST", "/", "example.com", Some("api"))));
        // A trailing dot names the same host: the rule still holds.
        assert!(m.matches(&request("POST", "/", "a.example.com.:8443", Some("api"))));
        let exact = compile(r#"{"host":"admin.example.com"}"#).unwrap();
        assert!(exact.matches(&request("GET", "/", "Admin.Example.com.", None)));
        assert!(!exact.matches(&request("GET", "/", "admin.example.com..", None)));
        assert!(!m.matches(&request("GET", "/", "a.example.com", Some("api"))));
        assert!(!m.matches(&request("POST", "/", "a.example.com", Some("web"))));
        assert!(!m.matches(&request("POST", "/", "a.example.com", None)));
        assert!(compile("{}").unwrap().matches(&request("X", "", "", None)));
    }

    #[test]
    fn config_errors_name_the_field() {
        let cases = [
            (r#"{"path":{"exact":"a"}}"#, "match.path.exact: must start with /"),
            (r#"{"path":{"regex":"("}}"#, "match.path.regex: invalid regex"),
            (r#"{"host":"*."}"#, "match.host: wildcard must be *.domain"),
            (r#"{"host":"a*b"}"#, "match.host: must be a host name or *.domain"),
            (r#"{"methods":["get"]}"#, "match.methods[0]: must be an upper-case HTTP method"),
            (r#"{"methods":["GET","GET"]}"#, "match.methods[1]: duplicate method"),
            (r#"{"path":{"suffix":"/a"}}"#, "path: unknown variant `suffix`"),
        ];
        for (json, expected) in cases {
            let err = compile(json).unwrap_err().to_string();
            assert!(err.starts_with(expected), "{json}: got {err}");
        }
    }

    #[test]
    fn first_matching_route_wins() {
        #[derive(Deserialize)]
        struct Entry {
            #[serde(rename = "match")]
            matcher: RouteMatchConfig,
            id: u32,
        }
        let entries: Vec<Entry> =
            serde_json::from_str(r#"[{"match":{"path":{"prefix":"/api"}},"id":1},{"match":{},"id":2}]"#).unwrap();
        let routes = Routes::compile(&entries, "routes", |e| &e.matcher, |e, _| Ok(e.id)).unwrap();
        assert_eq!(routes.select(&request("GET", "/api/x", "h", None)), Some(&1));
        assert_eq!(routes.select(&request("GET", "/web", "h", None)), Some(&2));
        let none = Routes::compile(&entries[..1], "routes", |e| &e.matcher, |e, _| Ok(e.id)).unwrap();
        assert_eq!(none.select(&request("GET", "/web", "h", None)), None);
        assert!(!routes.uses_route_name());
        let named: Vec<Entry> = serde_json::from_str(
            r#"[{"match":{"path":{"prefix":"/api"}},"id":1},{"match":{"route_name":"r"},"id":2}]"#,
        )
        .unwrap();
        let named = Routes::compile(&named, "routes", |e| &e.matcher, |e, _| Ok(e.id)).unwrap();
        assert!(named.uses_route_name());
    }
}
