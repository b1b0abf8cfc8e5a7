//! `Strict-Transport-Security` from fields (RFC 6797 §6.1), with the preload lists' rules.

use super::config::{HstsConfig, ONE_YEAR};
use crate::config::{join_path, ConfigError};

/// Renders an HSTS value, refusing a `preload` the browsers' preload lists would reject
/// (they require `max-age` of at least one year and `includeSubDomains`).
pub fn render(config: &HstsConfig, field: &str) -> Result<String, ConfigError> {
    if config.preload && config.max_age < ONE_YEAR {
        return Err(ConfigError::new(join_path(field, "preload"), "requires max_age of at least 31536000 (one year)"));
    }
    if config.preload && !config.include_subdomains {
        return Err(ConfigError::new(join_path(field, "preload"), "requires include_subdomains"));
    }
    let mut value = format!("max-age={}", config.max_age);
    if config.include_subdomains {
        value.push_str("; includeSubDomains");
    }
    if config.preload {
        value.push_str("; preload");
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hsts(max_age: u64, include_subdomains: bool, preload: bool) -> HstsConfig {
        HstsConfig { max_age, include_subdomains, preload }
    }

    #[test]
    fn renders_rfc_6797_directives() {
        assert_eq!(render(&hsts(ONE_YEAR, true, false), "h").unwrap(), "max-age=31536000; includeSubDomains");
        assert_eq!(render(&hsts(0, false, false), "h").unwrap(), "max-age=0");
        assert_eq!(render(&hsts(63_072_000, true, true), "h").unwrap(), "max-age=63072000; includeSubDomains; preload");
        assert_eq!(render(&hsts(ONE_YEAR, true, true), "h").unwrap(), "max-age=31536000; includeSubDomains; preload");
    }

    #[test]
    fn preload_needs_a_year_and_subdomains() {
        assert_eq!(
            render(&hsts(ONE_YEAR - 1, true, true), "default.hsts").unwrap_err().to_string(),
            "default.hsts.preload: requires max_age of at least 31536000 (one year)"
        );
        assert_eq!(
            render(&hsts(ONE_YEAR, false, true), "default.hsts").unwrap_err().to_string(),
            "default.hsts.preload: requires include_subdomains"
        );
    }
}
