//! CSRF checks for unsafe methods (anything but GET, HEAD, OPTIONS, TRACE).
//!
//! 1. `Sec-Fetch-Site`: `same-origin`, `same-site` and `none` pass this step; `cross-site`
//!    (or an unknown value) passes only if the Origin is in `allowed_origins`.
//! 2. `Origin`, or when absent the origin of `Referer`, must be in `allowed_origins` or (with
//!    `allow_same_host`) have the request's own host. `Origin: null` is refused. Neither
//!    header: refused only with `require_origin`.
//! 3. With `token`: a signed double-submit token in a header, bound to the session cookie:
//!
//! ```text
//! token   = expiry "." base64url(HMAC-SHA256(key, "palisade-csrf-v1." expiry "." session))
//! expiry  = Unix seconds, decimal; the token is refused after it
//! session = the value of the configured session cookie, as the browser sends it
//! ```
//!
//! An application mints a token with the same key when it sets the session cookie, and hands
//! it to its pages (meta tag, JSON); the page's script sends it back in the header. A
//! cross-site attacker can make the browser send the cookie but can neither read nor forge
//! the token. The MAC is compared in constant time.

use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::config::{CsrfConfig, TokenConfig};
use super::rule::{Place, Rule, Violation};
use crate::config::ConfigError;
use crate::http::{host_without_port, RequestView};

/// Shortest HMAC key accepted, in bytes.
const MIN_KEY_BYTES: usize = 32;

/// Domain separation for the MAC input.
const TOKEN_CONTEXT: &str = "palisade-csrf-v1.";

/// Compiled `csrf`.
#[derive(Debug, Clone)]
pub struct CsrfPolicy {
    allowed_origins: Vec<String>,
    allow_same_host: bool,
    require_origin: bool,
    token: Option<TokenPolicy>,
}

/// Compiled `csrf.token`.
#[derive(Clone)]
pub struct TokenPolicy {
    header: String,
    cookie: String,
    key: Vec<u8>,
}

impl std::fmt::Debug for TokenPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenPolicy").field("header", &self.header).field("cookie", &self.cookie).finish()
    }
}

