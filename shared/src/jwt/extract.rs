//! Where a credential is looked for, and how it is removed before the upstream sees it.
//!
//! ```json
//! {"from_headers": [{"name": "authorization", "value_prefix": "Bearer "}],
//!  "from_params": ["access_token"], "from_cookies": ["session"], "forward": false}
//! ```
//!
//! With no location configured a JWT provider reads `Authorization: Bearer <token>` and the
//! `access_token` query parameter, as Envoy does. Prefixes match case-insensitively. A header
//! carrying a token is removed whole, a query parameter is cut from `:path`, a cookie from
//! `cookie`, unless `forward` is set.

use serde::Deserialize;

use crate::config::ConfigError;
use crate::decision::HeaderOp;
use crate::http::{cookie_pairs, is_token, param_name_is, percent_decode, query_pairs, split_query, RequestView};

/// A header location, as written in config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct HeaderSourceConfig {
    /// Header name.
    pub name: String,
    /// Text before the token, e.g. `Bearer `; matched case-insensitively.
    #[serde(default)]
    pub value_prefix: String,
}

/// The locations of one provider's credential.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources {
    headers: Vec<(String, String)>,
    params: Vec<String>,
    cookies: Vec<String>,
}

/// Where a credential was found.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Location {
    /// In this header (lower-case).
    Header(String),
    /// In this query parameter.
    Param(String),
    /// In this cookie.
    Cookie(String),
}

/// A credential and where it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The credential, prefix removed.
    pub value: String,
    /// Its location.
    pub location: Location,
}

impl Sources {
    /// Compiles locations; `default_header` applies when none is given.
    pub fn compile(
        headers: &[HeaderSourceConfig],
        params: &[String],
        cookies: &[String],
        defaults: (HeaderSourceConfig, Option<&str>),
        field: &str,
    ) -> Result<Self, ConfigError> {
        let mut compiled = Self::default();
        for (i, header) in headers.iter().enumerate() {
            let name = header.name.to_ascii_lowercase();
            if !is_token(&name) || name.starts_with(':') {
                return Err(ConfigError::new(format!("{field}.from_headers[{i}].name"), "must be a header name"));
            }
            compiled.headers.push((name, header.value_prefix.clone()));
        }
        for (i, param) in params.iter().enumerate() {
            if param.is_empty() || param.contains(['&', '=']) {
                return Err(ConfigError::new(format!("{field}.from_params[{i}]"), "must be a query parameter name"));
            }
        }
        for (i, cookie) in cookies.iter().enumerate() {
            if !is_token(cookie) {
                return Err(ConfigError::new(format!("{field}.from_cookies[{i}]"), "must be a cookie name"));
            }
        }
        compiled.params = params.to_vec();
        compiled.cookies = cookies.to_vec();
        if headers.is_empty() && params.is_empty() && cookies.is_empty() {
            let (header, param) = defaults;
            compiled.headers.push((header.name, header.value_prefix));
            compiled.params.extend(param.map(str::to_string));
        }
        Ok(compiled)
    }

    /// Every credential in the locations, headers first, then parameters, then cookies: each
    /// value of a header that starts with the prefix, each occurrence of a parameter or cookie.
    /// All of them must verify: one left unchecked beside a good one would reach the upstream,
    /// which might take it for the one that verified (Envoy's `jwt_authn` checks all too).
    pub fn find_all(&self, request: &RequestView) -> Vec<Found> {
        let mut found = Vec::new();
        for (name, prefix) in &self.headers {
            for value in request.headers.get_all(name) {
                let token = strip_prefix_ignore_case(value, prefix).map(str::trim).unwrap_or_default();
                if !token.is_empty() {
                    found.push(Found { value: token.to_string(), location: Location::Header(name.clone()) });
                }
            }
        }
        if let Some(query) = request.query() {
            for param in &self.params {
                for (_, value) in
                    query_pairs(query).filter(|(name, value)| param_name_is(name, param) && !value.is_empty())
                {
                    found.push(Found { value: percent_decode(value, false), location: Location::Param(param.clone()) });
                }
            }
        }
        for cookie in &self.cookies {
            for header in request.headers.get_all("cookie") {
                for (_, value) in cookie_pairs(header).filter(|(name, value)| name == cookie && !value.is_empty()) {
                    found.push(Found { value: value.to_string(), location: Location::Cookie(cookie.clone()) });
                }
            }
        }
        found
    }
}

