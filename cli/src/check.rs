//! Config checks through the filters' own entry points: each filter's `on_configure` calls
//! exactly the function named here (through `palisade_glue::load_config`), so a config `check`
//! accepts is a config Envoy accepts, and a refusal carries the message Envoy logs.

use clap::ValueEnum;
use palisade_core::config::ConfigError;
use palisade_core::{authz, bundle, encryption, jwt, rate_limit, security_headers, validation};

/// Looks up a VM environment variable (the process environment, for the CLI).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// A filter whose config can be checked, or the bundle of several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Filter {
    /// filters/security-headers.
    SecurityHeaders,
    /// filters/jwt-authn.
    JwtAuthn,
    /// filters/authz.
    Authz,
    /// filters/rate-limit.
    RateLimit,
    /// filters/request-validation.
    RequestValidation,
    /// filters/field-encryption.
    FieldEncryption,
    /// The bundle format `{"layers": [{"filter": "<name>", "config": {...}}]}`.
    Gateway,
}

impl Filter {
    /// Every single filter (not the bundle), in chain order.
    pub const SINGLE: [Filter; 6] = [
        Filter::SecurityHeaders,
        Filter::JwtAuthn,
        Filter::Authz,
        Filter::RateLimit,
        Filter::RequestValidation,
        Filter::FieldEncryption,
    ];

    /// The name used on the command line, in file names and in log lines.
    pub fn name(self) -> &'static str {
        match self {
            Filter::SecurityHeaders => "security-headers",
            Filter::JwtAuthn => "jwt-authn",
            Filter::Authz => "authz",
            Filter::RateLimit => "rate-limit",
            Filter::RequestValidation => "request-validation",
            Filter::FieldEncryption => "field-encryption",
            Filter::Gateway => "gateway",
        }
    }
}

/// A refused config: the filter that refused it (a bundle's layer, or the bundle itself) and why.
#[derive(Debug)]
pub struct Refusal {
    /// The filter whose parser refused it.
    pub filter: Filter,
    /// The field and the problem; a layer's fields are named from the bundle's root.
    pub error: ConfigError,
}

impl std::fmt::Display for Refusal {
    /// The line the filter logs when Envoy refuses the config (`palisade_glue::load_config`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "palisade {}: invalid configuration: {}", self.filter.name(), self.error)
    }
}

/// Parses and compiles `bytes` as `filter`'s config, as the filter does at configure time.
pub fn check(filter: Filter, bytes: &[u8], env: Env) -> Result<(), Refusal> {
    let result = match filter {
        Filter::SecurityHeaders => security_headers::SecurityHeaders::from_json(bytes).map(drop),
        Filter::JwtAuthn => jwt::Policy::from_json(bytes, env).map(drop),
        Filter::Authz => authz::Authz::from_json(bytes).map(drop),
        Filter::RateLimit => rate_limit::compile_json(bytes, env).map(drop),
        Filter::RequestValidation => validation::Validator::from_json(bytes, env).map(drop),
        Filter::FieldEncryption => encryption::Policy::from_json(bytes, env).map(drop),
        Filter::Gateway => return check_bundle(bytes, env),
    };
    result.map_err(|error| Refusal { filter, error })
}

impl From<bundle::Filter> for Filter {
    fn from(filter: bundle::Filter) -> Self {
        match filter {
            bundle::Filter::SecurityHeaders => Filter::SecurityHeaders,
            bundle::Filter::JwtAuthn => Filter::JwtAuthn,
            bundle::Filter::Authz => Filter::Authz,
            bundle::Filter::RateLimit => Filter::RateLimit,
            bundle::Filter::RequestValidation => Filter::RequestValidation,
            bundle::Filter::FieldEncryption => Filter::FieldEncryption,
        }
    }
}

/// Checks the bundle, then every layer with its filter's parser; a layer's errors are named
/// from the bundle's root (`layers[i].config.<field>`), as the bundle logs them.
fn check_bundle(bytes: &[u8], env: Env) -> Result<(), Refusal> {
    let refuse = |error| Refusal { filter: Filter::Gateway, error };
    for (i, layer) in bundle::parse(bytes).map_err(refuse)?.into_iter().enumerate() {
        check(layer.filter.into(), &layer.config, env).map_err(|mut refusal| {
            refusal.error = refusal.error.within(&format!("layers[{i}].config"));
            refusal
        })?;
    }
    Ok(())
}