impl CsrfPolicy {
    /// Checks the origins.
    pub fn compile(config: &CsrfConfig, token: Option<TokenPolicy>, field: &str) -> Result<Self, ConfigError> {
        let allowed_origins = config
            .allowed_origins
            .iter()
            .enumerate()
            .map(|(i, origin)| {
                normalize_origin(origin).ok_or_else(|| {
                    ConfigError::new(
                        format!("{field}.allowed_origins[{i}]"),
                        "must be an origin like https://app.example.com",
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            allowed_origins,
            allow_same_host: config.allow_same_host,
            require_origin: config.require_origin,
            token,
        })
    }

    /// Checks `request`; `now` is Unix seconds (for token expiry).
    pub fn check(&self, request: &RequestView, now: u64, report: &mut dyn FnMut(Violation) -> bool) -> bool {
        if matches!(request.method.as_str(), "GET" | "HEAD" | "OPTIONS" | "TRACE") {
            return false;
        }
        let headers = &request.headers;
        let origin = headers.get("origin").map(str::trim);
        let origin_allowed = origin.and_then(normalize_origin).is_some_and(|o| self.allowed_origins.contains(&o));
        let fetch_ok = match headers.get("sec-fetch-site").map(|v| v.trim().to_ascii_lowercase()) {
            None => true,
            Some(site) => matches!(site.as_str(), "same-origin" | "same-site" | "none") || origin_allowed,
        };
        let source = match origin {
            Some(origin) => Some(normalize_origin(origin)),
            None => headers.get("referer").map(|referer| referer_origin(referer.trim())),
        };
        let source_ok = match source {
            None => !self.require_origin,
            Some(None) => false,
            Some(Some(source)) => {
                self.allowed_origins.contains(&source) || (self.allow_same_host && self.same_host(&source, request))
            }
        };
        if (!fetch_ok || !source_ok) && report(Violation::new(Rule::CsrfOrigin, Place::Header)) {
            return true;
        }
        match &self.token {
            Some(token) if !token.verify(request, now) => {
                report(Violation::new(Rule::CsrfToken, Place::Header).field(&token.header))
            }
            _ => false,
        }
    }

    fn same_host(&self, origin: &str, request: &RequestView) -> bool {
        let authority = origin.split_once("://").map_or("", |(_, authority)| authority);
        let host = host_without_port(authority);
        !host.is_empty() && host.eq_ignore_ascii_case(request.host())
    }
}

impl TokenPolicy {
    /// Reads the key from the environment variable named in the config.
    pub fn compile(
        config: &TokenConfig,
        field: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let header = config.header.to_ascii_lowercase();
        if header.is_empty() || !header.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(ConfigError::new(format!("{field}.header"), "must be a header name"));
        }
        if config.cookie.is_empty() || config.cookie.contains([';', '=', ' ']) {
            return Err(ConfigError::new(format!("{field}.cookie"), "must be a cookie name"));
        }
        let at = format!("{field}.secret_env");
        let secret = env(&config.secret_env)
            .ok_or_else(|| ConfigError::new(&at, format!("environment variable {} is not set", config.secret_env)))?;
        let key = decode_key(secret.trim()).ok_or_else(|| {
            ConfigError::new(
                &at,
                format!(
                    "environment variable {} must hold base64 of at least {MIN_KEY_BYTES} bytes",
                    config.secret_env
                ),
            )
        })?;
        Ok(Self { header, cookie: config.cookie.clone(), key })
    }

    fn verify(&self, request: &RequestView, now: u64) -> bool {
        let Some(token) = request.headers.get(&self.header).map(str::trim) else {
            return false;
        };
        let session = request
            .headers
            .get_all("cookie")
            .flat_map(crate::http::cookie_pairs)
            .find(|(name, _)| *name == self.cookie)
            .map(|(_, value)| value);
        let Some(session) = session.filter(|s| !s.is_empty()) else {
            return false;
        };
        let Some((expiry, mac)) = token.split_once('.') else {
            return false;
        };
        let Ok(expiry_secs) = expiry.parse::<u64>() else {
            return false;
        };
        let Ok(given) = URL_SAFE_NO_PAD.decode(mac) else {
            return false;
        };
        let expected = self.mac(expiry, session);
        let mac_ok: bool = expected.as_slice().ct_eq(given.as_slice()).into();
        mac_ok && now <= expiry_secs
    }

    fn mac(&self, expiry: &str, session: &str) -> Vec<u8> {
        // HMAC accepts keys of any length, so this cannot fail; an empty MAC never matches.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return Vec::new();
        };
        mac.update(TOKEN_CONTEXT.as_bytes());
        mac.update(expiry.as_bytes());
        mac.update(b".");
        mac.update(session.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// Mints a token the way an application does (used by tests and documented tooling).
    pub fn mint(&self, expiry: u64, session: &str) -> String {
        let expiry = expiry.to_string();
        format!("{expiry}.{}", URL_SAFE_NO_PAD.encode(self.mac(&expiry, session)))
    }
}

fn decode_key(secret: &str) -> Option<Vec<u8>> {
    [&STANDARD, &URL_SAFE, &URL_SAFE_NO_PAD, &base64::engine::general_purpose::STANDARD_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(secret).ok())
        .filter(|key| key.len() >= MIN_KEY_BYTES)
}

/// `scheme://host[:port]`, lower-cased, default ports dropped; `None` for anything else
/// (including `null` and origins with a path).
fn normalize_origin(origin: &str) -> Option<String> {
    let (scheme, authority) = origin.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if !matches!(scheme.as_str(), "http" | "https") || authority.is_empty() {
        return None;
    }
    if authority.contains(['/', '?', '#', '@', ' ']) {
        return None;
    }
    let authority = authority.to_ascii_lowercase();
    let default_port = if scheme == "https" { ":443" } else { ":80" };
    let authority = authority.strip_suffix(default_port).unwrap_or(&authority);
    Some(format!("{scheme}://{authority}"))
}

/// The origin of a `Referer` URL.
fn referer_origin(referer: &str) -> Option<String> {
    let (scheme, rest) = referer.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = rest.get(..end)?;
    normalize_origin(&format!("{scheme}://{authority}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Headers;

    const KEY_B64: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // "0123456789abcdef" twice

    fn policy(json: &str) -> CsrfPolicy {
        let config: CsrfConfig = serde_json::from_str(json).unwrap();
        let env = |name: &str| (name == "CSRF_KEY").then(|| KEY_B64.to_string());
        let token = config.token.as_ref().map(|t| TokenPolicy::compile(t, "csrf.token", &env).unwrap());
        CsrfPolicy::compile(&config, token, "csrf").unwrap()
    }

    fn request(method: &str, headers: &[(&str, &str)]) -> RequestView {
        RequestView {
            method: method.into(),
            path: "/transfer".into(),
            authority: "bank.example.com".into(),
            scheme: "https".into(),
            headers: Headers::from_pairs(headers.iter().copied()),
            ..RequestView::default()
        }
    }

    fn verdict(policy: &CsrfPolicy, request: &RequestView, now: u64) -> Option<Rule> {
        let mut found = None;
        policy.check(request, now, &mut |v| {
            found = Some(v.rule);
            true
        });
        found
    }

    #[test]
    fn origin_then_referer_then_fetch_metadata() {
        let p = policy(r#"{"allowed_origins":["https://app.example.com"]}"#);
        type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Option<Rule>);
        let cases: Vec<Case> = vec![
            ("GET", vec![("origin", "https://evil.example")], None),
            ("POST", vec![], None),
            ("POST", vec![("origin", "https://app.example.com")], None),
            ("POST", vec![("origin", "https://APP.example.com:443")], None),
            ("POST", vec![("origin", "https://app.example.com:8443")], Some(Rule::CsrfOrigin)),
            ("POST", vec![("origin", "https://bank.example.com:8443")], None),
            ("POST", vec![("origin", "https://evil.example")], Some(Rule::CsrfOrigin)),
            ("POST", vec![("origin", "null")], Some(Rule::CsrfOrigin)),
            ("DELETE", vec![("referer", "https://bank.example.com/page?x=1")], None),
            ("PUT", vec![("referer", "https://evil.example/bank.example.com")], Some(Rule::CsrfOrigin)),
            ("POST", vec![("referer", "not a url")], Some(Rule::CsrfOrigin)),
            (
                "POST",
                vec![("origin", "https://evil.example"), ("referer", "https://bank.example.com/")],
                Some(Rule::CsrfOrigin),
            ),
            ("POST", vec![("sec-fetch-site", "same-origin")], None),
            ("POST", vec![("sec-fetch-site", "same-site")], None),
            ("POST", vec![("sec-fetch-site", "none")], None),
            ("POST", vec![("sec-fetch-site", "cross-site")], Some(Rule::CsrfOrigin)),
            ("POST", vec![("sec-fetch-site", "cross-site"), ("origin", "https://app.example.com")], None),
            (
                "POST",
                vec![("sec-fetch-site", "cross-site"), ("origin", "https://bank.example.com")],
                Some(Rule::CsrfOrigin),
            ),
            ("POST", vec![("sec-fetch-site", "bogus")], Some(Rule::CsrfOrigin)),
        ];
        for (method, headers, expected) in cases {
            assert_eq!(verdict(&p, &request(method, &headers), 0), expected, "{method} {headers:?}");
        }
    }

    #[test]
    fn require_origin_and_same_host_switches() {
        let strict = policy(r#"{"require_origin":true,"allow_same_host":false}"#);
        assert_eq!(verdict(&strict, &request("POST", &[]), 0), Some(Rule::CsrfOrigin));
        assert_eq!(
            verdict(&strict, &request("POST", &[("origin", "https://bank.example.com")]), 0),
            Some(Rule::CsrfOrigin)
        );
    }

    #[test]
    fn signed_double_submit_token() {
        let p = policy(r#"{"token":{"cookie":"sid","secret_env":"CSRF_KEY"}}"#);
        let token_policy = p.token.clone().unwrap();
        let token = token_policy.mint(1_000, "session-abc");
        let with = |cookie: &str, token: &str| request("POST", &[("cookie", cookie), ("x-csrf-token", token)]);
        assert_eq!(verdict(&p, &with("a=1; sid=session-abc", &token), 1_000), None, "valid until expiry");
        assert_eq!(verdict(&p, &with("sid=session-abc", &token), 1_001), Some(Rule::CsrfToken), "expired");
        assert_eq!(verdict(&p, &with("sid=session-xyz", &token), 0), Some(Rule::CsrfToken), "other session");
        assert_eq!(verdict(&p, &with("other=session-abc", &token), 0), Some(Rule::CsrfToken), "no session");
        let forged_expiry = token.replacen("1000", "9999", 1);
        assert_eq!(verdict(&p, &with("sid=session-abc", &forged_expiry), 0), Some(Rule::CsrfToken));
        assert_eq!(verdict(&p, &with("sid=session-abc", "garbage"), 0), Some(Rule::CsrfToken));
        assert_eq!(verdict(&p, &request("POST", &[("cookie", "sid=session-abc")]), 0), Some(Rule::CsrfToken));
        assert_eq!(verdict(&p, &request("GET", &[]), 0), None, "safe methods need no token");
    }

    #[test]
    fn token_format_is_stable() {
        // HMAC-SHA256(key = "0123456789abcdef0123456789abcdef",
        //             "palisade-csrf-v1.1700000000.s1"), computed independently with Python's hmac.
        let p = policy(r#"{"token":{"cookie":"sid","secret_env":"CSRF_KEY"}}"#);
        let token = p.token.unwrap().mint(1_700_000_000, "s1");
        assert_eq!(token, format!("1700000000.{}", PYTHON_MAC));
    }

    const PYTHON_MAC: &str = "APnNPP7DIdq2aGhP2u3n9ZBVh8-ormI4ZTbaNPkVgms";

    #[test]
    fn key_errors() {
        let config: TokenConfig = serde_json::from_str(r#"{"cookie":"sid","secret_env":"K"}"#).unwrap();
        let short = |_: &str| Some("c2hvcnQ=".to_string());
        let err = TokenPolicy::compile(&config, "csrf.token", &short).unwrap_err().to_string();
        assert_eq!(err, "csrf.token.secret_env: environment variable K must hold base64 of at least 32 bytes");
        let bad: TokenConfig = serde_json::from_str(r#"{"cookie":"a b","secret_env":"K"}"#).unwrap();
        let err = TokenPolicy::compile(&bad, "csrf.token", &short).unwrap_err().to_string();
        assert_eq!(err, "csrf.token.cookie: must be a cookie name");
    }
}
