//! Content-Security-Policy from structured directives (CSP Level 3).
//!
//! `{"default-src": ["'self'"], "img-src": ["'self'", "data:"], "upgrade-insecure-requests": []}`
//! renders `default-src 'self'; img-src 'self' data:; upgrade-insecure-requests`. Keywords
//! written without quotes (`self` instead of `'self'`) are refused: a browser would read them
//! as a host name and the policy would silently allow the wrong thing.

use super::config::CspConfig;
use crate::config::{join_path, ConfigError};

/// Keywords that are only keywords when single-quoted.
const KEYWORDS: [&str; 9] = [
    "self",
    "none",
    "unsafe-inline",
    "unsafe-eval",
    "unsafe-hashes",
    "strict-dynamic",
    "report-sample",
    "wasm-unsafe-eval",
    "inline-speculation-rules",
];

/// Source prefixes that must be single-quoted too.
const QUOTED_PREFIXES: [&str; 4] = ["nonce-", "sha256-", "sha384-", "sha512-"];

/// Renders a policy, checking every directive and source.
pub fn render(config: &CspConfig, field: &str) -> Result<String, ConfigError> {
    if config.0.is_empty() {
        return Err(ConfigError::new(field, "must list at least one directive"));
    }
    let mut parts = Vec::with_capacity(config.0.len());
    for (i, (name, sources)) in config.0.iter().enumerate() {
        let at = join_path(field, name);
        let valid_name = name.starts_with(|c: char| c.is_ascii_lowercase())
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid_name {
            return Err(ConfigError::new(at, "must be a lower-case CSP directive name"));
        }
        if config.0[..i].iter().any(|(other, _)| other == name) {
            return Err(ConfigError::new(at, "duplicate directive"));
        }
        for (j, source) in sources.iter().enumerate() {
            check_source(source, &format!("{at}[{j}]"))?;
        }
        if sources.len() > 1 && sources.iter().any(|s| s == "'none'") {
            return Err(ConfigError::new(at, "'none' must be the only source"));
        }
        let mut part = name.clone();
        for source in sources {
            part.push(' ');
            part.push_str(source);
        }
        parts.push(part);
    }
    Ok(parts.join("; "))
}

fn check_source(source: &str, field: &str) -> Result<(), ConfigError> {
    let valid = !source.is_empty() && source.bytes().all(|b| b.is_ascii_graphic() && b != b';' && b != b',');
    if !valid {
        return Err(ConfigError::new(field, "must be one CSP source: visible ASCII without ; or ,"));
    }
    let lower = source.to_ascii_lowercase();
    if KEYWORDS.contains(&lower.as_str()) || QUOTED_PREFIXES.iter().any(|p| lower.starts_with(p)) {
        return Err(ConfigError::new(field, format!("must be quoted: '{source}'")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csp(json: &str) -> CspConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn renders_directives_in_written_order() {
        let config = csp(r#"{"script-src":["'self'","https://cdn.example.com","'nonce-abc'"],
            "default-src":["'none'"],"upgrade-insecure-requests":[],"report-to":["csp-endpoint"]}"#);
        assert_eq!(
            render(&config, "csp").unwrap(),
            "script-src 'self' https://cdn.example.com 'nonce-abc'; default-src 'none'; \
             upgrade-insecure-requests; report-to csp-endpoint"
        );
    }

    #[test]
    fn rejects_what_a_browser_would_misread() {
        let cases = [
            (r#"{}"#, "csp: must list at least one directive"),
            (r#"{"Default-Src":["'self'"]}"#, "csp.Default-Src: must be a lower-case CSP directive name"),
            (r#"{"a":[],"a":[]}"#, "csp.a: duplicate directive"),
            (r#"{"default-src":["self"]}"#, "csp.default-src[0]: must be quoted: 'self'"),
            (r#"{"script-src":["'self'","nonce-x"]}"#, "csp.script-src[1]: must be quoted: 'nonce-x'"),
            (r#"{"img-src":["a;b"]}"#, "csp.img-src[0]: must be one CSP source: visible ASCII without ; or ,"),
            (r#"{"img-src":["a b"]}"#, "csp.img-src[0]: must be one CSP source: visible ASCII without ; or ,"),
            (r#"{"img-src":[""]}"#, "csp.img-src[0]: must be one CSP source: visible ASCII without ; or ,"),
            (r#"{"img-src":["'none'","'self'"]}"#, "csp.img-src: 'none' must be the only source"),
        ];
        for (json, expected) in cases {
            assert_eq!(render(&csp(json), "csp").unwrap_err().to_string(), expected, "{json}");
        }
    }
}
