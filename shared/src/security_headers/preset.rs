//! The base header sets, following the OWASP Secure Headers Project (`ci/headers_add.json`,
//! 2024-09-02) with two deliberate differences, both documented in the README:
//!
//! - `Clear-Site-Data` is never in a preset: on every response it would log users out.
//! - `X-XSS-Protection: 0`, as OWASP recommends: the legacy XSS auditor that `1; mode=block`
//!   turned on was removed from browsers because it enabled cross-site leaks; `0` switches it
//!   off in the old browsers that still have it.

use super::config::{HeaderMode, Preset};

/// `Permissions-Policy` from OWASP `headers_add.json`: every powerful feature off.
pub const PERMISSIONS_POLICY: &str = "accelerometer=(), autoplay=(), camera=(), cross-origin-isolated=(), \
display-capture=(), encrypted-media=(), fullscreen=(), geolocation=(), gyroscope=(), keyboard-map=(), \
magnetometer=(), microphone=(), midi=(), payment=(), picture-in-picture=(), publickey-credentials-get=(), \
screen-wake-lock=(), sync-xhr=(self), usb=(), web-share=(), xr-spatial-tracking=(), clipboard-read=(), \
clipboard-write=(), gamepad=(), hid=(), idle-detection=(), interest-cohort=(), serial=(), unload=()";

/// HSTS for one year with subdomains, as OWASP recommends.
pub const HSTS: &str = "max-age=31536000; includeSubDomains";

/// The CSP of `strict`: an API response loads nothing and is framed nowhere.
pub const STRICT_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// The CSP of `web`: OWASP's value without the deprecated `block-all-mixed-content`
/// (`upgrade-insecure-requests` supersedes it), plus `base-uri 'self'`.
pub const WEB_CSP: &str = "default-src 'self'; form-action 'self'; object-src 'none'; frame-ancestors 'none'; \
base-uri 'self'; upgrade-insecure-requests";

type Entry = (&'static str, &'static str, HeaderMode);

const STRICT: [Entry; 12] = [
    ("cache-control", "no-store", HeaderMode::Set),
    ("content-security-policy", STRICT_CSP, HeaderMode::Set),
    ("cross-origin-embedder-policy", "require-corp", HeaderMode::Set),
    ("cross-origin-opener-policy", "same-origin", HeaderMode::Set),
    ("cross-origin-resource-policy", "same-origin", HeaderMode::Set),
    ("permissions-policy", PERMISSIONS_POLICY, HeaderMode::Set),
    ("referrer-policy", "no-referrer", HeaderMode::Set),
    ("strict-transport-security", HSTS, HeaderMode::Set),
    ("x-content-type-options", "nosniff", HeaderMode::Set),
    ("x-frame-options", "DENY", HeaderMode::Set),
    ("x-permitted-cross-domain-policies", "none", HeaderMode::Set),
    ("x-xss-protection", "0", HeaderMode::Set),
];

/// Pages keep their own caching and may embed cross-origin resources (no COEP), and an
/// upstream that sends its own CSP (with nonces, say) keeps it.
const WEB: [Entry; 10] = [
    ("content-security-policy", WEB_CSP, HeaderMode::SetIfAbsent),
    ("cross-origin-opener-policy", "same-origin", HeaderMode::Set),
    ("cross-origin-resource-policy", "same-origin", HeaderMode::Set),
    ("permissions-policy", PERMISSIONS_POLICY, HeaderMode::Set),
    ("referrer-policy", "strict-origin-when-cross-origin", HeaderMode::Set),
    ("strict-transport-security", HSTS, HeaderMode::Set),
    ("x-content-type-options", "nosniff", HeaderMode::Set),
    ("x-frame-options", "DENY", HeaderMode::Set),
    ("x-permitted-cross-domain-policies", "none", HeaderMode::Set),
    ("x-xss-protection", "0", HeaderMode::Set),
];

impl Preset {
    /// The preset's headers: lower-case name, value, mode.
    pub fn entries(self) -> &'static [Entry] {
        match self {
            Preset::Strict => &STRICT,
            Preset::Web => &WEB,
            Preset::None => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::header::{checked_name, checked_value};
    use super::*;

    #[test]
    fn preset_entries_are_valid_headers_without_duplicates() {
        for preset in [Preset::Strict, Preset::Web] {
            for (i, (name, value, _)) in preset.entries().iter().enumerate() {
                assert_eq!(checked_name(name, "n").unwrap(), *name);
                assert_eq!(checked_value(value, "v").unwrap(), *value);
                assert!(!preset.entries()[..i].iter().any(|(other, _, _)| other == name), "{name}");
            }
        }
        assert!(Preset::None.entries().is_empty());
    }

    #[test]
    fn permissions_policy_is_owasps_list() {
        assert!(PERMISSIONS_POLICY.starts_with("accelerometer=(), autoplay=(), camera=(),"));
        assert!(PERMISSIONS_POLICY.contains(" sync-xhr=(self), usb=(),"));
        assert!(PERMISSIONS_POLICY.ends_with("serial=(), unload=()"));
        assert_eq!(PERMISSIONS_POLICY.split(", ").count(), 29);
        assert!(!PERMISSIONS_POLICY.contains("  "));
    }
}
