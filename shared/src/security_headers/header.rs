//! Header names and values a policy may write, checked once at load.
//!
//! A name is an RFC 9110 token, lower-cased. Names that frame the message (`content-length`,
//! `transfer-encoding`, ...) are refused: this filter never changes bodies. `access-control-*`
//! names belong to the `cors` block. A value may not carry CR, LF, NUL or other control
//! characters, so no rule can split a response.

use crate::config::ConfigError;
use crate::http::{is_token, is_visible_ascii};

/// Response headers removed by default because they reveal the stack behind the proxy
/// (a selection of the OWASP Secure Headers Project's `headers_remove.json`).
pub const DEFAULT_LEAKY_HEADERS: [&str; 13] = [
    "server",
    "x-powered-by",
    "x-aspnet-version",
    "x-aspnetmvc-version",
    "x-php-version",
    "x-generator",
    "x-generated-by",
    "x-cf-powered-by",
    "x-server-powered-by",
    "x-powered-cms",
    "x-sourcemap",
    "sourcemap",
    "x-envoy-upstream-service-time",
];

/// Headers that frame the message or the connection: a rule on them could corrupt the body.
const FRAMING_HEADERS: [&str; 10] = [
    "content-length",
    "transfer-encoding",
    "content-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "host",
];

/// Checks a header name a policy writes or removes, and lower-cases it.
pub fn checked_name(name: &str, field: &str) -> Result<String, ConfigError> {
    if !is_token(name) {
        return Err(ConfigError::new(field, "must be an HTTP header name (a token, no pseudo-header)"));
    }
    let name = name.to_ascii_lowercase();
    if FRAMING_HEADERS.contains(&name.as_str()) {
        return Err(ConfigError::new(field, format!("{name} frames the message; this filter never changes bodies")));
    }
    if name.starts_with("access-control-") {
        return Err(ConfigError::new(field, format!("{name} is managed by the cors block")));
    }
    Ok(name)
}

/// Checks a header value: visible ASCII, spaces and tabs, no leading or trailing whitespace.
pub fn checked_value(value: &str, field: &str) -> Result<String, ConfigError> {
    if !is_visible_ascii(value) {
        return Err(ConfigError::new(field, "must be visible ASCII (no control characters, CR or LF)"));
    }
    if value.trim() != value {
        return Err(ConfigError::new(field, "must not start or end with whitespace"));
    }
    Ok(value.to_string())
}

/// Whether a comma-separated header value (like `Vary`) lists `token`, case-insensitively.
pub fn lists_token<'a>(values: impl IntoIterator<Item = &'a str>, token: &str) -> bool {
    values.into_iter().flat_map(|value| value.split(',')).any(|item| item.trim().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_tokens_lower_cased_and_never_framing_or_cors() {
        assert_eq!(checked_name("X-Frame-Options", "f").unwrap(), "x-frame-options");
        let cases = [
            ("", "f: must be an HTTP header name (a token, no pseudo-header)"),
            (":status", "f: must be an HTTP header name (a token, no pseudo-header)"),
            ("x a", "f: must be an HTTP header name (a token, no pseudo-header)"),
            ("Content-Length", "f: content-length frames the message; this filter never changes bodies"),
            ("transfer-encoding", "f: transfer-encoding frames the message; this filter never changes bodies"),
            ("Access-Control-Allow-Origin", "f: access-control-allow-origin is managed by the cors block"),
        ];
        for (name, expected) in cases {
            assert_eq!(checked_name(name, "f").unwrap_err().to_string(), expected, "{name:?}");
        }
    }

    #[test]
    fn values_cannot_split_a_response() {
        assert_eq!(checked_value("max-age=1; a\tb", "v").unwrap(), "max-age=1; a\tb");
        for bad in ["a\r\nx-injected: 1", "a\nb", "a\0", "caf\u{e9}", "\u{7f}"] {
            assert_eq!(
                checked_value(bad, "v").unwrap_err().to_string(),
                "v: must be visible ASCII (no control characters, CR or LF)"
            );
        }
        assert_eq!(checked_value(" a", "v").unwrap_err().to_string(), "v: must not start or end with whitespace");
    }

    #[test]
    fn finds_tokens_in_comma_lists() {
        assert!(lists_token(["Accept-Encoding, origin"], "Origin"));
        assert!(lists_token(["accept", "Origin"], "origin"));
        assert!(!lists_token(["Origin-X, xorigin"], "origin"));
        assert!(!lists_token([], "origin"));
    }

    #[test]
    fn default_leaky_headers_are_valid_names() {
        for name in DEFAULT_LEAKY_HEADERS {
            assert_eq!(checked_name(name, "f").unwrap(), name);
        }
    }
}