/// The header operations that remove credentials at `locations` from the request.
pub fn strip(request: &RequestView, locations: &[Location]) -> Vec<HeaderOp> {
    let mut ops = Vec::new();
    let mut params = Vec::new();
    let mut cookies = Vec::new();
    for location in locations {
        match location {
            Location::Header(name) if !ops.contains(&HeaderOp::Remove(name.clone())) => {
                ops.push(HeaderOp::Remove(name.clone()))
            }
            Location::Header(_) => {}
            Location::Param(name) => params.push(name.as_str()),
            Location::Cookie(name) => cookies.push(name.as_str()),
        }
    }
    if !params.is_empty() {
        let (path, query) = split_query(&request.path);
        let kept: Vec<&str> = query
            .unwrap_or_default()
            .split('&')
            .filter(|pair| {
                let name = pair.split_once('=').map_or(*pair, |(name, _)| name);
                !pair.is_empty() && !params.iter().any(|param| param_name_is(name, param))
            })
            .collect();
        let new_path = if kept.is_empty() { path.to_string() } else { format!("{path}?{}", kept.join("&")) };
        ops.push(HeaderOp::Set(":path".into(), new_path));
    }
    if !cookies.is_empty() {
        let kept: Vec<String> = request
            .headers
            .get_all("cookie")
            .flat_map(|header| header.split(';'))
            .map(str::trim)
            .filter(|pair| {
                !pair.is_empty() && !cookies.contains(&pair.split_once('=').map_or(*pair, |(n, _)| n.trim()))
            })
            .map(str::to_string)
            .collect();
        ops.push(if kept.is_empty() {
            HeaderOp::Remove("cookie".into())
        } else {
            HeaderOp::Set("cookie".into(), kept.join("; "))
        });
    }
    ops
}

fn strip_prefix_ignore_case<'a>(value: &'a str, prefix: &str) -> Option<&'a str> {
    let head = value.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| value.get(prefix.len()..)).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Headers;

    fn bearer() -> (HeaderSourceConfig, Option<&'static str>) {
        (HeaderSourceConfig { name: "authorization".into(), value_prefix: "Bearer ".into() }, Some("access_token"))
    }

    fn request(path: &str, headers: &[(&str, &str)]) -> RequestView {
        RequestView {
            method: "GET".into(),
            path: path.into(),
            headers: Headers::from_pairs(headers.iter().copied()),
            ..RequestView::default()
        }
    }

    fn values(found: &[Found]) -> Vec<&str> {
        found.iter().map(|f| f.value.as_str()).collect()
    }

    #[test]
    fn defaults_are_bearer_then_access_token() {
        let sources = Sources::compile(&[], &[], &[], bearer(), "p").unwrap();
        let found = sources.find_all(&request("/", &[("Authorization", "bearer abc")]));
        assert_eq!(found, [Found { value: "abc".into(), location: Location::Header("authorization".into()) }]);
        let found = sources.find_all(&request("/?x=1&access_token=a%2Eb", &[]));
        assert_eq!(values(&found), ["a.b"]);
        assert_eq!(sources.find_all(&request("/", &[("authorization", "Basic abc")])), []);
        assert_eq!(sources.find_all(&request("/?access_token=", &[("authorization", "Bearer ")])), []);
    }

    #[test]
    fn every_credential_is_found_in_location_order() {
        let sources = Sources::compile(&[], &[], &[], bearer(), "p").unwrap();
        let req = request(
            "/?access_token=q1&b=2&access_token=q2",
            &[("authorization", "Bearer h1"), ("authorization", "Basic x"), ("authorization", "Bearer h2")],
        );
        let found = sources.find_all(&req);
        assert_eq!(values(&found), ["h1", "h2", "q1", "q2"]);
        assert_eq!(found[1].location, Location::Header("authorization".into()));
        assert_eq!(found[3].location, Location::Param("access_token".into()));
    }

    #[test]
    fn configured_locations_replace_the_defaults() {
        let headers = [HeaderSourceConfig { name: "X-Token".into(), value_prefix: String::new() }];
        let sources = Sources::compile(&headers, &[], &["sid".into()], bearer(), "p").unwrap();
        assert_eq!(sources.find_all(&request("/?access_token=q", &[("authorization", "Bearer a")])), []);
        assert_eq!(values(&sources.find_all(&request("/", &[("x-token", "t1")]))), ["t1"]);
        let found = sources.find_all(&request("/", &[("cookie", "a=1; sid=t2"), ("cookie", "sid=t3")]));
        assert_eq!(found[0].location, Location::Cookie("sid".into()));
        assert_eq!(values(&found), ["t2", "t3"]);
    }

    #[test]
    fn strips_headers_params_and_cookies() {
        let req = request("/a?access_token=t&b=2", &[("authorization", "Bearer t"), ("cookie", "sid=t; theme=dark")]);
        let ops = strip(
            &req,
            &[
                Location::Header("authorization".into()),
                Location::Param("access_token".into()),
                Location::Cookie("sid".into()),
            ],
        );
        assert_eq!(
            ops,
            [
                HeaderOp::Remove("authorization".into()),
                HeaderOp::Set(":path".into(), "/a?b=2".into()),
                HeaderOp::Set("cookie".into(), "theme=dark".into()),
            ]
        );
        let only = request("/a?access_token=t", &[("cookie", "sid=t")]);
        let ops = strip(&only, &[Location::Param("access_token".into()), Location::Cookie("sid".into())]);
        assert_eq!(ops, [HeaderOp::Set(":path".into(), "/a".into()), HeaderOp::Remove("cookie".into())]);
    }

    #[test]
    fn parameter_names_match_once_decoded() {
        // The upstream decodes `acc%65ss_token` to `access_token`: it is a credential here too,
        // checked, and cut from the path with the plain one.
        let sources = Sources::compile(&[], &[], &[], bearer(), "p").unwrap();
        let req = request("/a?acc%65ss_token=t1&access_token=t2&access%5Ftoken=t3&b=acc%65ss_token", &[]);
        let found = sources.find_all(&req);
        assert_eq!(values(&found), ["t1", "t2", "t3"]);
        assert!(found.iter().all(|f| f.location == Location::Param("access_token".into())));
        let ops = strip(&req, &[Location::Param("access_token".into())]);
        assert_eq!(ops, [HeaderOp::Set(":path".into(), "/a?b=acc%65ss_token".into())]);
    }

    #[test]
    fn bad_locations_are_config_errors() {
        let bad = [HeaderSourceConfig { name: "bad header".into(), value_prefix: String::new() }];
        let err = Sources::compile(&bad, &[], &[], bearer(), "providers.a").unwrap_err();
        assert_eq!(err.to_string(), "providers.a.from_headers[0].name: must be a header name");
        let err = Sources::compile(&[], &["a=b".into()], &[], bearer(), "p").unwrap_err();
        assert_eq!(err.to_string(), "p.from_params[0]: must be a query parameter name");
        let err = Sources::compile(&[], &[], &["a b".into()], bearer(), "p").unwrap_err();
        assert_eq!(err.to_string(), "p.from_cookies[0]: must be a cookie name");
    }
}
